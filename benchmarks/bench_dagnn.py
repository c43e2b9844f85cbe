"""DAGNNConv (Deep Adaptive GNN propagation) against PyG's APPNP with the same K.

Times forward + backward of the propagation layer on class-logit-sized inputs, in one process,
interleaving the contenders, and reports ours / APPNP time ratios (< 1 means ours is faster):

* Amazon-Computers (13,752 nodes, 491,722 edges, 10 classes), K = 5 (the paper's setting);
* a random graph (default 100,000 nodes, 1,000,000 undirected edges, 16 channels), K = 10.

"cached" compares both layers with ``cached=True`` (the normalised adjacency built once, as in
transductive training); "uncached" rebuilds it on every call. Writes a markdown table into the
DAGNN section of ``leaderboards/speed.md`` (other sections are kept).

    python benchmarks/bench_dagnn.py                 # needs GRAPHKIT_DATA for Amazon-Computers
    python benchmarks/bench_dagnn.py --nodes 20000 --edges 200000 --repeat 5
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

from torch_geometric.nn import APPNP
from torch_geometric.utils import to_undirected

from graphkit.nn.conv import DAGNNConv

BEGIN, END = "<!-- bench_dagnn:begin -->", "<!-- bench_dagnn:end -->"


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


def write_section(path: str, rows: List[Dict], argv: List[str]) -> None:
    lines = [BEGIN, "## DAGNNConv vs PyG APPNP (forward + backward)", "",
             "Ratio = DAGNNConv time / APPNP time with the same K (< 1: DAGNNConv faster). "
             "DAGNNConv also computes the K + 1 retention scores that APPNP does not have. "
             "Median of the repeats, best of two interleaved rounds.", "",
             "| graph | nodes | edges | channels | K | cached | DAGNNConv (ms) | APPNP (ms) | "
             "ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['nodes']:,} | {r['edges']:,} | {r['channels']} | "
                     f"{r['K']} | {'yes' if r['cached'] else 'no'} | {r['ours_ms']:.2f} | "
                     f"{r['appnp_ms']:.2f} | {r['ratio']:.2f} |")
    lines += ["", f"Command: `python {' '.join(argv)}`; torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}"
              f", {time.strftime('%Y-%m-%d', time.gmtime())}. The machine was shared with other "
              "jobs, so absolute times are noisy; the ratios come from interleaved runs in one "
              "process.", END]
    section = "\n".join(lines)
    text = open(path).read() if os.path.exists(path) else "# Speed\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=1_000_000, help="undirected edges (random)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--root", default=None)
    p.add_argument("--no-amazon", dest="amazon", action="store_false")
    p.add_argument("--out", default="leaderboards/speed.md")
    args = p.parse_args(argv)

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
    if args.out:
        write_section(args.out, rows, [os.path.relpath(sys.argv[0])] + sys.argv[1:])
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
