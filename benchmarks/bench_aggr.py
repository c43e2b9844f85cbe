r"""Speed and memory of graphkit's aggregations against PyG's, in one run.

Forward + backward of one aggregation over a sorted ``index`` (64 channels, 20,000 nodes) on

* ``uniform``: in-degrees uniform in [0, 32] (mean 16) plus one node of in-degree 36;
* ``powerlaw``: in-degrees from a truncated discrete power law on [1, 1000] with mean ~16,
  one node of in-degree 1000.

Every (module, graph) pair runs in a fresh subprocess with one thread; the subprocess reports
the best wall time over ``--reps`` repetitions (after one warm-up on a small graph; the best
repetition is the steady state of a training loop, the first one includes allocating any buffer a
module keeps for reuse) and the
extra peak memory: peak RSS (``ru_maxrss``) minus the RSS just before the first timed call.
Every worker first calls ``graphkit.engine.keep_freed_memory()`` (as graphkit's command and
examples do), so all modules run with the same allocator settings; ``--no-malloc-tuning``
measures glibc's defaults instead.
PyG's ``GRUAggregation`` and ``LCMAggregation`` are not run on the power-law graph: their
dense ``[N, max_degree, C]`` padding alone is ``N * d_max * C * 4`` bytes, and the GRU
activations of the first tree level are several times that (see the printed estimate).

Writes its section of ``leaderboards/speed.md`` (``--write-speed-md PATH`` to write elsewhere,
``--no-write`` to print only; ``--json PATH`` also keeps the raw results).

Usage::

    python benchmarks/bench_aggr.py                 # all modules, one round
    python benchmarks/bench_aggr.py --graphs uniform --modules pyg-lcm,lcm --reps 1
    python benchmarks/bench_aggr.py --graphs uniform --modules pyg-lcm,lcm --rounds 5  # medians
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import _report

SECTION = "bench_aggr"

NUM_NODES = 20_000
CHANNELS = 64
MODULES = ["pyg-sum", "pyg-max", "pyg-gru", "pyg-lcm", "lcm", "lcm-compiled", "ggem", "attsets", "ponet",
           "spp"]
PYG_DENSE = {"pyg-gru", "pyg-lcm"}
GOAL_SPEEDUP = 5.0
GOAL_POWERLAW_GB = 2.0


def make_degrees(kind: str, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    if kind == "uniform":
        deg = torch.randint(0, 33, (NUM_NODES,), generator=g)
        deg[0] = 36
        return deg
    if kind == "powerlaw":
        k = torch.arange(1, 1001, dtype=torch.float64)
        lo, hi = 1.01, 4.0  # bisection on the exponent for mean degree 16
        for _ in range(60):
            gamma = (lo + hi) / 2
            p = k.pow(-gamma)
            mean = float((k * p).sum() / p.sum())
            lo, hi = (gamma, hi) if mean > 16 else (lo, gamma)
        deg = torch.multinomial(p / p.sum(), NUM_NODES, replacement=True, generator=g) + 1
        deg[0] = 1000
        return deg
    raise ValueError(f"unknown graph kind {kind!r}")


def build(name: str):
    import torch_geometric.nn.aggr as pyg

    from graphkit.nn.aggr import AttSetsAggregation, GGeMAggregation, LCMAggregation, PoNetAggregation, SPPAggregation
    c = CHANNELS
    return {
        "pyg-sum": lambda: pyg.SumAggregation(),
        "pyg-max": lambda: pyg.MaxAggregation(),
        "pyg-gru": lambda: pyg.GRUAggregation(c, c),
        "pyg-lcm": lambda: pyg.LCMAggregation(c, c, project=False),
        "lcm": lambda: LCMAggregation(c, c, project=False),
        "lcm-compiled": lambda: LCMAggregation(c, c, project=False, compiled_kernels=True),
        "ggem": lambda: GGeMAggregation(c, groups=8),
        "attsets": lambda: AttSetsAggregation(c),
        "ponet": lambda: PoNetAggregation(c, c, heads=4),
        "spp": lambda: SPPAggregation(levels=(1, 2, 4)),
    }[name]()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(module: str, graph: str, reps: int) -> dict:
    import torch

    from graphkit.engine import keep_freed_memory

    # Same allocator settings for every module, as graphkit's command and examples use: freed
    # blocks are reused instead of being unmapped and page-faulted in again at the next call
    # (GRAPHKIT_MALLOC_TUNING=0, i.e. --no-malloc-tuning, measures glibc's defaults).
    malloc_tuned = keep_freed_memory()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    aggr = build(module)
    # warm-up on a small graph (for lcm-compiled: large enough to have full blocks, so that the
    # one-off compilation of its kernels happens here and is not timed)
    small = torch.arange(2000 if module == "lcm-compiled" else 50).repeat_interleave(4)
    xs = torch.rand(small.numel(), CHANNELS, requires_grad=True)
    aggr(xs, small, dim_size=small.numel() // 4).sum().backward()

    deg = make_degrees(graph)
    index = torch.repeat_interleave(torch.arange(NUM_NODES), deg)
    x = torch.rand(index.numel(), CHANNELS, requires_grad=True)
    base = rss_bytes()
    times = []
    for _ in range(reps):
        x.grad = None
        aggr.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = aggr(x, index, dim_size=NUM_NODES)
        out.sum().backward()
        times.append(time.perf_counter() - t0)
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"module": module, "graph": graph, "time_s": min(times), "times": times,
            "extra_mem_gb": max(peak - base, 0) / 1e9, "num_edges": int(index.numel()),
            "max_degree": int(deg.max()), "mean_degree": float(deg.float().mean()),
            "malloc_tuned": malloc_tuned}


def dense_estimate_gb(graph: str) -> float:
    deg = make_degrees(graph)
    return NUM_NODES * int(deg.max()) * CHANNELS * 4 / 1e9


def sweep(args, env) -> list:
    """One pass over every (graph, module) pair, each in a fresh subprocess."""
    results = []
    for graph in args.graphs.split(","):
        for module in args.modules.split(","):
            if graph == "powerlaw" and module in PYG_DENSE:
                est = dense_estimate_gb(graph)
                what = ("the GRU activations of the first tree level (both orders of "
                        "N x d_max / 2 pairs)" if module == "pyg-lcm" else
                        "the GRU activations saved for d_max sequential steps")
                results.append({"module": module, "graph": graph, "time_s": None,
                                "extra_mem_gb": None,
                                "note": f"not run: the dense padding alone needs N x d_max x C x 4 B "
                                        f"= {est:.1f} GB and {what} several times that "
                                        f"(> 24 GB machine)"})
                print(f"{graph:9s} {module:8s} {results[-1]['note']}", flush=True)
                continue
            heavy = module in PYG_DENSE or module.startswith("lcm")
            reps = args.heavy_reps if heavy else args.reps
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", module,
                                   graph, str(reps)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                results.append({"module": module, "graph": graph, "time_s": None,
                                "extra_mem_gb": None,
                                "note": f"failed: {proc.stderr.strip().splitlines()[-1:]}"})
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(f"{graph:9s} {module:8s} time {r['time_s']} s  extra mem {r['extra_mem_gb']} GB"
                  f"{'  ' + r.get('note', '') if r.get('note') else ''}", flush=True)
    return results


def combine_rounds(per_round: list) -> list:
    """Median time (and the largest extra memory) of every (module, graph) over the rounds."""
    import statistics

    out = []
    for i, first in enumerate(per_round[0]):
        rows = [r[i] for r in per_round]
        times = [r["time_s"] for r in rows if r["time_s"] is not None]
        merged = dict(first)
        if times:
            merged["time_s"] = statistics.median(times)
            merged["round_times"] = times
            merged["first_call_s"] = statistics.median(r["times"][0] for r in rows
                                                       if r["time_s"] is not None)
            merged["extra_mem_gb"] = max(r["extra_mem_gb"] for r in rows
                                         if r["extra_mem_gb"] is not None)
        out.append(merged)
    return out


NAMES = {
    "pyg-sum": "PyG `SumAggregation`",
    "pyg-max": "PyG `MaxAggregation`",
    "pyg-gru": "PyG `GRUAggregation`",
    "pyg-lcm": "PyG `LCMAggregation`",
    "lcm": "graphkit `LCMAggregation`",
    "lcm-compiled": "graphkit `LCMAggregation(compiled_kernels=True)`",
    "ggem": "graphkit `GGeMAggregation` (8 groups)",
    "attsets": "graphkit `AttSetsAggregation`",
    "ponet": "graphkit `PoNetAggregation` (4 heads)",
    "spp": "graphkit `SPPAggregation` (1, 2, 4)",
}


def find(results: list, module: str, graph: str):
    for r in results:
        if r["module"] == module and r["graph"] == graph:
            return r
    return None


def table_lines(results: list, date: str) -> list:
    """Markdown table rows: time, ratio to PyG's sum in the same run, memory, date."""
    lines = ["| graph | module | fwd+bwd (s) | x PyG sum | extra peak memory (GB) | measured |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in results:
        name = NAMES.get(r["module"], r["module"])
        if r["time_s"] is None:
            lines.append(f"| {r['graph']} | {name} | — | — | {r.get('note', '')} | {date} |")
            continue
        ref = find(results, "pyg-sum", r["graph"])
        ratio = f"{r['time_s'] / ref['time_s']:.1f}" if ref and ref["time_s"] else "—"
        lines.append(f"| {r['graph']} | {name} | {r['time_s']:.3f} | {ratio} | "
                     f"{r['extra_mem_gb']:.2f} | {date} |")
    return lines


def lcm_summary(results: list, heavy_reps: int) -> list:
    """Speed-up of graphkit's LCM over PyG's on the uniform graph, and the goals."""
    theirs = find(results, "pyg-lcm", "uniform")
    lines = []
    for name in ("lcm-compiled", "lcm"):
        ours = find(results, name, "uniform")
        if not (ours and theirs and ours["time_s"] and theirs["time_s"]):
            continue
        speedup = theirs["time_s"] / ours["time_s"]
        text = (f"- {NAMES[name]} over PyG's `LCMAggregation`, uniform graph: **{speedup:.2f}x**"
                f" (goal >= {GOAL_SPEEDUP:.0f}x: {_report.goal(speedup >= GOAL_SPEEDUP)})")
        if "round_times" in ours and "round_times" in theirs and len(ours["round_times"]) > 1:
            per = [t / o for t, o in zip(theirs["round_times"], ours["round_times"])]
            text += "; per round " + ", ".join(f"{v:.2f}" for v in per)
        first = theirs.get("first_call_s"), ours.get("first_call_s")
        if heavy_reps > 1 and all(first):
            text += f"; first call of each process {first[0] / first[1]:.2f}x"
        lines.append(text + ".")
    for name in ("lcm-compiled", "lcm"):
        pl = find(results, name, "powerlaw")
        if pl and pl["time_s"]:
            lines.append(f"- {NAMES[name]} on the power-law graph: {pl['extra_mem_gb']:.2f} GB extra "
                         f"(goal < {GOAL_POWERLAW_GB:.0f} GB: "
                         f"{_report.goal(pl['extra_mem_gb'] < GOAL_POWERLAW_GB)}).")
    return lines


def format_section(results: list, args, cmd: str, env: str) -> str:
    """The markdown of this benchmark's section of ``leaderboards/speed.md``."""
    allocator = ("glibc's default allocator settings" if args.no_malloc_tuning else
                 "`graphkit.engine.keep_freed_memory()` (as graphkit's command and examples)")
    lines = ["## Aggregations: LCM, GGeM, AttSets, PoNet, SPP vs PyG (forward + backward)", "",
             f"Forward + backward of one aggregation over a sorted `index`, {NUM_NODES:,} nodes, "
             f"{CHANNELS} channels, each (module, graph) in a fresh one-thread process with "
             f"{allocator}, after a small warm-up (which also compiles the kernels of "
             "`compiled_kernels=True`). Time = best of the repetitions in a process (the steady "
             f"state of a training loop), median over {_report.plural(args.rounds, 'round')} "
             "run module after module; x PyG sum = ratio to PyG's `SumAggregation` in the "
             "same run; extra memory = "
             "peak RSS minus RSS before the first timed call. Graphs: `uniform`, in-degrees "
             "uniform in [0, 32] plus one node of 36; `powerlaw`, a truncated power law on "
             "[1, 1000] (mean about 16) with one node of 1000. graphkit's `LCMAggregation` "
             "applies the operator once per merge of a padding-free balanced tree (PyG pads "
             "every node to the largest degree) and keeps its backward factors in reused "
             "buffers.", ""]
    lines += table_lines(results, time.strftime("%Y-%m-%d", time.gmtime()))
    summary = lcm_summary(results, args.heavy_reps)
    lines += ["", f"Command: `{cmd}`", "", f"Environment: {env}"]
    if summary:
        lines += ["", "Goals:", ""] + summary
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graphs", default="uniform,powerlaw")
    p.add_argument("--modules", default=",".join(MODULES))
    p.add_argument("--reps", type=int, default=3, help="timed repetitions for cheap modules")
    p.add_argument("--heavy-reps", type=int, default=1,
                   help="timed repetitions for the GRU/LCM modules")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole sweep this many times, interleaved (module after module "
                        "within a round), and report per-module medians; ratios then compare "
                        "runs made under the same machine load")
    p.add_argument("--json", default="", help="optional JSON output file of the raw results")
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="run the workers with glibc's default allocator settings instead of "
                        "graphkit.engine.keep_freed_memory() (applied to every module alike)")
    p.add_argument("--worker", nargs=3, metavar=("MODULE", "GRAPH", "REPS"), help=argparse.SUPPRESS)
    _report.add_output_args(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], int(args.worker[2]))))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.no_malloc_tuning:
        env["GRAPHKIT_MALLOC_TUNING"] = "0"
    per_round = []
    for rnd in range(args.rounds):
        if args.rounds > 1:
            print(f"round {rnd + 1}/{args.rounds}", flush=True)
        per_round.append(sweep(args, env))
    results = combine_rounds(per_round)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    body = format_section(results, args, _report.command(__file__, argv),
                          _report.environment(_report.threads_label(1), args.note))
    _report.publish(args, SECTION, body)


if __name__ == "__main__":
    main()
