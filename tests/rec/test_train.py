import json

import numpy as np
import pytest
import torch

from graphkit.nn.models import LightGCN
from graphkit.rec.data import InteractionGraph
from graphkit.rec.train import fit


def tiny_graph():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(30, 40, generator=g) < 0.15
    pairs = mask.nonzero().t()
    perm = torch.randperm(pairs.size(1), generator=g)
    cut, cut2 = int(0.7 * pairs.size(1)), int(0.85 * pairs.size(1))
    return InteractionGraph(30, 40, train=pairs[:, perm[:cut]], valid=pairs[:, perm[cut:cut2]],
                            test=pairs[:, perm[cut2:]], name="tiny")


def run(epochs, ckpt, resume=True):
    torch.manual_seed(1)
    model = LightGCN(30, 40, embedding_dim=8, num_layers=2)
    res = fit(model, tiny_graph(), epochs=epochs, batch_size=64, lr=0.01, eval_every=1, patience=100,
              checkpoint_dir=str(ckpt), resume=resume, seed=3, progress=False)
    return model, res


def test_interrupted_training_resumes_to_identical_parameters(tmp_path):
    straight, res_a = run(6, tmp_path / "a")
    run(3, tmp_path / "b")                    # "interrupted" after 3 epochs
    resumed, res_b = run(6, tmp_path / "b")   # continues from epoch 3
    assert res_b.epochs_run == 6
    # the final model is the best-validation one in both cases
    assert res_a.best_epoch == res_b.best_epoch
    assert torch.equal(straight.embedding.weight, resumed.embedding.weight)
    assert res_a.test == res_b.test
    # and the last checkpoints agree too
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])


def test_early_stopping_and_selection_on_validation(tmp_path):
    torch.manual_seed(0)
    model = LightGCN(30, 40, embedding_dim=8)
    res = fit(model, tiny_graph(), epochs=200, batch_size=64, lr=0.05, eval_every=1, patience=3, progress=False)
    assert res.stopped_early and res.epochs_run < 200
    best = max(h["valid_recall@20"] for h in res.history)
    assert res.best_valid["recall@20"] == best
    assert res.history[res.best_epoch]["valid_recall@20"] == best


def test_first_sigint_finishes_the_epoch_checkpoints_and_returns(tmp_path):
    import os
    import signal

    from graphkit.engine import GracefulStop
    from graphkit.nn.models import MF

    class Interrupting(MF):
        calls = 0

        def loss(self, *args):
            Interrupting.calls += 1
            if Interrupting.calls == 1:
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss(*args)

    before = signal.getsignal(signal.SIGINT)
    torch.manual_seed(0)
    res = fit(Interrupting(30, 40, embedding_dim=8), tiny_graph(), epochs=50, batch_size=64, eval_every=10,
              checkpoint_dir=str(tmp_path), progress=False)
    assert res.interrupted and res.epochs_run == 1 and not res.stopped_early
    assert (tmp_path / "last.pt").exists() and res.test is not None and res.best_epoch == 0
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    again = fit(MF(30, 40, embedding_dim=8), tiny_graph(), epochs=3, batch_size=64, eval_every=10,
                checkpoint_dir=str(tmp_path), progress=False)  # resumes after the interrupted epoch
    assert again.epochs_run == 3 and not again.interrupted
    with GracefulStop(enabled=False) as stop:
        assert not stop.requested and signal.getsignal(signal.SIGINT) is before


def test_fit_with_negative_candidates_trains_on_both_samplers():
    import pytest

    from graphkit.rec.sampling import sample_bpr_triples
    from graphkit.utils.ranking import PairIndex

    g = tiny_graph()
    index = PairIndex(g.train, 30, 40)
    users, pos, cand = sample_bpr_triples(index, 50, 40, torch.Generator().manual_seed(0), num_negatives=6)
    assert cand.shape == (50, 6)
    assert not index.contains(users.repeat_interleave(6), cand.reshape(-1, 1)).any()  # never a positive
    for sampler in ("user", "epoch"):
        torch.manual_seed(1)
        model = LightGCN(30, 40, embedding_dim=8, num_layers=2)
        res = fit(model, g, epochs=4, batch_size=64, lr=0.01, eval_every=1, patience=100, seed=3,
                  sampler=sampler, negative_candidates=6, progress=False)
        losses = [h["loss"] for h in res.history]
        assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="negative_candidates"):
        fit(LightGCN(30, 40, embedding_dim=8), g, epochs=1, negative_candidates=0, progress=False)

    from graphkit.nn.models import UltraGCN
    with pytest.raises(ValueError, match="draws its own negatives"):
        fit(UltraGCN(30, 40, embedding_dim=8), g, epochs=1, negative_candidates=4, progress=False)


