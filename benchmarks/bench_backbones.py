r"""Speed of graphkit.backbones against PyG and timm, as ratios measured in one run.

* the graph ``PoolMixer`` (closed-neighbourhood mean − self, and max) against PyG's
  ``SimpleConv(aggr="mean"|"max", combine_root="self_loop")`` (− x for the mean) on the same
  random graph: forward + backward w.r.t. the features;
* ``PoolFormerEncoder`` S12 against timm's ``poolformer_s12`` (forward + backward), only when
  timm is installed: it is never a dependency of graphkit.

Every timing is the median of ``--reps`` repetitions after one warm-up, the implementations
interleaved; one thread unless ``--threads``. Writes its section of ``leaderboards/speed.md``
(``--no-write`` prints it only).

    python benchmarks/bench_backbones.py --nodes 20000 --edges 200000 --reps 5
"""
import argparse
import statistics
import time

import _report

SECTION = "bench_backbones"


def timed(fn, reps: int):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def fwd_bwd(module, *inputs):
    def run():
        for t in inputs:
            if getattr(t, "grad", None) is not None:
                t.grad = None
        module(*inputs).sum().backward()
    return run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=20000)
    p.add_argument("--edges", type=int, default=200000)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--image-size", type=int, default=112,
                   help="S12 input size (batch 2); 224 is the paper's")
    p.add_argument("--threads", type=int, default=1)
    _report.add_output_args(p)
    args = p.parse_args(argv)
    import torch
    from torch_geometric.nn import SimpleConv

    from graphkit.backbones import PoolMixer, create_backbone

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, args.nodes, (2, args.edges), generator=g)
    # PoolMixer counts every node once in its own window; SimpleConv would count an input
    # self-loop twice, so the benchmark graph has none (the outputs are then equal).
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    x = torch.randn(args.nodes, args.channels, generator=g, requires_grad=True)

    class PygMean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = SimpleConv("mean", combine_root="self_loop")

        def forward(self, x, ei):
            return self.conv(x, ei) - x

    pairs = [("mean", PoolMixer("mean"), PygMean()),
             ("max", PoolMixer("max"), SimpleConv("max", combine_root="self_loop"))]
    rows, ratios = [], []
    for aggr, ours, pyg in pairs:
        with torch.no_grad():
            torch.testing.assert_close(ours(x, edge_index), pyg(x, edge_index))
        t_ours, t_pyg = [], []
        for _ in range(args.reps):  # interleaved
            t_ours += timed(fwd_bwd(ours, x, edge_index), 1)
            t_pyg += timed(fwd_bwd(pyg, x, edge_index), 1)
        a, b = statistics.median(t_ours), statistics.median(t_pyg)
        ratios.append(a / b)
        rows.append(f"| graph `PoolMixer('{aggr}')` vs PyG `SimpleConv('{aggr}', "
                    f"combine_root='self_loop')` | {args.nodes:,} nodes, {args.edges:,} edges, "
                    f"{args.channels} ch | {1e3 * a:.1f} | {1e3 * b:.1f} | {a / b:.2f} |")

    try:
        import timm  # noqa: F401
        have_timm = True
    except ImportError:
        have_timm = False
    s = args.image_size
    img = torch.randn(2, 3, s, s, generator=g)
    ours = create_backbone("poolformer_s12")
    t_ours = timed(fwd_bwd(ours, img), args.reps)
    a = statistics.median(t_ours)
    if have_timm:
        import timm

        ref = timm.create_model("poolformer_s12")
        b = statistics.median(timed(fwd_bwd(ref, img), args.reps))
        rows.append(f"| `PoolFormerEncoder` S12 vs timm `poolformer_s12` | batch 2, {s}x{s} | "
                    f"{1e3 * a:.1f} | {1e3 * b:.1f} | {a / b:.2f} |")
        timm_note = ""
    else:
        rows.append(f"| `PoolFormerEncoder` S12 (timm not installed: no ratio) | batch 2, "
                    f"{s}x{s} | {1e3 * a:.1f} | — | — |")
        timm_note = (" timm is not installed in this environment, so the S12 row has no "
                     "reference time; install timm and rerun to fill it in.")
    body = "\n".join([
        "## Backbones: graph PoolMixer vs PyG, PoolFormer-S12 vs timm (forward + backward)",
        "",
        "Forward + backward w.r.t. the inputs, median of the repetitions after one warm-up "
        "(interleaved for the graph pairs, whose outputs are checked equal first). Ratio = "
        "graphkit time / reference time (< 1: graphkit faster)." + timm_note,
        "",
        "| pair | input | graphkit (ms) | reference (ms) | ratio |",
        "|---|---|---:|---:|---:|",
        *rows,
        "",
        f"Command: `{_report.command(__file__, argv)}`",
        "",
        "Environment: " + _report.environment(_report.threads_label(args.threads), args.note),
        "",
        "Goal (no numeric target is set): the graph PoolMixer no slower than PyG's SimpleConv "
        f"on the same graph: {_report.goal(max(ratios) <= 1.05)} (largest ratio "
        f"{max(ratios):.2f}).",
    ])
    _report.publish(args, SECTION, body)


if __name__ == "__main__":
    main()
