"""``graphkit datasets``: list the registry, show a card, verify local files."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List

__all__ = ["add_parser"]


def _cmd_list(args: argparse.Namespace) -> int:
    from graphkit.datasets import card, list_datasets

    rows = [(n, card(n)) for n in list_datasets()]
    if args.json:
        print(json.dumps([{"name": n, "task": c["task"], "status": c["status"], "aliases": c.get("aliases", [])}
                          for n, c in rows], indent=2))
        return 0
    w = max(len(n) for n, _ in rows)
    for n, c in rows:
        print(f"{n:<{w}}  {c['status']:<8}  {c['task']}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from graphkit.datasets import card

    c = card(args.name)
    if args.json:
        print(json.dumps(c, indent=2, ensure_ascii=False))
        return 0
    print(f"{c['name']}  ({c['status']})")
    if c.get("aliases"):
        print(f"  aliases:  {', '.join(c['aliases'])}")
    print(f"  task:     {c['task']}")
    print(f"  loader:   {c['loader']['kind']}" + (f" ({c['loader']['class']})" if "class" in c["loader"] else ""))
    print("  files:")
    for f in c["files"]:
        print(f"    {f['path']}  {f['size']:,} B  sha256 {f['sha256'][:16]}…")
    if c["stats"]:
        print("  stats:    " + ", ".join(f"{k}={v}" for k, v in c["stats"].items()))
    print(f"  license:  {c['license']}")
    print(f"  citation: {c['citation']}")
    if c.get("notes"):
        print(f"  notes:    {c['notes']}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from graphkit.datasets import list_datasets, search_roots, verify

    names: List[str] = args.names or list_datasets()
    print("searching: " + ", ".join(str(r) for r in search_roots(args.root)))
    bad = 0
    for n in names:
        res = verify(n, args.root)
        ok = sum(r["status"] == "ok" for r in res)
        mism = [r for r in res if r["status"] == "mismatch"]
        miss = [r for r in res if r["status"] == "missing"]
        state = "ok" if ok == len(res) else ("CORRUPT" if mism else "incomplete")
        print(f"{n:<22} {state:<10} {ok}/{len(res)} files ok")
        for r in mism:
            print(f"    mismatch: {r['detail']}")
        for r in miss:
            print(f"    missing:  {r['path']}")
        bad += bool(mism) or (bool(miss) and args.strict)
    return 1 if bad else 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Attach ``datasets {list,info,verify}`` to the ``graphkit`` command."""
    p = subparsers.add_parser("datasets", help="list, describe and verify registered datasets",
                              description="The dataset registry: cards in datasets/*.json.")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    pl = sub.add_parser("list", help="list registered datasets")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=_cmd_list)
    pi = sub.add_parser("info", help="show a dataset's card")
    pi.add_argument("name")
    pi.add_argument("--json", action="store_true", help="print the card as JSON")
    pi.set_defaults(func=_cmd_info)
    pv = sub.add_parser("verify", help="check the sha256 of the files found locally (no download)")
    pv.add_argument("names", nargs="*", metavar="NAME", help="datasets to check (default: all)")
    pv.add_argument("--root", default=None, help="a folder laid out like the mirror, searched first")
    pv.add_argument("--strict", action="store_true", help="also fail when files are missing")
    pv.set_defaults(func=_cmd_verify)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="graphkit")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["datasets", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
