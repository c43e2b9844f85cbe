"""DAGNNConv (Deep Adaptive GNN propagation) against PyG's APPNP with the same K.

Times forward + backward of the propagation layer on class-logit-sized inputs, in one process,
interleaving the contenders, and reports ours / APPNP time ratios (< 1 means ours is faster):

* Amazon-Computers (13,752 nodes, 491,722 edges, 10 classes), K = 5 (the paper's setting);
* a random graph (default 100,000 nodes, 1,000,000 undirected edges, 16 channels), K = 10.

"cached" compares both layers with ``cached=True`` (the normalised adjacency built once, as in
transductive training); "uncached" rebuilds it on every call. Writes its section of
``leaderboards/speed.md`` (``--write-speed-md PATH`` to write elsewhere, ``--no-write`` to print
only; the other sections are kept).

    python benchmarks/bench_dagnn.py                 # needs GRAPHKIT_DATA for Amazon-Computers
    python benchmarks/bench_dagnn.py --nodes 20000 --edges 200000 --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import _report
import torch
from torch_geometric.nn import APPNP
from torch_geometric.utils import to_undirected

from graphkit.nn.conv import DAGNNConv

SECTION = "bench_dagnn"


def time_fb(fn: Callable[[], torch.Tensor], repeat: int) -> float:
    """Median seconds of forward + backward of ``fn`` over ``repeat`` calls (after one warm-up)."""
    def once():
        out = fn()
        out.square().sum().backward()
    once()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_graph(name: str, edge_index: torch.Tensor, num_nodes: int, channels: int, K: int,
                repeat: int) -> List[Dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(num_nodes, channels, generator=g).requires_grad_(True)
    rows = []
    for cached in (True, False):
        ours = DAGNNConv(channels, K, cached=cached)
        appnp = APPNP(K, alpha=0.1, cached=cached)
        t_ours, t_appnp = [], []
        for _ in range(2):  # interleave to share the machine's load evenly
            t_ours.append(time_fb(lambda: ours(x, edge_index), repeat))
            t_appnp.append(time_fb(lambda: appnp(x, edge_index), repeat))
        a, b = min(t_ours), min(t_appnp)
        rows.append(dict(graph=name, nodes=num_nodes, edges=edge_index.size(1),
                         channels=channels, K=K, cached=cached, ours_ms=a * 1e3,
                         appnp_ms=b * 1e3, ratio=a / b))
        print(f"{name:18s} K={K:2d} cached={cached!s:5s}  DAGNNConv {a * 1e3:8.2f} ms   "
              f"APPNP {b * 1e3:8.2f} ms   ratio {a / b:.2f}", flush=True)
    return rows


def format_section(rows: List[Dict], cmd: str, env: str) -> str:
    """The markdown of this benchmark's section of ``leaderboards/speed.md``."""
    lines = ["## DAGNNConv vs PyG APPNP (forward + backward)", "",
             "Forward + backward of one propagation layer on class-logit-sized inputs, "
             "DAGNNConv against PyG's `APPNP` with the same K, in one process. Ratio = "
             "DAGNNConv time / APPNP time (< 1: DAGNNConv faster); DAGNNConv also computes the "
             "K + 1 retention scores that APPNP does not have. \"cached\" builds the normalised "
             "adjacency once (transductive training), \"no\" on every call. Median of the "
             "repeats, best of two interleaved rounds.", "",
             "| graph | nodes | edges | channels | K | cached | DAGNNConv (ms) | APPNP (ms) | "
             "ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['nodes']:,} | {r['edges']:,} | {r['channels']} | "
                     f"{r['K']} | {'yes' if r['cached'] else 'no'} | {r['ours_ms']:.2f} | "
                     f"{r['appnp_ms']:.2f} | {r['ratio']:.2f} |")
    worst = max(r["ratio"] for r in rows)
    lines += ["", f"Command: `{cmd}`", "", f"Environment: {env}", "",
              "Goal (no numeric target is set for this layer): DAGNNConv no slower than APPNP "
              "at the same K: "
              f"{_report.goal(worst <= 1.0)} (largest ratio {worst:.2f})."]
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=1_000_000, help="undirected edges (random)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--root", default=None)
    p.add_argument("--no-amazon", dest="amazon", action="store_false")
    _report.add_output_args(p)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rows: List[Dict] = []
    if args.amazon:
        try:
            from graphkit.datasets import load

            data = load("Amazon-Computers", root=args.root)[0]
            rows += bench_graph("Amazon-Computers", data.edge_index, data.num_nodes, 10, 5,
                                args.repeat)
        except (ImportError, FileNotFoundError) as exc:
            print(f"skipping Amazon-Computers: {exc}", file=sys.stderr)
    g = torch.Generator().manual_seed(1)
    ei = torch.randint(0, args.nodes, (2, args.edges), generator=g)
    ei = to_undirected(ei[:, ei[0] != ei[1]], num_nodes=args.nodes)
    rows += bench_graph(f"random ({args.nodes // 1000}k nodes)", ei, args.nodes, args.channels,
                        args.K, args.repeat)
    env = _report.environment(_report.threads_label(torch.get_num_threads()), args.note)
    _report.publish(args, SECTION, format_section(rows, _report.command(__file__, argv), env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
