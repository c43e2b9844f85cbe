"""A MetaFormer built from graph token mixers, beside GCN / GIN under the same protocol.

MetaFormer ("MetaFormer Is Actually What You Need for Vision", Yu et al., CVPR 2022,
https://arxiv.org/abs/2111.11418) claims the block (norm → token mixer → residual, norm → MLP →
residual) matters more than the mixer. Here the mixer is a graph operator from
``graphkit.backbones``: ``pool`` (closed-neighbourhood mean − self, PoolFormer's mixer on a
graph), ``max`` (parameter-free neighbourhood max), ``ponet`` (PoNet: per-graph attention pool +
segment max + neighbourhood max) or ``mod`` (EfficientMod's modulation with a graph context).

There is no paper number for these models: the records carry ``paper: null`` and the GCN / GIN
baselines, run by this script with the same protocol, are the comparison.

Protocols:
    Cora, CiteSeer: public Planetoid split; 2 blocks of width 64 (GCN: 2 layers, hidden 64),
        dropout 0.5, Adam lr 0.01, weight decay 5e-4, at most 200 epochs, early stopping after
        50 epochs without a higher validation accuracy; test accuracy at the best validation
        accuracy (the validation loss is a poor selector here: the MetaFormers' validation loss
        rises from the first epochs while their accuracy still improves); one run per seed.
    PROTEINS: 10-fold stratified cross-validation (seed --seed), 10% of each training fold for
        validation; 3 blocks / GIN layers of width 64, mean readout (GIN: sum), batch 128, Adam
        lr 0.01, at most 100 epochs, early stopping after 25 epochs without validation gain;
        test accuracy at the best-validation epoch; one run per fold.

    python examples/graph_metaformer.py --dataset Cora --runs 10
    python examples/graph_metaformer.py --dataset PROTEINS --methods pool,gin --max-folds 3

Each method writes ``leaderboards/results/metaformer-<method>-<dataset>.json`` (baselines:
``metaformer-baseline-gcn-cora``). Finished runs are logged in ``runs/<entry>/runs.jsonl`` and
skipped when the script is run again with the same settings (``--no-resume`` starts afresh).
"""
from __future__ import annotations

import os
import sys
import time
from typing import List, Optional

import numpy as np
import torch
from torch.nn import BatchNorm1d, Linear, ReLU, Sequential

from graphkit.engine.args import apply_threads, entry_id, example_parser

DATASETS = ("Cora", "CiteSeer", "PROTEINS")
NODE = ("Cora", "CiteSeer")
MIXERS = ("pool", "max", "ponet", "mod")
NAMES = {"pool": "MetaFormer (graph pooling mixer)", "max": "MetaFormer (graph max mixer)",
         "ponet": "MetaFormer (PoNet mixer)", "mod": "MetaFormer (modulation mixer)",
         "gcn": "GCN (baseline, same protocol)", "gin": "GIN (baseline, same protocol)"}


class GCN(torch.nn.Module):
    def __init__(self, in_channels: int, hidden: int, out_channels: int, dropout: float):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv1, self.conv2 = GCNConv(in_channels, hidden), GCNConv(hidden, out_channels)
        self.dropout = dropout

    def reset_parameters(self):
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()

    def forward(self, x, edge_index):
        x = torch.nn.functional.dropout(x, self.dropout, self.training)
        x = torch.relu(self.conv1(x, edge_index))
        x = torch.nn.functional.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class GIN(torch.nn.Module):
    def __init__(self, in_channels: int, hidden: int, out_channels: int, layers: int,
                 dropout: float):
        super().__init__()
        from torch_geometric.nn import GINConv

        self.convs = torch.nn.ModuleList(
            GINConv(Sequential(Linear(in_channels if i == 0 else hidden, hidden),
                               BatchNorm1d(hidden), ReLU(), Linear(hidden, hidden), ReLU()),
                    train_eps=True) for i in range(layers))
        self.head = Sequential(Linear(hidden, hidden), ReLU(), torch.nn.Dropout(dropout),
                               Linear(hidden, out_channels))

    def forward(self, x, edge_index, batch):
        from torch_geometric.nn import global_add_pool

        for conv in self.convs:
            x = conv(x, edge_index)
        return self.head(global_add_pool(x, batch))


