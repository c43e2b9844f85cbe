import json
import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GCNConv, global_add_pool

from graphkit.engine import (
    PatienceStop,
    WindowMeanStop,
    fit,
    node_metrics,
    run_many,
    seed_everything,
    train_graph_classifier,
    train_node_classifier,
)


def scripted(values, key="val_loss", **extra):
    """A (step, evaluate) pair replaying ``values`` as one metric, epoch by epoch."""
    it = iter(values)
    return (lambda: 0.0), (lambda: {key: next(it), **extra})


# ----------------------------------------------------------------------------------------------
# fit: selection, early stopping, time budget
# ----------------------------------------------------------------------------------------------
def test_select_lowest_val_loss_earliest_on_ties():
    step, evaluate = scripted([3.0, 1.0, 2.0, 1.0, 5.0])
    best = fit(step, evaluate, 5)
    assert best["epoch"] == 2 and best["val_loss"] == 1.0
    assert best["epochs_run"] == 5 and best["stopped"] == "epochs"


def test_select_highest_accuracy_and_nan_never_wins():
    step, evaluate = scripted([float("nan"), 50.0, 70.0, 70.0, 60.0], key="val_acc")
    best = fit(step, evaluate, 5, select="val_acc")
    assert best["epoch"] == 3
    step, evaluate = scripted([2.0, float("nan"), 3.0])
    assert fit(step, evaluate, 3, select=("val_loss", "min"))["epoch"] == 1


def test_select_last_and_unknown_key():
    step, evaluate = scripted([1.0, 0.5, 2.0])
    assert fit(step, evaluate, 3, select="last")["epoch"] == 3
    step, evaluate = scripted([1.0])
    with pytest.raises(KeyError, match="select='val_acc'"):
        fit(step, evaluate, 1, select="val_acc")
    with pytest.raises(ValueError, match="epochs must be"):
        fit(step, evaluate, 0)
    with pytest.raises(ValueError, match="select must be"):
        fit(step, evaluate, 1, select=("val_loss", "lowest"))


def reference_dagnn_stop(losses, epochs, patience):
    """The DAGNN reference code's loop, written out: the epoch at which it breaks."""
    history = []
    for epoch, loss in enumerate(losses[:epochs], 1):
        history.append(loss)
        if epoch > epochs // 2:
            prev = history[-(patience + 1):-1]
            if loss > sum(prev) / len(prev):
                return epoch
    return epochs


def test_window_mean_stop_is_the_dagnn_rule():
    # Rises at epoch 3 (first half: ignored) and at epoch 8 (second half: stops).
    losses = [1.0, 0.9, 1.5, 0.8, 0.7, 0.6, 0.55, 0.9, 0.4, 0.3]
    step, evaluate = scripted(losses)
    best = fit(step, evaluate, 10, stop=WindowMeanStop(patience=3))
    assert best["epochs_run"] == 8 == reference_dagnn_stop(losses, 10, 3)
    assert best["stopped"] == "early stopping" and best["epoch"] == 7
    # Above the last value but below the window's mean: goes on.
    losses = [1.0, 1.0, 1.0, 0.5, 0.5, 0.6, 0.4, 0.3]
    step, evaluate = scripted(losses)
    assert fit(step, evaluate, 8, stop=WindowMeanStop(patience=4))["epochs_run"] == 8
    assert reference_dagnn_stop(losses, 8, 4) == 8
    with pytest.raises(ValueError, match="patience"):
        WindowMeanStop(0)


def test_patience_stop_counts_epochs_since_strict_best():
    accs = [50.0, 60.0, 55.0, 58.0, 60.0, 59.0, 61.0]
    step, evaluate = scripted(accs, key="val_acc")
    best = fit(step, evaluate, 7, select="val_acc", stop=PatienceStop(3, "val_acc"))
    assert best["epochs_run"] == 5 and best["epoch"] == 2  # the tie at epoch 5 is no gain
    step, evaluate = scripted([3.0, 2.0, 1.0])
    assert fit(step, evaluate, 3, stop=PatienceStop(0, "val_loss"))["epochs_run"] == 1
    assert PatienceStop(2, "val_loss").mode == "min"


