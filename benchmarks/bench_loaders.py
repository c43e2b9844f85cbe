"""Device-resident loaders: BPR batches on Gowalla, neighbour sampling on Amazon-Computers.

* **BPR workload (Gowalla, 810,128 training interactions, batch 2048).** One epoch visits every
  interaction once in a random order and draws one negative per triple, rejecting the user's
  positives. ``graphkit BPRLoader`` generates the permutation, the triples and the negatives on
  the device with a seeded generator. The baseline is the usual
  ``torch.utils.data.DataLoader(TensorDataset(users, items), batch_size=2048, shuffle=True)``
  (per-item indexing and default collate, no workers), followed by the same vectorised negative
  sampler on each batch, so both produce the same kind of triples. A second pair of rows
  measures the index batches alone (no negatives). Reported: triples per second, median over
  ``--rounds``, each round ``--batches`` batches, the two interleaved.
* **Neighbour sampling (Amazon-Computers, 13,752 nodes, 491,722 edges, batch 1024, every node a
  seed once per epoch).** ``graphkit NeighborLoader`` with fan-outs 10-10 and 15-10-5, with and
  without replacement: seeds per second and sampled edges per second over one epoch (batches
  include gathering the 767-dimensional features). PyG's ``NeighborLoader`` needs ``pyg-lib`` or
  ``torch-sparse``; it is measured only when one of them imports.

Writes its section of ``leaderboards/speed.md`` (``--no-write`` prints only).

Usage: ``python benchmarks/bench_loaders.py [--rounds 5] [--batches 50] [--threads 1] [--no-write]``
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time

import _report
import torch

SECTION = "bench_loaders"
BATCH = 2048
GOAL = 10.0
FANOUTS = ([10, 10], [15, 10, 5])


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bpr_rows(graph, rounds: int, batches: int):
    from torch.utils.data import DataLoader, TensorDataset

    from graphkit.loader import BPRLoader, sample_negatives
    from graphkit.utils import PairIndex

    train = graph.train
    positives = PairIndex(train, graph.num_users, graph.num_items)
    users, items = train[0].contiguous(), train[1].contiguous()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ours = BPRLoader(positives, BATCH, seed=0)
    base = DataLoader(TensorDataset(users, items), batch_size=BATCH, shuffle=True)

    def run_ours(negatives: bool):
        def go():
            it = iter(ours) if negatives else ours._index.batch_indices()
            for _ in range(batches):
                b = next(it)
                if not negatives:
                    key = positives.keys[b]
                    _ = key // graph.num_items, key % graph.num_items
        return go

    def run_base(negatives: bool):
        def go():
            it = iter(base)
            for _ in range(batches):
                u, i = next(it)
                if negatives:
                    sample_negatives(u, 1, positives, graph.num_items, generator=gen)
        return go

    out = []
    for negatives in (True, False):
        t_ours, t_base = [], []
        for _ in range(rounds):
            t_ours.append(_timed(run_ours(negatives)))
            t_base.append(_timed(run_base(negatives)))
        n = batches * BATCH
        out.append((negatives, n / statistics.median(t_ours), n / statistics.median(t_base)))
    return out


def neighbour_rows(data, rounds: int):
    from graphkit.loader import NeighborLoader

    rows = []
    for fanouts in FANOUTS:
        for replace in (False, True):
            loader = NeighborLoader(data, fanouts, batch_size=1024, shuffle=True,
                                    replace=replace, seed=0)
            times, edges = [], 0
            for _ in range(rounds):
                t = time.perf_counter()
                edges = sum(b.edge_index.size(1) for b in loader)
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            rows.append((fanouts, replace, data.num_nodes / med, edges / med, len(loader)))
    return rows


def pyg_sampler_available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("pyg_lib", "torch_sparse"))


def format_section(bpr, nbr, rounds, batches, cmd, env) -> str:
    lines = ["## Device-resident loaders (BPR on Gowalla, neighbour sampling on Amazon-Computers)", "",
             f"BPR workload: batches of {BATCH} (user, positive, negative) triples over Gowalla's "
             "810,128 training interactions, a seeded permutation per epoch, one negative per "
             "triple with the user's positives rejected. `graphkit BPRLoader` builds everything "
             "on the device; the baseline is `DataLoader(TensorDataset(users, items), "
             f"batch_size={BATCH}, shuffle=True)` followed by the same vectorised negative sampler. "
             f"Median of {_report.plural(rounds, 'round')} of {batches} batches, interleaved.", "",
             "| workload | graphkit triples/s | DataLoader triples/s | speed-up |",
             "| --- | ---: | ---: | ---: |"]
    speed = {}
    for negatives, ours, base in bpr:
        name = "triples with negatives" if negatives else "index batches only"
        speed[negatives] = ours / base
        lines.append(f"| {name} | {ours:,.0f} | {base:,.0f} | **{ours / base:.1f}x** |")
    lines += ["", "Neighbour sampling: `graphkit NeighborLoader` (plain torch, CSR on the device), "
              "batch 1024, every node a seed once per epoch, features gathered per batch; "
              f"median of {_report.plural(rounds, 'epoch')}.", "",
              "| fan-outs | replacement | batches/epoch | seeds/s | sampled edges/s |",
              "| --- | --- | ---: | ---: | ---: |"]
    for fanouts, replace, seeds, edges, nb in nbr:
        lines.append(f"| {'-'.join(map(str, fanouts))} | {'with' if replace else 'without'} | "
                     f"{nb} | {seeds:,.0f} | {edges:,.0f} |")
    pyg = ("PyG's `NeighborLoader` was not measured: neither `pyg-lib` nor `torch-sparse` "
           "imports on this machine, and it needs one of them."
           if not pyg_sampler_available() else
           "PyG's `NeighborLoader` comparison is not implemented in this script yet.")
    lines += ["", pyg, "", f"Command: `{cmd}`", "", f"Environment: {env}", "",
              f"Goal: BPR triples at >= {GOAL:.0f}x the DataLoader baseline: "
              f"{_report.goal(speed[True] >= GOAL)} ({speed[True]:.1f}x with negatives, "
              f"{speed[False]:.1f}x for the index batches alone)."]
    return "\n".join(lines)


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batches", type=int, default=50, help="BPR batches per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default=None)
    _report.add_output_args(p)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.batches < 1 or args.threads < 1:
        p.error("--rounds, --batches and --threads must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from graphkit.datasets import load

    gowalla = load("Gowalla", root=args.root)
    if args.batches * BATCH > gowalla.num_train:
        sys.exit(f"--batches {args.batches}: one epoch has only {gowalla.num_train // BATCH} full batches")
    bpr = bpr_rows(gowalla, args.rounds, args.batches)
    amazon = load("Amazon-Computers", root=args.root)[0]
    nbr = neighbour_rows(amazon, args.rounds)
    env = _report.environment(_report.threads_label(args.threads), args.note)
    body = format_section(bpr, nbr, args.rounds, args.batches, _report.command(__file__, argv), env)
    _report.publish(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