def parse_args(argv: Optional[List[str]] = None):
    p = example_parser(__doc__, datasets=DATASETS, dataset="Cora", runs=10)
    p.set_defaults(device="cpu")
    p.add_argument("--methods", default="",
                   help="comma-separated from pool,max,ponet,mod and the baseline (gcn on "
                   "Cora/CiteSeer, gin on PROTEINS); default: all")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=None, help="blocks (default: 2 node, 3 graph)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=None,
                   help="default: 5e-4 on Cora/CiteSeer, 0 on PROTEINS")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--patience", type=int, default=None, help="default: 50 node, 25 graph")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--max-folds", type=int, default=0, help="run only the first N folds")
    args = p.parse_args(argv)
    node = args.dataset in NODE
    args.node = node
    baseline = "gcn" if node else "gin"
    args.methods = args.methods.split(",") if args.methods else list(MIXERS) + [baseline]
    for m in args.methods:
        if m not in MIXERS + (baseline,):
            p.error(f"unknown method {m!r} for {args.dataset}; choose from "
                    f"{', '.join(MIXERS + (baseline,))}")
    args.epochs = args.epochs or (200 if node else 100)
    args.layers = args.layers or (2 if node else 3)
    args.weight_decay = (5e-4 if node else 0.0) if args.weight_decay is None else args.weight_decay
    args.patience = args.patience or (50 if node else 25)
    return args


def method_entry(args, method: str) -> str:
    parts = ["baseline", method] if method in ("gcn", "gin") else [method]
    variant = "test-selected" if args.select == "test" else ""
    return entry_id("metaformer", args.dataset, parts=parts, variant=variant)


def build(args, method: str, in_channels: int, num_classes: int):
    from graphkit.backbones import GraphMetaFormer

    if method == "gcn":
        return GCN(in_channels, args.hidden, num_classes, args.dropout)
    if method == "gin":
        return GIN(in_channels, args.hidden, num_classes, args.layers, args.dropout)
    return GraphMetaFormer(in_channels, args.hidden, num_classes, args.layers, mixer=method,
                           dropout=args.dropout, readout=None if args.node else "mean")


