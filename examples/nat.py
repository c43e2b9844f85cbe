"""NAT temporal link prediction, "Neighborhood-aware Scalable Temporal Network Representation
Learning" (Luo & Li, LoG 2022, https://arxiv.org/abs/2209.01084), beside PyG's TGN trained in
the same script under the same protocol and seeds.

Paper: per-dataset AP/AUC are not confirmed in our reference notes, so the records carry no
paper value (the abstract claims +1.2% transductive / +4.2% inductive AP over the best baseline
on average).

Protocol (as the NAT/CAW code): events sorted by time, split chronologically 70/15/15 by
timestamp quantiles. Transductive: every node may occur in training; test on all test events.
Inductive: 10% of the nodes occurring after the validation time are held out (every event
touching one is dropped from train and validation); test on the test events touching a held-out
node. Events are streamed in batches of ``--batch-size``; each batch is scored from the state
left by earlier batches and only then fed to the memory and N-caches. Training: one random
negative destination per positive, binary cross-entropy, Adam. The epoch is selected on
validation AP (early stopping after ``--patience`` epochs without improvement), then the
selected epoch is evaluated from the parameters and state it left after its training pass (as
the reference code of both papers does; ``--evaluate-from replay`` instead replays the training
events from an empty state with the selected parameters): validation and test events are
scored with ``--num-random`` random and ``--num-historical`` historical negatives per positive
(destinations the source met before the phase; never a true positive of the batch).
AP and ROC-AUC (in %) pit each positive against its first random negative (the papers'
protocol); MRR (in [0, 1]) ranks each positive among all its negatives (one-vs-many).

NAT settings are the reference defaults: self_dim 72, ngh_dim 4, pos_dim 16, time_dim 1,
N-cache sizes 32 and 16 (2 hops), 2 heads, dropout 0.1, replace probability 0.9, lr 1e-4,
batch 100, at most 50 epochs. TGN: PyG's example settings (memory, time and embedding width 100,
10 last neighbours, lr 1e-4) with the same batch size, split, negatives and seeds.
The datasets have no edge features: messages are zero-width.

    python examples/nat.py --dataset UCI --setting transductive --runs 3
    python examples/nat.py --dataset Enron --setting inductive --runs 3 --epochs 3

Every finished run (both methods for one seed) is appended to ``runs/<entry>/runs.jsonl`` and
skipped when rerun with the same settings. Records: ``nat-<dataset>-<setting>.json`` and
``tgn-<dataset>-<setting>.json``.
"""
from __future__ import annotations

import os
import sys
import time
from typing import List, Optional

import torch

from graphkit.engine.args import apply_threads, entry_id, example_parser

DATASETS = ("UCI", "Enron", "Bitcoin-OTC")


def parse_args(argv: Optional[List[str]] = None):
    p = example_parser(__doc__, datasets=DATASETS, dataset="UCI", runs=3, epochs=50)
    p.add_argument("--setting", choices=("transductive", "inductive"), default="transductive")
    p.add_argument("--methods", default="nat,tgn", help="comma-separated: nat, tgn")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--num-random", type=int, default=5)
    p.add_argument("--num-historical", type=int, default=5)
    p.add_argument("--self-dim", type=int, default=72)
    p.add_argument("--ngh-dim", type=int, default=4)
    p.add_argument("--pos-dim", type=int, default=16)
    p.add_argument("--time-dim", type=int, default=1)
    p.add_argument("--n-degree", type=int, nargs="+", default=[32, 16])
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--replace-prob", type=float, default=0.9)
    p.add_argument("--evaluate-from", choices=("selected_state", "replay"), default="selected_state",
                   help="final evaluation from the selected epoch's own parameters and state (default), or "
                   "from a replay of the training events with its parameters")
    p.add_argument("--runs-log", "--log", dest="log", default=None,
                   help="JSONL of finished runs (default: runs.jsonl in --checkpoint-dir)")
    args = p.parse_args(argv)
    args.methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    if not args.methods or set(args.methods) - {"nat", "tgn"}:
        p.error("--methods takes nat and/or tgn")
    args.entry = entry_id("nat", args.dataset, variant=args.setting)
    args.log = args.log or os.path.join(args.checkpoint_dir or os.path.join("runs", args.entry),
                                        "runs.jsonl")
    return args


