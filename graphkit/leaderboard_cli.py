"""``graphkit leaderboard``: build and check ``leaderboards/README.md`` from result records.

* ``table``    rebuilds the generated block of the README (paper vs ours, gap, status, notes);
* ``check``    exits 1 and names every entry whose mean falls short of paper − tolerance
  (paper + tolerance for lower-is-better metrics such as MAE);
* ``validate`` exits 1 when a record is malformed or the README block is not what ``table``
  would write (CI runs this one, so an honest shortfall never blocks a change);
* ``list``     prints one line per record.

The page itself is rendered by :mod:`graphkit.engine.leaderboard`. This module does not import
torch.
"""
from __future__ import annotations

import argparse
import difflib
import pathlib
import sys
from typing import Any, Dict, List, Tuple

from graphkit.engine.leaderboard import (
    DEFAULT_README,
    DEFAULT_RESULTS,
    END,
    START,
    _digits,
    _fmt,
    _metric_order,
    _sort_key,
    extract_block,
    metric_status,
    render_block,
    render_readme,
)
from graphkit.engine.records import RecordError, higher_is_better, load_records
from graphkit.utils.io import atomic_write_text


def _load(args: argparse.Namespace) -> Tuple[List[Dict[str, Any]], List[RecordError]]:
    records, errors = load_records(args.results)
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    return records, errors


def cmd_table(args: argparse.Namespace) -> int:
    records, errors = _load(args)
    if errors:
        print(f"leaderboard table: {len(errors)} malformed record(s); README not written",
              file=sys.stderr)
        return 1
    readme = pathlib.Path(args.readme)
    existing = readme.read_text(encoding="utf-8") if readme.exists() else None
    text = render_readme(existing, render_block(records, pathlib.Path(args.results), readme))
    if text != existing:
        atomic_write_text(readme, text)
        print(f"wrote {readme} ({len(records)} records)")
    else:
        print(f"{readme} is up to date ({len(records)} records)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    records, errors = _load(args)
    failing: List[str] = []
    checked = 0
    for rec in sorted(records, key=_sort_key):
        keys = [rec["primary_metric"]] if args.primary_only else _metric_order(rec)
        for key in keys:
            m = rec["metrics"][key]
            status, short = metric_status(key, m)
            if m.get("paper") is not None and m.get("tolerance") is not None:
                checked += 1
            if short:
                d = _digits(m["paper"], m["mean"])
                op, bound = ("<", m["paper"] - m["tolerance"]) if higher_is_better(key) \
                    else (">", m["paper"] + m["tolerance"])
                failing.append(rec["entry"])
                print(f"FAIL {rec['entry']} ({rec['method']} on {rec['dataset']}): {key} "
                      f"mean {_fmt(m['mean'], d)} {op} paper {_fmt(m['paper'], d)} "
                      f"{'−' if op == '<' else '+'} tolerance {_fmt(m['tolerance'], d)} "
                      f"= {_fmt(bound, d)}")
    names = sorted(set(failing))
    print(f"leaderboard check: {len(records)} records, {checked} metrics with a paper value "
          f"and tolerance, {len(names)} entries below tolerance"
          + (f": {', '.join(names)}" if names else ""))
    if errors:
        print(f"leaderboard check: {len(errors)} malformed record(s) could not be checked",
              file=sys.stderr)
    return 1 if (names or errors) else 0


def cmd_validate(args: argparse.Namespace) -> int:
    records, errors = _load(args)
    ok = not errors
    readme = pathlib.Path(args.readme)
    if not readme.exists():
        print(f"error: {readme} does not exist; run `graphkit leaderboard table`",
              file=sys.stderr)
        ok = False
    elif not errors:
        current = extract_block(readme.read_text(encoding="utf-8"))
        expected = render_block(records, pathlib.Path(args.results), readme)
        if current is None:
            print(f"error: {readme} has no generated block ({START} ... {END}); "
                  f"run `graphkit leaderboard table`", file=sys.stderr)
            ok = False
        elif current != expected:
            diff = list(difflib.unified_diff(current.splitlines(), expected.splitlines(),
                                             f"{readme} (current)", "generated", lineterm="",
                                             n=1))
            print(f"error: {readme} is out of date with the {len(records)} record(s) in "
                  f"{args.results}; run `graphkit leaderboard table`", file=sys.stderr)
            print("\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else ""), file=sys.stderr)
            ok = False
    if ok:
        print(f"leaderboard validate: {len(records)} record(s) well-formed, {readme} in sync")
        return 0
    return 1


def cmd_list(args: argparse.Namespace) -> int:
    records, errors = _load(args)
    if not records:
        print(f"no result records in {args.results}")
    for rec in sorted(records, key=_sort_key):
        key = rec["primary_metric"]
        m = rec["metrics"][key]
        d = _digits(m.get("paper"), m["mean"])
        paper = "—" if m.get("paper") is None else _fmt(m["paper"], d)
        status, _ = metric_status(key, m)
        print(f"{rec['entry']}\t{rec['method']}\t{rec['dataset']}\t{key} "
              f"{_fmt(m['mean'], d)} ± {_fmt(m['std'], d)} (n={rec['runs']}; paper {paper})"
              f"\t{status}")
    return 1 if errors else 0


def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Attach ``leaderboard {table,check,validate,list}`` to a ``graphkit`` sub-parser set."""
    parser = subparsers.add_parser(
        "leaderboard", help="build and check the paper-vs-ours leaderboard",
        description="Build and check leaderboards/README.md from result records.")
    sub = parser.add_subparsers(dest="leaderboard_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default=DEFAULT_RESULTS,
                       help=f"folder of <entry>.json records (default: {DEFAULT_RESULTS})")
        p.add_argument("--readme", default=DEFAULT_README,
                       help=f"the leaderboard page (default: {DEFAULT_README})")

    p = sub.add_parser("table", help="rebuild the README table from the records")
    common(p)
    p.set_defaults(func=cmd_table)
    p = sub.add_parser("check", help="exit 1 naming every entry below paper - tolerance")
    common(p)
    p.add_argument("--primary-only", action="store_true",
                   help="check only each record's primary metric")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("validate",
                       help="exit 1 if a record is malformed or the README is out of date")
    common(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("list", help="one line per record")
    common(p)
    p.set_defaults(func=cmd_list)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_action)
    return parser
