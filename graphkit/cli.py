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
    ("leaderboard", "graphkit.leaderboard_cli"),
    ("datasets", "graphkit.datasets.cli"),
]


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The full parser, or (``only=NAME``) one that registers just that sub-command, so that
    e.g. ``graphkit leaderboard validate`` does not import torch."""
    from graphkit import __version__

    parser = argparse.ArgumentParser(
        prog="graphkit",
        description="Graph-learning layers, leaderboards and recommenders on PyTorch Geometric.",
    )
    parser.add_argument("--version", action="version", version=f"graphkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _COMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a sub-command whose module is not built yet
            if exc.name != module:
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    known = {name for name, _ in _COMMANDS}
    parser = build_parser(only=argv[0] if argv and argv[0] in known else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from graphkit.engine.memory import keep_freed_memory

    keep_freed_memory()  # training and ranking reuse freed memory instead of page-faulting it
    try:
        ret = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    return int(ret or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