def test_resume_with_other_training_settings_is_refused(tmp_path):
    import pytest

    run(2, tmp_path / "c")
    model = LightGCN(30, 40, embedding_dim=8, num_layers=2)
    with pytest.raises(ValueError, match=r"negative_candidates: checkpoint 1, now 4"):
        fit(model, tiny_graph(), epochs=4, batch_size=64, lr=0.01, eval_every=1, patience=100,
            negative_candidates=4, checkpoint_dir=str(tmp_path / "c"), seed=3, progress=False)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0.01, now 0.02"):
        fit(model, tiny_graph(), epochs=4, batch_size=64, lr=0.02, eval_every=1, patience=100,
            checkpoint_dir=str(tmp_path / "c"), seed=3, progress=False)
    # starting afresh in the same folder is allowed
    res = fit(model, tiny_graph(), epochs=1, batch_size=64, lr=0.02, eval_every=1, patience=100,
              checkpoint_dir=str(tmp_path / "c"), resume=False, seed=3, progress=False)
    assert res.epochs_run == 1


def test_resuming_a_run_that_stopped_early_trains_no_further(tmp_path):
    def go():
        torch.manual_seed(0)
        model = LightGCN(30, 40, embedding_dim=8)
        res = fit(model, tiny_graph(), epochs=200, batch_size=64, lr=0.05, eval_every=1, patience=3,
                  checkpoint_dir=str(tmp_path / "d"), seed=3, progress=False)
        return model, res

    first_model, first = go()
    assert first.stopped_early and first.epochs_run < 200
    again_model, again = go()
    assert again.stopped_early and again.epochs_run == first.epochs_run
    assert len(again.history) == len(first.history)
    assert again.best_epoch == first.best_epoch and again.test == first.test
    assert torch.equal(first_model.embedding.weight, again_model.embedding.weight)
    # every evaluation carries the run's wall time so far, non-decreasing
    elapsed = [h["elapsed_s"] for h in first.history]
    assert all(isinstance(t, float) for t in elapsed) and elapsed == sorted(elapsed)


