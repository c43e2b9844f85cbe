r"""Auto-GNN search throughput with and without constrained parameter sharing, in one run.

Two :class:`graphkit.nas.AutoGNN` searches with the same seed, space and child training
(Cora by default, the space of ``examples/autognn.py``), one with parameter sharing (a child
that inherits weights from a homogeneous ancestor is fine-tuned for ``--share-epochs`` epochs)
and one without (every child trained from scratch). They run interleaved in one process, one
trial at a time, always advancing the one that has used less time, until each has used
``--seconds`` of wall time; load changes on a shared machine then hit both alike. Reports
architectures evaluated per hour for both and their ratio (sharing / no sharing), with the
best validation accuracy each reached.

Writes its section of ``leaderboards/speed.md`` (``--write-speed-md PATH`` to write elsewhere,
``--no-write`` to print only).

    python benchmarks/bench_nas.py --seconds 300 --threads 1

The space is the example's full space (no choices removed by default).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import _report

SECTION = "bench_nas"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--root", default=None)
    p.add_argument("--seconds", type=float, default=300.0,
                   help="wall time of each search (default: 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child-epochs", type=int, default=100)
    p.add_argument("--child-patience", type=int, default=20)
    p.add_argument("--child-time", type=float, default=12.0,
                   help="seconds of training per child, 0 for no limit (default: 12)")
    p.add_argument("--share-epochs", type=int, default=20)
    _report.add_output_args(p)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import os

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.join(_report.REPO_ROOT, "examples"))
    import autognn as example  # the example's search space (same exclusions)

    from graphkit.datasets import load
    from graphkit.nas import AutoGNN

    ex = example.parse_args(["--dataset", args.dataset])
    space = example.make_space(ex)
    data = load(args.dataset, root=args.root)[0]
    data.y = data.y.view(-1)
    data.x = data.x.float()
    common = dict(seed=args.seed, epochs=args.child_epochs, patience=args.child_patience,
                  share_epochs=args.share_epochs, child_time=args.child_time or None,
                  progress=False)
    runs = {"sharing": AutoGNN(space, data, budget=1, share=True, **common),
            "no sharing": AutoGNN(space, data, budget=1, share=False, **common)}
    while True:
        pending = {k: s for k, s in runs.items() if s.elapsed < args.seconds}
        if not pending:
            break
        name = min(pending, key=lambda k: pending[k].elapsed)
        s = pending[name]
        s.budget = len(s.history) + 1
        s.search()
        h = s.history[-1]
        print(f"{name:10s} trial {h['trial']:3d}: val {h['val_acc']:.2f} epochs "
              f"{h['epochs_run']:3d} {h['time_s']:.1f}s (elapsed {s.elapsed:.0f}s)", flush=True)
    rows = []
    for name, s in runs.items():
        n = len(s.history)
        shared = sum(1 for h in s.history if h["inherited"] and
                     any(x is not None for x in h["inherited"]))
        rows.append((name, n, s.elapsed, 3600.0 * n / s.elapsed, shared, s.best_val))
    ratio = rows[0][3] / rows[1][3]
    env = _report.environment(_report.threads_label(args.threads), args.note)
    lines = [f"## Auto-GNN search throughput ({args.dataset})", "",
             "Architectures evaluated per hour by `graphkit.nas.AutoGNN` with constrained "
             "parameter sharing (children that inherit from a homogeneous ancestor are "
             f"fine-tuned {args.share_epochs} epochs) and without (every child trained from "
             f"scratch, at most {args.child_epochs} epochs, patience {args.child_patience}"
             + (f", {args.child_time:g} s" if args.child_time else "") + "); "
             "both searches interleaved trial by trial in one process, "
             f"{args.seconds:g} s each.", "",
             "| search | trials | seconds | architectures / hour | children that inherited "
             "| best val acc |", "|---|---:|---:|---:|---:|---:|"]
    for name, n, el, per_h, shared, best in rows:
        lines.append(f"| {name} | {n} | {el:.0f} | {per_h:.0f} | {shared} | {best:.2f} |")
    lines += ["", f"Ratio sharing / no sharing: **{ratio:.2f}x** architectures per hour.", "",
              f"`{_report.command(__file__, argv)}` — {env}"]
    _report.publish(args, SECTION, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