def test_time_budget_stops_after_an_evaluated_epoch():
    evaluated = []

    def step():
        time.sleep(0.03)
        return 0.0

    def evaluate():
        return {"val_loss": 1.0}

    best = fit(step, evaluate, 1000, time_budget=0.1, eval_every=50,
               callback=lambda m: evaluated.append(m["epoch"]))
    assert best["stopped"] == "time budget"
    assert 4 <= best["epochs_run"] < 50
    assert evaluated == [best["epochs_run"]]  # the stopping epoch is evaluated


def test_eval_every_and_scheduler():
    class Counter:
        n = 0

        def step(self):
            self.n += 1

    sched, seen = Counter(), []
    fit(lambda: 0.0, lambda: {"val_loss": 1.0}, 25, eval_every=10, scheduler=sched,
        callback=lambda m: seen.append(m["epoch"]))
    assert seen == [10, 20, 25] and sched.n == 25


# ----------------------------------------------------------------------------------------------
# Full-batch node classification
# ----------------------------------------------------------------------------------------------
def tiny_graph():
    # Two triangles joined by one edge; class = triangle; one-hot-ish features with noise.
    edges = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)]
    ei = torch.tensor(edges).t()
    ei = torch.cat([ei, ei.flip(0)], 1)
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    x = F.one_hot(y, 2).float() + 0.5 * torch.randn(6, 2, generator=g)
    mask = lambda ids: torch.zeros(6, dtype=torch.bool).index_fill_(0, torch.tensor(ids), True)  # noqa: E731
    return Data(x=x, edge_index=ei, y=y, train_mask=mask([0, 5]), val_mask=mask([1, 4]),
                test_mask=mask([2, 3]))


class GCN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = GCNConv(2, 2)

    def forward(self, x, edge_index, x_aug=None):
        x = x if x_aug is None else x + x_aug
        return self.conv(F.dropout(x, 0.2, self.training), edge_index)


def test_node_classifier_reports_test_at_lowest_val_loss():
    data = tiny_graph()
    seed_everything(0)
    model = GCN()
    history = []
    best = train_node_classifier(model, data, torch.optim.Adam(model.parameters(), lr=0.1), 30,
                                 callback=history.append)
    assert len(history) == 30 and best["epochs_run"] == 30
    losses = [h["val_loss"] for h in history]
    assert best["epoch"] == losses.index(min(losses)) + 1
    picked = history[best["epoch"] - 1]
    assert {k: best[k] for k in picked} == picked
    assert set(picked) >= {"train_loss", "val_loss", "train_acc", "val_acc", "test_acc"}
    assert all(h["test_acc"] in (0.0, 50.0, 100.0) for h in history)  # two test nodes, in %