def load_events(name: str, root=None):
    from graphkit.datasets import load

    if name == "Bitcoin-OTC":
        return load(name, root=root, format="temporal")
    return load(name, root=root)


def build(method: str, args, num_nodes: int, msg_dim: int):
    if method == "nat":
        from graphkit.nn.models.nat import NAT

        return NAT(num_nodes, msg_dim=msg_dim, self_dim=args.self_dim, ngh_dim=args.ngh_dim,
                   pos_dim=args.pos_dim, time_dim=args.time_dim, num_neighbors=args.n_degree,
                   heads=args.heads, dropout=args.dropout, replace_prob=args.replace_prob)
    from graphkit.temporal.tgn import TGNLinkPredictor

    return TGNLinkPredictor(num_nodes, msg_dim=msg_dim)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    apply_threads(args)
    from graphkit.engine import mean_std, resolve_device, run_many
    from graphkit.temporal import check_events, chronological_split, fit_link_predictor

    device = resolve_device(args.device)
    data = load_events(args.dataset, args.root)
    num_nodes = check_events(data)
    msg_dim = data.msg.size(1) if getattr(data, "msg", None) is not None else 0
    inductive = args.setting == "inductive"
    prefix = "test_ind_" if inductive else "test_"
    print(f"{args.dataset}: {data.num_events} events, {num_nodes} nodes, msg width {msg_dim}")

    def train_run(run: int, seed: int):
        split = chronological_split(data, inductive=inductive, seed=seed)
        out = {"n_train": int(split.train.sum()), "n_test": int(split.test.sum()),
               "n_test_ind": int(split.test_inductive.sum())}
        for method in args.methods:
            torch.manual_seed(seed)
            model = build(method, args, num_nodes, msg_dim).to(device)
            t0 = time.perf_counter()
            epoch_times, trajectory = [], []

            def tick(m, t_prev=[time.perf_counter()]):  # noqa: B006 - per-call epoch timer
                now = time.perf_counter()
                epoch_times.append(now - t_prev[0])
                t_prev[0] = now
                trajectory.append({"epoch": m["epoch"], "train_loss": m["train_loss"],
                                   "val_ap": m["val_ap"]})
                print(f"  {method} epoch {m['epoch']}: loss {m['train_loss']:.4f} "
                      f"val AP {100 * m['val_ap']:.2f} ({epoch_times[-1]:.1f} s)", flush=True)

            res = fit_link_predictor(model, data, split, epochs=args.epochs, lr=args.lr,
                                     batch_size=args.batch_size, seed=seed,
                                     patience=args.patience, num_random=args.num_random,
                                     num_historical=args.num_historical, device=device,
                                     time_budget=args.time_budget, callback=tick,
                                     evaluate_from=args.evaluate_from)
            res["time_s"] = time.perf_counter() - t0
            res["epoch_times_s"] = epoch_times
            res["trajectory"] = trajectory
            out[method] = res
            print(f"run {run} {method}: test AP {100 * res[prefix + 'ap']:.2f} AUC "
                  f"{100 * res[prefix + 'roc_auc']:.2f} MRR {res[prefix + 'mrr']:.4f} "
                  f"(epoch {res['epoch']}/{res['epochs_run']}, {res['time_s']:.0f} s)", flush=True)
        return out

    settings = {k: getattr(args, k) for k in (
        "dataset", "setting", "methods", "batch_size", "lr", "patience", "num_random",
        "num_historical", "self_dim", "ngh_dim", "pos_dim", "time_dim", "n_degree", "heads",
        "dropout", "replace_prob", "epochs", "seed", "evaluate_from")}
    if args.time_budget:
        settings["time_budget"] = args.time_budget
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    t_all = time.perf_counter()
    records, resumed = run_many(args.runs, train_run, seed=args.seed, settings=settings,
                                log=args.log, resume=args.resume)
    wall = time.perf_counter() - t_all
    for method in args.methods:
        vals = {m: [r[method][prefix + m] * (1 if m == "mrr" else 100) for r in records]
                for m in ("ap", "roc_auc", "mrr")}
        summary = ", ".join(f"{m} {mean_std(v)[0]:.4g} ± {mean_std(v)[1]:.2g}" if len(v) > 1
                            else f"{m} {v[0]:.4g}" for m, v in vals.items())
        print(f"{method.upper()} {args.dataset} {args.setting}: {summary} over {args.runs} runs")
        if args.record:
            write_record(args, method, vals, records, resumed, wall)
    return 0


