"""Shared output of the benchmark scripts: each one owns a section of ``leaderboards/speed.md``.

A section sits between two marker lines, ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.
:func:`write_section` replaces what lies between them (or appends the section when the file
has none yet) and leaves the rest of the file as it was. The new file is written to a temporary
file in the same folder and renamed over the old one, so an interrupted run never leaves a
half-written page.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from typing import List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEED_MD = os.path.join(REPO_ROOT, "leaderboards", "speed.md")
_OUTPUT_FLAGS = ("--write-speed-md", "--note")  # flags that take a value and are not recorded


def markers(name: str) -> tuple:
    """The begin and end marker lines of section ``name``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r} must be letters, digits, '_', '.' or '-'")
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(text: str, name: str, body: str, where: str = "<text>") -> str:
    """``text`` with the section ``name`` replaced by ``body`` (appended if it has none)."""
    begin, end = markers(name)
    section = f"{begin}\n{body.strip(chr(10))}\n{end}"
    n_begin, n_end = text.count(begin), text.count(end)
    if n_begin == 0 and n_end == 0:
        return text.rstrip("\n") + "\n\n" + section + "\n"
    if n_begin != 1 or n_end != 1:
        raise ValueError(f"{where}: expected one {begin!r} and one {end!r}, found {n_begin} and "
                         f"{n_end}; fix the markers by hand")
    i, j = text.index(begin), text.index(end)
    if j < i:
        raise ValueError(f"{where}: {end!r} comes before {begin!r}; fix the markers by hand")
    return text[:i] + section + text[j + len(end):]


def write_section(path: str, name: str, body: str) -> None:
    """Replace section ``name`` of the markdown file ``path`` by ``body``, atomically."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    else:
        old = "# Speed\n"
    new = replace_section(old, name, body, where=path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".speed-", suffix=".md.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--write-speed-md PATH`` (default ``leaderboards/speed.md``), ``--no-write``, ``--note``."""
    parser.add_argument("--write-speed-md", metavar="PATH", default=SPEED_MD,
                        help="markdown file whose section this benchmark rewrites "
                             "(default: leaderboards/speed.md)")
    parser.add_argument("--no-write", action="store_true",
                        help="print the section only; leave every file as it is")
    parser.add_argument("--note", default="",
                        help="sentence added to the section's environment line "
                             "(e.g. what else ran on the machine)")


def command(script: str, argv: Optional[Sequence[str]]) -> str:
    """The command that reproduces this run, without the output flags."""
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in _OUTPUT_FLAGS:
            skip = True
            continue
        if a == "--no-write" or any(a.startswith(f + "=") for f in _OUTPUT_FLAGS):
            continue
        kept.append(a)
    return " ".join(["python", f"benchmarks/{os.path.basename(script)}"] + kept)


def threads_label(*counts: int) -> str:
    """``1 thread``, ``2 threads``, ``1 and 2 threads``."""
    if not counts:
        raise ValueError("threads_label needs at least one thread count")
    nums = [str(c) for c in counts]
    text = nums[0] if len(nums) == 1 else ", ".join(nums[:-1]) + " and " + nums[-1]
    return f"{text} thread" + ("" if counts == (1,) else "s")


def plural(n: int, word: str) -> str:
    """``1 round``, ``5 rounds``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def environment(threads: str, note: str = "", pyg: bool = True) -> str:
    """One line: machine, versions, threads (e.g. :func:`threads_label`), date, the note."""
    import torch

    parts = [platform.processor() or platform.machine(), f"torch {torch.__version__}"]
    if pyg:
        import torch_geometric

        parts.append(f"PyG {torch_geometric.__version__}")
    parts += [threads, time.strftime("%Y-%m-%d", time.gmtime())]
    if hasattr(os, "getloadavg"):
        parts.append(f"1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
                     "at the end")
    line = ", ".join(parts) + "."
    return line + (f" {note.strip()}" if note.strip() else "")


def goal(met: bool) -> str:
    return "**met**" if met else "**not met**"


def publish(args: argparse.Namespace, name: str, body: str) -> None:
    """Print the section and, unless ``--no-write``, write it into ``--write-speed-md``."""
    print(body)
    if not args.no_write:
        write_section(args.write_speed_md, name, body)
        print(f"wrote section {name!r} of {args.write_speed_md}")
