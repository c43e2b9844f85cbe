"""The leaderboard page: renders ``leaderboards/README.md``'s table from result records and
judges each entry against its paper value (:func:`render_block`, :func:`render_readme`,
:func:`metric_status`). The ``graphkit leaderboard`` command is :mod:`graphkit.leaderboard_cli`.

Only the part of the README between :data:`START` and :data:`END` is generated; the text around
it is kept as written. This module does not import torch.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .records import higher_is_better

START = "<!-- leaderboard:start -->"
END = "<!-- leaderboard:end -->"
DEFAULT_RESULTS = "leaderboards/results"
DEFAULT_README = "leaderboards/README.md"

README_TEMPLATE = """\
# Leaderboard: paper vs ours

Every row below compares a number reported in a paper with what graphkit's example script for
that paper measures, on the same dataset and (as far as stated) the same protocol. Nothing in the
table is typed in by hand: each entry is a result record `results/<entry>.json` written by an
example script at the end of its runs, and the table is generated from those records.

## How a record is produced

Each script in `examples/` trains the method for `--runs` seeds, reports the test score at the
best-validation epoch of each run (where the paper selected on test, the record says so), and
calls `graphkit.engine.write_result_record(...)`. The record holds:

- `entry`, `method` and `dataset` (the paper's names), `task`, `primary_metric`;
- `metrics`: for each metric (lower-case: `accuracy`, `recall@20`, `ndcg@20`, `macro_f1`, `mae`,
  ...; in the paper's unit) the paper's value and where it is printed, the tolerance we accept,
  our per-run values and their mean and sample standard deviation;
- `protocol` (split, model selection, evaluation) and `deviations` from the paper (smaller
  budgets on CPU, missing features, different splits), stated plainly;
- provenance: the exact command, git commit, package versions, hardware, wall time and date.

```python
from graphkit.engine import RunTracker, write_result_record

tracker = RunTracker()                       # tracker.add(run, valid=..., test=...) per evaluation
...
write_result_record(
    entry="dagnn-coauthor-cs", method="DAGNN", dataset="Coauthor-CS",
    task="node classification", primary_metric="accuracy",
    metrics={"accuracy": {"paper": 92.8, "paper_source": "Table 3", "tolerance": 1.0,
                          "values": tracker.best_test_values()}},   # in the paper's unit (%)
    runs=10, protocol="20/30 per class train/valid, rest test; test at best validation",
    deviations=["10 runs instead of 100"], wall_time_s=elapsed)
```

`mean` and `std` (sample standard deviation, `ddof=1`, as in OGB's examples) are computed from
`values`; the record is checked against the schema before it is written, and written atomically.

A shortfall is reported, not hidden: the status column says whether our mean is within the
stated tolerance of the paper's number, and the notes below the table give the reasons.

## Commands

```bash
# from the repository root:
python examples/<method>.py --dataset <name> --runs 10   # writes leaderboards/results/<entry>.json
graphkit leaderboard table      # rebuild the table below from leaderboards/results/*.json
graphkit leaderboard validate   # records well-formed and this page in sync (run by CI)
graphkit leaderboard check      # exit 1, naming every entry below paper - tolerance
graphkit leaderboard list       # one line per record
```

Status column: "meets paper" means our mean is at least the paper's value (at most, for error
metrics such as MAE); "within tolerance" means it falls short by no more than the record's
tolerance; "outside tolerance" means it falls short by more (`graphkit leaderboard check` fails
on those); "no tolerance stated" and "no paper value" are informational. Gaps are ours − paper,
absolute and relative to the paper's value.

## Results

"""


# --------------------------------------------------------------------------- formatting
def _digits(*xs: Optional[float]) -> int:
    vals = [abs(x) for x in xs if x is not None]
    return 2 if vals and max(vals) >= 1 else 4


def _fmt(x: float, d: int, sign: bool = False) -> str:
    s = f"{x:+.{d}f}" if sign else f"{x:.{d}f}"
    return s.replace("-", "−")  # typographic minus, as in the papers' tables


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def metric_status(metric: str, m: Dict[str, Any]) -> Tuple[str, bool]:
    """``(status text, falls short)`` for one metric of a record."""
    paper, tol, mean = m.get("paper"), m.get("tolerance"), m["mean"]
    if paper is None:
        return "no paper value", False
    shortfall = (paper - mean) if higher_is_better(metric) else (mean - paper)
    eps = 1e-9 * max(1.0, abs(paper))
    if shortfall <= eps:
        return "✅ meets paper", False
    if tol is None:
        return "no tolerance stated", False
    d = _digits(paper, mean)
    if shortfall <= tol + eps:
        return f"✅ within tolerance ({_fmt(tol, d)})", False
    return f"❌ outside tolerance ({_fmt(tol, d)})", True


def _sort_key(rec: Dict[str, Any]) -> Tuple[str, str, str]:
    return (rec["method"].lower(), rec["dataset"].lower(), rec["entry"])


def _metric_order(rec: Dict[str, Any]) -> List[str]:
    pm = rec["primary_metric"]
    return [pm] + sorted(k for k in rec["metrics"] if k != pm)


def _rel(target: pathlib.Path, start: pathlib.Path) -> str:
    try:
        return pathlib.Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()
    except ValueError:  # different drives on Windows
        return target.resolve().as_posix()


def render_block(records: Sequence[Dict[str, Any]], results_dir: pathlib.Path,
                 readme: pathlib.Path) -> str:
    """The generated README block (markers included) for ``records``."""
    results_dir, readme = pathlib.Path(results_dir), pathlib.Path(readme)
    rel_results = _rel(results_dir, readme.parent)
    lines = [START,
             f"<!-- generated by `graphkit leaderboard table` from {rel_results}/*.json; "
             f"do not edit by hand -->", ""]
    records = sorted(records, key=_sort_key)
    if not records:
        lines += [f"_No result records yet._ Run an example script, which writes "
                  f"`{rel_results}/<entry>.json`, then `graphkit leaderboard table`.", "", END]
        return "\n".join(lines)
    n_rows = sum(len(r["metrics"]) for r in records)
    n_short = sum(metric_status(k, m)[1] for r in records for k, m in r["metrics"].items())
    lines += [f"{len(records)} entries, {n_rows} metric rows, {n_short} outside tolerance.", "",
              "| Method | Dataset | Metric | Paper (source) | Ours (mean ± std, runs) "
              "| Gap (abs / rel) | Status | Record |",
              "|---|---|---|---|---|---|---|---|"]
    for rec in records:
        link = f"[{rec['entry']}]({rel_results}/{rec['entry']}.json)"
        for key in _metric_order(rec):
            m = rec["metrics"][key]
            paper, mean, std = m.get("paper"), m["mean"], m["std"]
            d = _digits(paper, mean)
            name = f"**{key}**" if key == rec["primary_metric"] else key
            if paper is None:
                paper_s, gap_s = "—", "—"
            else:
                src = m.get("paper_source") or "?"
                paper_s = f"{_fmt(paper, d)} ({src})"
                gap = mean - paper
                rel = f"{_fmt(100.0 * gap / abs(paper), 1, sign=True)}%" if paper != 0 else "n/a"
                gap_s = f"{_fmt(gap, d, sign=True)} / {rel}"
            ours = f"{_fmt(mean, d)} ± {_fmt(std, d)} ({rec['runs']})"
            status, _ = metric_status(key, m)
            lines.append("| " + " | ".join(_cell(c) for c in (
                rec["method"], rec["dataset"], name, paper_s, ours, gap_s, status, link)) + " |")
    lines += ["", "### Notes per entry", ""]
    for rec in records:
        lines.append(f"#### {rec['entry']}: {rec['method']} on {rec['dataset']} ({rec['task']})")
        lines.append("")
        lines.append(f"- Protocol: {rec['protocol']}")
        if rec["deviations"]:
            lines.append("- Deviations from the paper:")
            lines += [f"  - {d}" for d in rec["deviations"]]
        else:
            lines.append("- Deviations from the paper: none stated.")
        lines.append(f"- Command: `{rec['command']}`")
        hw = rec["hardware"]
        where = f"{hw.get('cpu', '?')}, {hw.get('cores', '?')} cores"
        if hw.get("gpu"):
            where += f", {hw['gpu']}"
        lines.append(f"- Run: {rec['date']}, commit `{rec['git_commit'][:12]}"
                     f"{'-dirty' if rec['git_commit'].endswith('-dirty') else ''}`, "
                     f"{rec['wall_time_s']:.0f} s on {where}; torch {rec['versions']['torch']}, "
                     f"PyG {rec['versions']['torch_geometric']}.")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def extract_block(text: str) -> Optional[str]:
    """The block from :data:`START` to :data:`END` inclusive, or ``None`` if absent."""
    i = text.find(START)
    j = text.find(END, i + len(START)) if i >= 0 else -1
    if i < 0 or j < 0:
        return None
    return text[i:j + len(END)]


def render_readme(existing: Optional[str], block: str) -> str:
    """``existing`` with its generated block replaced (the template when ``existing`` is None;
    the block is appended when the markers are missing)."""
    if existing is None:
        return README_TEMPLATE + block + "\n"
    old = extract_block(existing)
    if old is None:
        return existing.rstrip("\n") + "\n\n" + block + "\n"
    return existing.replace(old, block, 1)