def write_record(args, method, vals, records, resumed, wall) -> None:
    from graphkit.engine import write_result_record

    defaults = parse_args(["--dataset", args.dataset])
    deviations = []
    if args.epochs < defaults.epochs:
        deviations.append(f"at most {args.epochs} epochs instead of 50 (shared 2-core CPU budget)")
    if args.runs < 5:
        deviations.append(f"{args.runs} seeds")
    for k in ("batch_size", "lr", "patience", "self_dim", "ngh_dim", "pos_dim", "time_dim",
              "n_degree", "heads", "dropout", "replace_prob"):
        if getattr(args, k) != getattr(defaults, k):
            deviations.append(f"{k}={getattr(args, k)} instead of {getattr(defaults, k)}")
    if args.time_budget:
        deviations.append(f"training capped at {args.time_budget:g} s per run")
    if resumed:
        deviations.append(f"{len(resumed)} runs read back from the per-run log (resume)")
    if method == "nat":
        deviations.append("time gaps encoded as cos(w log(1+dt) + b); cached entries keep the "
                          "time of the event that wrote them")
    else:
        deviations.append("baseline: PyG TGN trained with this script's batch size and protocol")
    deviations += args.deviation
    name = "NAT" if method == "nat" else "TGN"
    entry = entry_id(method, args.dataset, variant=args.setting)
    src = "not confirmed in the reference notes (PAPERS.md section 7: per-dataset table unknown)"
    metrics = {m: {"paper": None, "paper_source": src, "tolerance": None, "values": v}
               for m, v in vals.items()}
    per_run = [r[method] for r in records]
    path = write_result_record(
        entry=entry, method=name, dataset=args.dataset, task=f"temporal link prediction "
        f"({args.setting})", primary_metric="ap", metrics=metrics, runs=args.runs,
        protocol=("chronological 70/15/15 split by timestamp quantiles; "
                  + ("inductive: 10% of the nodes seen after the validation time held out, test "
                     "on test events touching one; " if args.setting == "inductive" else
                     "transductive: test on all test events; ")
                  + f"batches of {args.batch_size} events scored before the state is updated; "
                  "epoch selected on validation AP; AP and ROC-AUC (%) against one random "
                  f"negative per positive; MRR among {args.num_random} random + "
                  f"{args.num_historical} historical negatives per positive; "
                  + ("final evaluation from the selected epoch's own parameters and state"
                     if args.evaluate_from == "selected_state" else
                     "final evaluation after replaying the training events with the selected parameters")),
        deviations=deviations, wall_time_s=wall, out_dir=args.out,
        extra=dict(settings=records[0]["settings"],
                   epochs_run=[r["epochs_run"] for r in per_run],
                   best_epochs=[r["epoch"] for r in per_run],
                   mean_epoch_time_s=[sum(r["epoch_times_s"]) / len(r["epoch_times_s"])
                                      for r in per_run],
                   ap_hist=[100 * r[("test_ind_" if args.setting == "inductive" else "test_")
                                    + "ap_hist"] for r in per_run],
                   val_ap=[100 * r["val_ap"] for r in per_run],
                   stopped=[r.get("stopped") for r in per_run],
                   val_ap_per_epoch=[[round(100 * e["val_ap"], 2) for e in r["trajectory"]]
                                     for r in per_run if "trajectory" in r],
                   train_loss_per_epoch=[[round(e["train_loss"], 4) for e in r["trajectory"]]
                                         for r in per_run if "trajectory" in r]))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