def test_a_crash_between_evaluations_resumes_from_the_last_epoch(tmp_path):
    """last.pt is written after every epoch, not only at evaluations: a run that dies in epoch 3
    with eval_every=5 continues at epoch 3 and ends exactly like an uninterrupted run."""
    import pytest

    from graphkit.engine import load_checkpoint

    class Crashing(LightGCN):
        crash_at = None  # loss call that raises, as a kill would

        def loss(self, *args):
            type(self).calls += 1
            if type(self).calls == self.crash_at:
                raise KeyboardInterrupt
            return super().loss(*args)

    def go(ckpt, crash_at=None):
        torch.manual_seed(1)
        Crashing.calls, Crashing.crash_at = 0, crash_at
        model = Crashing(30, 40, embedding_dim=8, num_layers=2)
        res = fit(model, tiny_graph(), epochs=6, batch_size=64, lr=0.01, eval_every=5, patience=100,
                  checkpoint_dir=str(ckpt), seed=3, progress=False, graceful_stop=False)
        return model, res

    steps = -(-tiny_graph().num_train // 64)
    straight, res_a = go(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        go(tmp_path / "b", crash_at=3 * steps + 2)  # dies in the middle of epoch 3 (0-based)
    assert load_checkpoint(tmp_path / "b" / "last.pt", restore_rng=False)["epoch"] == 2
    resumed, res_b = go(tmp_path / "b")
    assert Crashing.calls == 3 * steps  # epochs 3, 4 and 5 only
    assert res_b.resumed_from == 3 and res_b.sittings == 2 and res_a.resumed_from is None
    assert torch.equal(straight.embedding.weight, resumed.embedding.weight)
    assert res_a.test == res_b.test and res_a.best_epoch == res_b.best_epoch
    assert [h["epoch"] for h in res_b.history] == [4, 5]
    assert res_b.wall_time_s >= res_b.history[-1]["elapsed_s"] - 0.1


def test_resume_on_other_data_of_the_same_size_is_refused(tmp_path):
    import pytest

    from graphkit.rec.data import data_fingerprint
    from graphkit.rec.train import ResumeError

    run(2, tmp_path / "e")
    other = tiny_graph()
    other.train = torch.stack([other.train[0], (other.train[1] + 1) % 40])  # same size, other pairs
    assert other.num_train == tiny_graph().num_train
    assert data_fingerprint(other)["train"] != data_fingerprint(tiny_graph())["train"]
    with pytest.raises(ResumeError, match=r"other data: train \(checkpoint [0-9a-f]+, now [0-9a-f]+\) differ"):
        fit(LightGCN(30, 40, embedding_dim=8, num_layers=2), other, epochs=4, batch_size=64, lr=0.01,
            eval_every=1, patience=100, checkpoint_dir=str(tmp_path / "e"), seed=3, progress=False)
    renamed = tiny_graph()
    renamed.item_ids = np.array([f"i{j}" for j in range(40)])
    with pytest.raises(ResumeError, match=r"item_ids"):
        fit(LightGCN(30, 40, embedding_dim=8, num_layers=2), renamed, epochs=4, batch_size=64, lr=0.01,
            eval_every=1, patience=100, checkpoint_dir=str(tmp_path / "e"), seed=3, progress=False)
    seen = []
    res = fit(LightGCN(30, 40, embedding_dim=8, num_layers=2), tiny_graph(), epochs=3, batch_size=64, lr=0.01,
              eval_every=1, patience=100, checkpoint_dir=str(tmp_path / "e"), seed=3, progress=False,
              on_resume=seen.append)
    assert len(seen) == 1 and seen[0]["epochs_done"] == 2 and seen[0]["sittings"] == 2
    assert res.epochs_run == 3 and res.resumed_from == 2


def test_scale_recipe_keeps_epochs_linear_in_the_data():
    from graphkit.rec.train import MAX_STEPS_PER_EPOCH, scale_recipe
    small = scale_recipe(400_000, 20_000, 12_500)
    assert (small.name, small.batch_size, small.lr, small.scale) == ("paper", 2048, 1e-3, 1)
    yelp2018 = scale_recipe(1_237_259, 31_668, 38_048)  # the paper datasets keep the paper recipe
    assert (yelp2018.name, yelp2018.batch_size) == ("paper", 2048)
    for n in (3_000_000, 12_800_000, 51_200_000):
        r = scale_recipe(n, n // 20, n // 32)
        assert r.name == "scaled" and r.steps_per_epoch <= MAX_STEPS_PER_EPOCH
        assert r.batch_size == 2048 * r.scale and r.lr == pytest.approx(1e-3 * r.scale ** 0.5)
        assert r.batch_size * r.steps_per_epoch >= n
    # the estimate grows linearly with the data; a budget below it fails before training
    a, b = scale_recipe(1_000_000, 40_000, 25_000), scale_recipe(4_000_000, 160_000, 100_000)
    assert 3 < (b.estimated_bytes - 512 * 2 ** 20) / (a.estimated_bytes - 512 * 2 ** 20) < 5
    with pytest.raises(ValueError, match="need about .* GB to train LightGCN, more than the 0.5 GB budget"):
        scale_recipe(4_000_000, 160_000, 100_000, memory_budget=2 ** 29)
    with pytest.raises(ValueError, match="num_train must be a positive integer"):
        scale_recipe(0, 1, 1)


# ---------------------------------------------------------------------------------------------
# `graphkit rec train` under torchrun: 2 CPU processes (gloo)
# ---------------------------------------------------------------------------------------------
def _write_events(path):
    rng = np.random.default_rng(0)
    lines = ["user,item"]
    for u in range(24):
        for i in rng.choice(12, size=6, replace=False):
            lines.append(f"u{u},{'A' if u < 12 else 'B'}{i}")
    path.write_text("\n".join(lines) + "\n")


def _cli_argv(events, epochs, out, *extra):
    # batch 63: the two ranks take 32 and 31 pairs of every global batch
    return ["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
            "--model", "lightgcn", "--epochs", str(epochs), "--eval-every", "1", "--patience", "50",
            "--batch-size", "63", "--lr", "0.01", "--embedding-dim", "8", "--num-layers", "2",
            "--threads", "1", "--no-progress", "--out", str(out), *extra]


def _capture_final_parameters(path):
    """Make `graphkit rec train` save the trained model's parameters to ``path``."""
    import graphkit.rec.train as train

    real = train.fit

    def fit_and_save(model, graph, **kwargs):
        result = real(model, graph, **kwargs)
        torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, path)
        return result

    train.fit = fit_and_save
    return real


def _cli_worker(rank, port, cwd, argv):
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.chdir(cwd)  # rank r writes under its own folder: what rank 1 writes is visible apart
    torch.set_num_threads(1)
    from graphkit.cli import main
    from graphkit.engine.distributed import cleanup_distributed

    _capture_final_parameters(os.path.join(cwd, "params.pt"))
    code = main(argv)
    cleanup_distributed()
    os._exit(code)


def _run_two_ranks(tmp_path, argv):
    import multiprocessing as mp
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_cli_worker, args=(r, port, str(tmp_path / f"r{r}"), argv))
             for r in range(2)]
    for r, p in enumerate(procs):
        (tmp_path / f"r{r}").mkdir(exist_ok=True)
        p.start()
    for p in procs:
        p.join(timeout=120)
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    return [torch.load(tmp_path / f"r{r}" / "params.pt") for r in range(2)]