def test_node_metrics_use_evaluate_accuracy():
    data = tiny_graph()
    out = torch.tensor([[1.0, 0.0]] * 3 + [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    m = node_metrics(out, data)  # nodes 0-2, 4-5 right, node 3 wrong
    assert m["train_acc"] == 100.0 and m["val_acc"] == 100.0 and m["test_acc"] == 50.0
    assert m["val_loss"] == pytest.approx(F.cross_entropy(out[[1, 4]], data.y[[1, 4]]).item())


def test_node_classifier_with_custom_step_and_evaluate():
    """Several augmented forward passes and a consistency term, as local augmentation trains."""
    data = tiny_graph()
    seed_everything(0)
    model = GCN()
    calls = {"step": 0, "eval": 0}

    def augment():
        return 0.1 * torch.randn_like(data.x)

    def step(model, data, opt):
        calls["step"] += 1
        model.train()
        opt.zero_grad()
        outs = [model(data.x, data.edge_index, x_aug=augment()) for _ in range(3)]
        probs = torch.stack([o.softmax(-1) for o in outs])
        loss = sum(F.cross_entropy(o[data.train_mask], data.y[data.train_mask]) for o in outs)
        loss = loss / 3 + ((probs - probs.mean(0)) ** 2).sum(-1).mean()
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(model, data):
        calls["eval"] += 1
        model.eval()
        return node_metrics(model(data.x, data.edge_index, x_aug=augment()), data)

    best = train_node_classifier(model, data, torch.optim.Adam(model.parameters(), lr=0.1), 8,
                                 step=step, evaluate=evaluate,
                                 stop=PatienceStop(2, "val_loss"))
    assert calls["step"] == calls["eval"] == best["epochs_run"] <= 8
    assert math.isfinite(best["train_loss"])


def test_node_classifier_rejects_bad_data():
    model = GCN()
    opt = torch.optim.Adam(model.parameters())
    data = tiny_graph()
    data.val_mask = torch.zeros(6, dtype=torch.bool)
    with pytest.raises(ValueError, match="val_mask is empty"):
        train_node_classifier(model, data, opt, 1)
    data = tiny_graph()
    data.test_mask = torch.ones(5, dtype=torch.bool)
    with pytest.raises(ValueError, match="test_mask has 5 entries for 6 nodes"):
        train_node_classifier(model, data, opt, 1)
    data = tiny_graph()
    del data.train_mask
    with pytest.raises(ValueError, match="boolean 'train_mask'"):
        train_node_classifier(model, data, opt, 1)


# ----------------------------------------------------------------------------------------------
# Graph classification over loaders
# ----------------------------------------------------------------------------------------------
def tiny_graph_dataset():
    # Paths of 2..7 nodes, twice each; class 1 = more than 4 nodes.
    graphs = []
    for n in list(range(2, 8)) * 2:
        ei = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
        graphs.append(Data(x=torch.ones(n, 1), edge_index=torch.cat([ei, ei.flip(0)], 1),
                           y=torch.tensor([int(n > 4)])))
    return graphs


class SumPool(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 2)

    def forward(self, x, edge_index, batch):
        return self.lin(global_add_pool(x, batch) / 4.0)


def test_graph_classifier_selects_best_validation_epoch():
    graphs = tiny_graph_dataset()
    seed_everything(0)
    loaders = (DataLoader(graphs, batch_size=4, shuffle=True),
               DataLoader(graphs[:6], batch_size=4), DataLoader(graphs[6:], batch_size=4))
    model = SumPool()
    history, penalties = [], []

    def penalty():
        penalties.append(1)
        return 0.0

    best = train_graph_classifier(model, loaders, torch.optim.Adam(model.parameters(), lr=0.5),
                                  15, penalty=penalty, callback=history.append)
    accs = [h["val_acc"] for h in history]
    assert best["epoch"] == accs.index(max(accs)) + 1
    assert best["test_acc"] == history[best["epoch"] - 1]["test_acc"]
    assert len(penalties) == 15 * 3  # training batches only, never in evaluation
    assert max(accs) == 100.0  # the task is learnable: sizes split by a threshold


def test_graph_classifier_without_test_loader_and_by_loss():
    graphs = tiny_graph_dataset()
    loaders = (DataLoader(graphs, batch_size=5), DataLoader(graphs[:6], batch_size=5))
    model = SumPool()
    best = train_graph_classifier(model, loaders, torch.optim.SGD(model.parameters(), lr=0.1),
                                  4, select="val_loss")
    assert "test_acc" not in best and best["val_loss"] >= 0
    with pytest.raises(ValueError, match="loaders must be"):
        train_graph_classifier(model, loaders[:1], torch.optim.SGD(model.parameters(), lr=0.1), 1)


# ----------------------------------------------------------------------------------------------
# Several runs: seeds and resume
# ----------------------------------------------------------------------------------------------
def test_run_many_seeds_each_run_and_resumes(tmp_path):
    log = tmp_path / "runs.jsonl"
    calls = []

    def train_run(run, seed):
        calls.append((run, seed))
        return {"value": torch.rand(()).item()}

    recs, resumed = run_many(2, train_run, seed=5, settings={"lr": 0.1}, log=str(log))
    assert calls == [(0, 5), (1, 6)] and resumed == []
    for rec in recs:  # run r was seeded with seed + r before it started
        seed_everything(rec["seed"])
        assert rec["value"] == torch.rand(()).item()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["run"] for line in lines] == [0, 1] and lines[0]["settings"] == {"lr": 0.1}

    calls.clear()
    recs3, resumed = run_many(3, train_run, seed=5, settings={"lr": 0.1}, log=str(log))
    assert calls == [(2, 7)] and resumed == [0, 1]
    assert [r["value"] for r in recs3[:2]] == [r["value"] for r in recs]

    calls.clear()
    run_many(2, train_run, seed=5, settings={"lr": 0.2}, log=str(log))  # other settings
    assert calls == [(0, 5), (1, 6)]
    calls.clear()
    run_many(1, train_run, seed=5, settings={"lr": 0.1}, log=str(log), resume=False)
    assert calls == [(0, 5)]


def test_run_many_creates_the_folder_of_its_log(tmp_path):
    log = tmp_path / "new" / "folder" / "runs.jsonl"
    recs, _ = run_many(1, lambda run, seed: {"value": 1.0}, log=str(log))
    assert log.exists() and recs[0]["value"] == 1.0


# ----------------------------------------------------------------------------------------------
# Under torchrun: 2 CPU processes (gloo)
# ----------------------------------------------------------------------------------------------
def _tiny_node_data():
    g = torch.Generator().manual_seed(0)
    n = 40
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) + y.view(-1, 1).float()
    ei = torch.randint(0, n, (2, 160), generator=g)
    masks = [torch.arange(n) % 4 == k for k in range(3)]
    return Data(x=x, edge_index=ei, y=y, train_mask=masks[0] | (torch.arange(n) % 4 == 3),
                val_mask=masks[1], test_mask=masks[2])