def run_method(args, method: str, dataset, splits) -> None:
    from torch_geometric.loader import DataLoader

    from graphkit.engine import PatienceStop, mean_std, run_many, train_graph_classifier, train_node_classifier

    entry = method_entry(args, method)
    folder = os.path.join(args.checkpoint_dir, entry) if args.checkpoint_dir else \
        os.path.join("runs", entry)
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "runs.jsonl")
    settings = dict(dataset=args.dataset, method=method, hidden=args.hidden,
                    layers=args.layers, lr=args.lr, weight_decay=args.weight_decay,
                    dropout=args.dropout, epochs=args.epochs, patience=args.patience,
                    select=args.select, seed=args.seed, time_budget=args.time_budget)
    if not args.node:
        settings.update(batch_size=args.batch_size, folds=args.folds)

    def train_run(run: int, seed: int):
        if args.node:
            data = dataset[0]
            model = build(args, method, dataset.num_features, dataset.num_classes)
            opt = torch.optim.Adam(model.parameters(), lr=args.lr,
                                   weight_decay=args.weight_decay)
            return train_node_classifier(
                model, data, opt, args.epochs,
                select="val_acc" if args.select == "valid" else "test_acc",
                stop=PatienceStop(args.patience, "val_acc"), time_budget=args.time_budget)
        tr, va, te = splits[run]
        loaders = [DataLoader(dataset[torch.as_tensor(idx)], batch_size=args.batch_size,
                              shuffle=(k == 0)) for k, idx in enumerate((tr, va, te))]
        model = build(args, method, dataset.num_features, dataset.num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        return train_graph_classifier(
            model, loaders, opt, args.epochs,
            select="val_acc" if args.select == "valid" else "test_acc",
            stop=PatienceStop(args.patience, "val_acc"), time_budget=args.time_budget)

    def show(r):
        print(f"[{args.dataset}] {method:6s} run {r['run']}: test {r['test_acc']:.2f} "
              f"(val {r['val_acc']:.2f}, epoch {r['epoch']}/{r['epochs_run']}, "
              f"{r['time_s']:.1f} s)", flush=True)

    runs = args.runs if args.node else len(splits)
    t0 = time.perf_counter()
    records, resumed = run_many(runs, train_run, seed=args.seed, settings=settings, log=log,
                                resume=args.resume, on_run=show)
    wall = time.perf_counter() - t0
    values = [float(r["test_acc"]) for r in records]
    mean, std = mean_std(values)
    print(f"[{args.dataset}] {NAMES[method]}: test {mean:.2f} ± {std:.2f} over {runs} runs",
          flush=True)
    if args.record:
        write_record(args, method, entry, records, resumed, wall, log)


def write_record(args, method, entry, records, resumed, wall, log) -> None:
    from graphkit.engine import write_result_record

    values = [float(r["test_acc"]) for r in records]
    selection = "highest validation accuracy"
    if args.select == "test":
        selection = "highest test accuracy"
    if args.node:
        protocol = (f"public Planetoid split; {len(values)} seeds ({args.seed}..); test "
                    f"accuracy (%) at the epoch of {selection}; early stopping after "
                    f"{args.patience} epochs without improvement; at most {args.epochs} epochs")
    else:
        protocol = (f"{args.folds}-fold stratified CV (sklearn, seed {args.seed}), 10% of each "
                    f"training fold for validation; test accuracy (%) at the epoch of "
                    f"{selection}; early stopping after {args.patience} epochs without "
                    f"validation gain; at most {args.epochs} epochs")
    protocol += (f"; hidden {args.hidden}, {args.layers} layers, Adam lr {args.lr}, weight "
                 f"decay {args.weight_decay}, dropout {args.dropout}; every method of this "
                 "script uses this protocol")
    deviations = ["no paper reports this model on this dataset; the comparison is the "
                  "GCN/GIN baseline entry run by the same script"]
    if not args.node and len(values) < args.folds:
        deviations.append(f"only {len(values)} of {args.folds} folds run (shared CPU budget)")
    if args.time_budget:
        deviations.append(f"training time capped at {args.time_budget:g} s per run")
    if args.threads:
        deviations.append(f"torch limited to {args.threads} CPU thread(s)")
    if resumed:
        deviations.append(f"{len(resumed)} runs read back from {log} (resume, same settings)")
    deviations += args.deviation
    path = write_result_record(
        entry=entry, method=NAMES[method], dataset=args.dataset,
        task="node classification" if args.node else "graph classification",
        primary_metric="accuracy",
        metrics={"accuracy": {"paper": None, "paper_source": "", "tolerance": None,
                              "values": values}},
        runs=len(values), protocol=protocol, deviations=deviations,
        wall_time_s=max(wall, sum(r["time_s"] for r in records)), out_dir=args.out,
        extra={"settings": records[0]["settings"], "best_epochs": [r["epoch"] for r in records],
               "epochs_run": [r["epochs_run"] for r in records]})
    print(f"wrote {path}")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    apply_threads(args)
    from graphkit.datasets import load

    dataset = load(args.dataset, root=args.root)
    splits = None
    if not args.node:
        from sklearn.model_selection import StratifiedKFold, train_test_split

        y = dataset.y.numpy() if dataset.y.numel() == len(dataset) else \
            np.array([int(d.y) for d in dataset])
        skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
        splits = []
        for fold, (train_idx, test_idx) in enumerate(skf.split(np.zeros(len(y)), y)):
            tr, va = train_test_split(train_idx, test_size=0.1, stratify=y[train_idx],
                                      random_state=args.seed + fold)
            splits.append((tr, va, test_idx))
        splits = splits[: args.max_folds or args.folds]
    for method in args.methods:
        run_method(args, method, dataset, splits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