@pytest.mark.skipif(not torch.distributed.is_available() or torch.cuda.is_available(),
                    reason="tests the CPU/gloo path")
def test_rec_train_under_two_processes_matches_one_and_resumes(tmp_path, monkeypatch):
    events = tmp_path / "events.csv"
    _write_events(events)
    # 2 epochs, then a second sitting to 3 epochs that resumes from rank 0's checkpoint
    _run_two_ranks(tmp_path, _cli_argv(events, 2, "model"))
    r0, r1 = _run_two_ranks(tmp_path, _cli_argv(events, 3, "model"))
    # rank 0 alone wrote checkpoints and the training log; rank 1 read nothing from disk
    assert (tmp_path / "r0/model/checkpoints/last.pt").exists()
    assert (tmp_path / "r0/model/checkpoints/best.pt").exists()
    history = (tmp_path / "r0/model/history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [0, 1, 2]
    assert not (tmp_path / "r1/model/checkpoints").exists()
    assert not (tmp_path / "r1/model/history.jsonl").exists()
    # the model folder (model.json and the weights) comes from rank 0 alone
    assert (tmp_path / "r0/model/model.json").exists()
    assert not (tmp_path / "r1/model/model.json").exists()
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0)  # identical replicas
    # one process, 3 epochs without interruption, same global batch: the same model
    from graphkit.cli import main

    real = _capture_final_parameters(tmp_path / "single.pt")
    try:
        for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(name, raising=False)
        assert main(_cli_argv(events, 3, tmp_path / "single")) == 0
    finally:
        import graphkit.rec.train as train
        train.fit = real
    single = torch.load(tmp_path / "single.pt")
    initial_differs = False
    for k in single:
        torch.testing.assert_close(r0[k], single[k], rtol=1e-5, atol=1e-6)
        initial_differs = initial_differs or not torch.equal(single[k], torch.zeros_like(single[k]))
    assert initial_differs


def test_distributed_fit_refuses_what_it_cannot_reproduce(monkeypatch):
    from graphkit.nn.models import UltraGCN
    from graphkit.rec.train import _check_distributed_fit

    monkeypatch.setattr("graphkit.rec.train.get_world_size", lambda: 4)
    with pytest.raises(ValueError, match="smaller than the world size 4"):
        _check_distributed_fit(LightGCN(30, 40, embedding_dim=8), batch_size=3)
    with pytest.raises(ValueError, match="sums over the batch"):
        _check_distributed_fit(UltraGCN(30, 40, embedding_dim=8), batch_size=64)
    _check_distributed_fit(LightGCN(30, 40, embedding_dim=8), batch_size=4)