def _ddp_node_task(log):
    """Two runs of full-batch node classification through run_many; returns per-run results and
    the final parameters."""
    data = _tiny_node_data()
    models = []

    def train_run(run, seed):
        model = GCNConv(4, 2)
        models.append(model)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        return train_node_classifier(model, data, opt, 12, stop=PatienceStop(4, "val_loss"))

    records, _ = run_many(2, train_run, seed=0, settings={"task": "ddp"}, log=log)
    out = [{k: r[k] for k in ("epoch", "epochs_run", "val_loss", "test_acc")} for r in records]
    return out, [p.detach().clone() for p in models[-1].parameters()]


def _ddp_worker(rank, port, tmp):
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from graphkit.engine.distributed import cleanup_distributed

    try:
        results, params = _ddp_node_task(os.path.join(tmp, f"r{rank}", "runs.jsonl"))
        # a stopping rule that fires on rank 1 only stops both ranks at the same epoch
        stop_rank1 = fit(lambda: 0.0, lambda: {"val_loss": 1.0}, 10,
                         stop=lambda history, epochs: rank == 1 and len(history) == 3)
        # a step that trains the original module, not the DDP wrapper, lets the replicas drift
        data, model = _tiny_node_data(), torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def bypass(m, d, o):
            o.zero_grad()
            loss = (model(d.x) - rank).pow(2).mean()
            loss.backward()
            o.step()
            return float(loss)

        try:
            train_node_classifier(model, data, opt, 3, step=bypass,
                                  evaluate=lambda m, d: {"val_loss": 0.0})
            drift = ""
        except RuntimeError as exc:
            drift = str(exc)
        torch.save({"results": results, "params": params, "epochs_run": stop_rank1["epochs_run"],
                    "drift": drift}, os.path.join(tmp, f"out{rank}.pt"))
    finally:
        cleanup_distributed()


@pytest.mark.skipif(not torch.distributed.is_available() or torch.cuda.is_available(),
                    reason="tests the CPU/gloo path")
def test_two_processes_train_like_one_and_only_rank0_logs(tmp_path, monkeypatch):
    import multiprocessing as mp
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_ddp_worker, args=(r, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    out = [torch.load(tmp_path / f"out{r}.pt") for r in range(2)]
    assert (tmp_path / "r0" / "runs.jsonl").exists() and not (tmp_path / "r1").exists()
    assert out[0]["results"] == out[1]["results"]
    for a, b in zip(out[0]["params"], out[1]["params"]):
        assert torch.equal(a, b)
    assert out[0]["epochs_run"] == out[1]["epochs_run"] == 3
    assert all("replicas differ between ranks" in o["drift"] for o in out)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    single, params = _ddp_node_task(str(tmp_path / "single.jsonl"))
    for a, b in zip(single, out[0]["results"]):  # full-batch training is replicated: same result
        assert a["epoch"] == b["epoch"] and a["epochs_run"] == b["epochs_run"]
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    for a, b in zip(params, out[0]["params"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
