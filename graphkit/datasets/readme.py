"""Rebuild ``datasets/README.md`` from the cards: ``python -m graphkit.datasets.readme``.

With ``--check`` nothing is written and the exit status says whether the file is up to date.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from graphkit.datasets.registry import card, cards_dir, list_datasets

_HEADER = """# Datasets

One JSON card per dataset (`<name>.json`): name, aliases, task, loader, every file with its size,
sha256 and download URLs, expected statistics, license and citation. `graphkit.datasets.load(name)`
looks for the files in `root` → `$GRAPHKIT_DATA` → the cache (`$GRAPHKIT_CACHE`, default
`~/.cache/graphkit`), verifies them, and only then downloads into the cache. Dataset files are
never stored in this repository. `graphkit datasets list|info NAME|verify [NAME...]` shows the
registry and checks local files.

This page is generated from the cards: `python -m graphkit.datasets.readme`.

Card fields: `name`, `aliases` (names are matched case-, dash- and underscore-insensitively),
`task`, `status`, `loader` (`kind` and, for torch_geometric-backed datasets, the PyG `class`, the
working `root` and `raw_dir` inside `<cache>/pyg/`, and whether the file is a zip to `extract`),
`files` (each: `path` relative to a root laid out like the mirror, `size`, `sha256`, `urls` tried in
order, `source` it was taken from), optional `archives` (a download `url` whose `members` map to
card files; zip or gz), `stats` (what the tests check after loading) and `stats_source`, `license`,
`citation`, `notes`.

Status: **complete** = every file known and loadable; **partial** = some files are not in the
offline mirror or the release lacks parts (see notes); **variant** = loads, but differs from the
published version (smoke tests only).

"""

_NOT_REGISTERED = """
## Not registered

* **ZINC (12k subset)**: only the subset index files (`ZINC/raw/{train,val,test}.index`) are in the
  offline mirror; the molecule graphs (benchmarking-gnns `molecules.zip`) are not, and the index files
  are useless alone. torch_geometric's `ZINC` class downloads the full data where there is network access.
* **Amazon-Book (LightGCN), byte-exact Yelp2018 train.txt, MovieLens-1M ratings, JODIE Wikipedia/Reddit
  with features, HGB Freebase, OGB datasets**: not in the offline mirror (see its MANIFEST.md).
* **UCI extra files** (`Temporal/UCI/CollegeMsg.txt`, `uci.csv`): the same events as `ml_uci.csv`, which
  is the file the UCI card uses.
"""


def _fmt_stats(stats: dict) -> str:
    if not stats:
        return "—"
    return "; ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in stats.items())


def render() -> str:
    out = [_HEADER, "| name | task | status | statistics | license |", "|---|---|---|---|---|"]
    for n in list_datasets():
        c = card(n)
        out.append(f"| [{n}]({_file(n)}) | {c['task']} | {c['status']} | "
                   f"{_fmt_stats(c['stats'])} | {c['license']} |")
    out.append("\n## Citations and notes\n")
    for n in list_datasets():
        c = card(n)
        total = sum(f["size"] for f in c["files"])
        out.append(f"### {n}\n")
        if c.get("aliases"):
            out.append(f"Aliases: {', '.join('`' + a + '`' for a in c['aliases'])}. ")
        out.append(f"{len(c['files'])} file(s), {total:,} bytes. Cite: {c['citation']}\n")
        if c.get("notes"):
            out.append(f"{c['notes']}\n")
    out.append(_NOT_REGISTERED)
    return "\n".join(out).rstrip() + "\n"


def _file(name: str) -> str:
    for p in sorted(cards_dir().glob("*.json")):
        import json

        if json.loads(p.read_text(encoding="utf-8"))["name"] == name:
            return p.name
    return ""


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m graphkit.datasets.readme", description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if datasets/README.md is out of date")
    ap.add_argument("--out", default=None, help="output file (default: README.md beside the cards)")
    args = ap.parse_args(argv)
    path = Path(args.out) if args.out else cards_dir() / "README.md"
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m graphkit.datasets.readme", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