# ---------------------------------------------------------------------------------------------
# validation on a sample of users; UltraGCN's memory estimate
# ---------------------------------------------------------------------------------------------
def test_sample_valid_users_is_a_seeded_subset_of_the_validation_users():
    from graphkit.rec.train import sample_valid_users

    valid = tiny_graph().valid
    have = set(torch.unique(valid[0]).tolist())
    a, b = sample_valid_users(valid, 5, seed=3), sample_valid_users(valid, 5, seed=3)
    assert torch.equal(a, b) and a.numel() == 5 and set(a.tolist()) <= have
    assert bool((a[1:] > a[:-1]).all())  # sorted, no repeats
    assert any(not torch.equal(a, sample_valid_users(valid, 5, seed=s)) for s in range(4, 8))
    state = torch.get_rng_state()
    sample_valid_users(valid, 5, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # the global random state is untouched
    assert sample_valid_users(valid, len(have), seed=0) is None  # n >= number of users: all
    assert sample_valid_users(valid, 10 ** 6, seed=0) is None and sample_valid_users(valid, None) is None
    with pytest.raises(ValueError, match="valid_users must be a positive integer"):
        sample_valid_users(valid, 0)


def _fit_tiny(**kwargs):
    torch.manual_seed(1)
    model = LightGCN(30, 40, embedding_dim=8, num_layers=2)
    graph = tiny_graph()
    res = fit(model, graph, epochs=4, batch_size=64, lr=0.01, eval_every=1, patience=100, seed=3,
              progress=False, **kwargs)
    return model, graph, res


def test_fit_selects_on_the_validation_sample_and_tests_every_user():
    from graphkit.rec.train import evaluate_model, sample_valid_users

    model, graph, res = _fit_tiny(valid_users=6)
    sample = sample_valid_users(graph.valid, 6, seed=3)
    assert res.valid_users == 6
    assert [h["valid_num_users"] for h in res.history] == [6] * 4
    # the selected epoch's validation metrics are those of the sample, not of every user
    full_valid = evaluate_model(model, graph, "valid")
    on_sample = evaluate_model(model, graph, "valid", users=sample)
    assert on_sample["num_users"] == 6 and full_valid["num_users"] == torch.unique(graph.valid[0]).numel()
    assert res.best_valid["recall@20"] == pytest.approx(on_sample["recall@20"])
    # the test evaluation ranks for every test user, whatever the validation sample
    assert res.test["num_users"] == torch.unique(graph.test[0]).numel()
    assert res.test == evaluate_model(model, graph, "test")
    _, _, all_users = _fit_tiny(valid_users=10 ** 6)
    assert all_users.valid_users is None
    assert all_users.history[0]["valid_num_users"] == full_valid["num_users"]
    with pytest.raises(ValueError, match="the test part is always evaluated for every user"):
        _fit_tiny(valid_users=6, select_on="test")


def test_resume_with_another_validation_sample_is_refused(tmp_path):
    from graphkit.rec.train import ResumeError

    _fit_tiny(valid_users=6, checkpoint_dir=str(tmp_path))
    with pytest.raises(ResumeError, match="valid_users: checkpoint 6, now 7"):
        _fit_tiny(valid_users=7, checkpoint_dir=str(tmp_path))


def test_ultragcn_memory_estimate_grows_with_the_data_and_names_what_to_lower():
    from graphkit.rec.train import ultragcn_memory_estimate, ultragcn_memory_parts

    small, large = ultragcn_memory_parts(1_000_000, 40_000, 25_000), ultragcn_memory_parts(4_000_000, 160_000, 100_000)
    base = 512 * 2 ** 20
    batch = 64 * 1024 * (200 + 10)  # one step's negatives and neighbours: not the data's size
    assert large["set_graph"] - base == pytest.approx(4 * (small["set_graph"] - base), rel=0.01)
    assert large["step"] - base - batch == pytest.approx(4 * (small["step"] - base - batch), rel=0.01)
    assert ultragcn_memory_estimate(1_000_000, 40_000, 25_000) == max(small.values())
    # the step grows with the batch x negatives; the embeddings with the dimension
    wide = ultragcn_memory_parts(1_000_000, 40_000, 25_000, batch_size=4096, num_negatives=800)
    assert wide["step"] - small["step"] == 64 * (4096 * 810 - 1024 * 210)
    assert ultragcn_memory_estimate(10 ** 6, 40_000, 25_000, embedding_dim=128) > \
        ultragcn_memory_estimate(10 ** 6, 40_000, 25_000)
    with pytest.raises(ValueError, match=r"need about .* GB to train UltraGCN .* more than the 512 MB budget.*"
                                         r"--embedding-dim.*--batch-size or --num-negatives.*--max-memory"):
        ultragcn_memory_estimate(40_000_000, 2_560_000, 1_600_000, memory_budget=2 ** 29)
    with pytest.raises(ValueError, match="num_negatives must be a positive integer"):
        ultragcn_memory_estimate(10, 2, 2, num_negatives=0)
