"""The ``graphkit`` command.

Sub-commands are registered by the modules that implement them; each provides
``add_parser(subparsers)`` which attaches a parser whose ``func`` default runs it.
Imports are lazy so that ``graphkit --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# (sub-command, module providing ``add_parser``)
_COMMANDS = [
    ("demo", "graphkit.demo"),
    ("rec", "graphkit.rec.cli"),
    ("leaderboard", "graphkit.engine.leaderboard"),
    ("datasets", "graphkit.datasets.cli"),
    ("bench", "graphkit.bench"),
]


def build_parser() -> argparse.ArgumentParser:
    from graphkit import __version__

    parser = argparse.ArgumentParser(
        prog="graphkit",
        description="Graph-learning layers, leaderboards and recommenders on PyTorch Geometric.",
    )
    parser.add_argument("--version", action="version", version=f"graphkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a sub-command whose module is not built yet
            if exc.name != module:
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        ret = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(ret or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
