"""Result records: one JSON file per leaderboard entry, written by the example scripts.

A record is ``leaderboards/results/<entry>.json``::

    {"entry", "method", "dataset", "task", "primary_metric",
     "metrics": {name: {"paper", "paper_source", "tolerance", "mean", "std", "values"}},
     "runs", "protocol", "deviations", "command", "git_commit", "versions", "hardware",
     "wall_time_s", "date"}            (+ optional "extra")

:func:`validate_record` is the single schema check, used both when writing
(:func:`write_result_record`) and by ``graphkit leaderboard validate``. This module does not
import torch at import time.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import operator
import os
import pathlib
import platform
import re
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from graphkit.utils.io import atomic_write_text

from .tracker import mean_std

PathLike = Union[str, os.PathLike]

REQUIRED_KEYS = ("entry", "method", "dataset", "task", "primary_metric", "metrics", "runs",
                 "protocol", "deviations", "command", "git_commit", "versions", "hardware",
                 "wall_time_s", "date")
OPTIONAL_KEYS = ("extra",)
METRIC_KEYS = ("paper", "paper_source", "tolerance", "mean", "std", "values")
REQUIRED_VERSIONS = ("python", "torch", "torch_geometric", "numpy", "graphkit")

#: Metric names without a cut-off.
PLAIN_METRICS = frozenset({
    "accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1", "f1", "ap", "auc",
    "roc_auc", "pr_auc", "mrr", "mae", "rmse", "mse", "r2",
})
#: Metric names that take a cut-off ``@k`` (``recall@20``).
AT_K_METRICS = frozenset({"recall", "ndcg", "precision", "hit", "hits", "f1", "mrr", "map"})
#: Metrics where lower is better; for these, "falling short" means ``mean > paper + tolerance``.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse"})

_ENTRY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_METRIC_RE = re.compile(r"([a-z][a-z0-9_]*)(?:@([1-9][0-9]*))?")


class RecordError(ValueError):
    """A result record is malformed; the message names the file and every bad field."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"{source}: invalid result record:\n"
                         + "\n".join(f"  - {p}" for p in self.problems))


def is_valid_metric_name(name: str) -> bool:
    """``True`` for lower-case names like ``accuracy``, ``macro_f1``, ``recall@20``."""
    m = _METRIC_RE.fullmatch(name) if isinstance(name, str) else None
    if not m:
        return False
    base, k = m.group(1), m.group(2)
    return base in AT_K_METRICS if k else base in PLAIN_METRICS


def higher_is_better(metric: str) -> bool:
    return metric.split("@")[0] not in LOWER_IS_BETTER


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


#: Short names of common hyper-parameters in entry ids (:func:`variant_tag`).
SETTING_ABBREVIATIONS = {
    "negative_candidates": "neg", "batch_size": "batch", "lr": "lr", "embedding_dim": "dim",
    "num_layers": "layers", "reg_weight": "reg", "init_std": "std", "num_negatives": "neg",
    "negative_weight": "negw", "patience": "patience", "sampler": "sampler",
    "num_neighbors": "neighbors", "lambda_": "lambda", "sift_positives": "sift",
}


def variant_tag(changed: Mapping[str, Any]) -> str:
    """A file-name-safe tag naming the settings a run changed from the paper's.

    Used in entry ids so that a variant says what varies: ``{"negative_candidates": 64}``
    gives ``"neg64"``, ``{"lr": 1e-3, "batch_size": 8192}`` gives ``"lr0.001-batch8192"``
    (in the mapping's order), ``{"sampler": "epoch"}`` gives ``"sampler-epoch"``. Known settings
    are abbreviated by :data:`SETTING_ABBREVIATIONS`; other names keep their own spelling with
    ``_`` turned into ``-``. An empty mapping gives ``""``.
    """
    parts = []
    for name, value in changed.items():
        short = SETTING_ABBREVIATIONS.get(name, name.replace("_", "-"))
        text = format(value, "g") if isinstance(value, float) else str(value)
        text = re.sub(r"[^A-Za-z0-9_.+-]", "-", text)
        # "neg64", "lr0.001"; a value that does not start with a digit is set off: "sampler-epoch"
        parts.append(short + (text if text[:1].isdigit() else "-" + text))
    tag = "-".join(parts)
    if tag and not _ENTRY_RE.fullmatch(tag):  # e.g. a negative value as the first setting
        raise ValueError(f"variant_tag: cannot make a file-name-safe tag of {dict(changed)!r}")
    return tag


def validate_record(record: Any, source: str = "<record>",
                    expected_entry: Optional[str] = None) -> List[str]:
    """Return the list of problems with ``record`` (empty when well-formed).

    Each problem names the field, e.g. ``"metrics.accuracy.values: 9 values but runs = 10"``.
    ``expected_entry`` (the file stem) must equal ``record["entry"]`` when given.
    """
    p: List[str] = []
    if not isinstance(record, dict):
        return [f"top level: expected a JSON object, got {type(record).__name__}"]
    for key in REQUIRED_KEYS:
        if key not in record:
            p.append(f"{key}: missing required field")
    for key in record:
        if key not in REQUIRED_KEYS and key not in OPTIONAL_KEYS:
            p.append(f"{key}: unknown field (allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")

    def nonempty_str(key: str) -> bool:
        if key in record and not (isinstance(record[key], str) and record[key].strip()):
            p.append(f"{key}: expected a non-empty string, got {record[key]!r}")
            return False
        return key in record

    for key in ("method", "dataset", "task", "primary_metric", "protocol", "command",
                "git_commit", "date"):
        nonempty_str(key)
    if nonempty_str("entry"):
        if not _ENTRY_RE.fullmatch(record["entry"]):
            p.append(f"entry: {record['entry']!r} must be a file-name-safe id "
                     f"(letters, digits, '_', '.', '+', '-')")
        elif expected_entry is not None and record["entry"] != expected_entry:
            p.append(f"entry: {record['entry']!r} does not match the file name "
                     f"{expected_entry!r}.json")
    if isinstance(record.get("date"), str) and record["date"].strip():
        try:
            _dt.datetime.fromisoformat(record["date"].replace("Z", "+00:00"))
        except ValueError:
            p.append(f"date: {record['date']!r} is not an ISO-8601 date-time")

    runs = record.get("runs")
    runs_ok = isinstance(runs, int) and not isinstance(runs, bool) and runs >= 1
    if "runs" in record and not runs_ok:
        p.append(f"runs: expected a positive integer, got {runs!r}")

    if "wall_time_s" in record and not (_is_number(record["wall_time_s"])
                                        and record["wall_time_s"] >= 0):
        p.append(f"wall_time_s: expected a non-negative number, got {record['wall_time_s']!r}")

    dev = record.get("deviations")
    if "deviations" in record and not (isinstance(dev, list)
                                       and all(isinstance(d, str) and d.strip() for d in dev)):
        p.append("deviations: expected a list of non-empty strings")

    versions = record.get("versions")
    if "versions" in record:
        if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
            p.append("versions: expected an object mapping package names to version strings")
        else:
            for k in REQUIRED_VERSIONS:
                if k not in versions:
                    p.append(f"versions.{k}: missing")
    if "hardware" in record:
        hw = record["hardware"]
        if not isinstance(hw, dict):
            p.append("hardware: expected an object")
        else:
            for k in ("cpu", "cores"):
                if k not in hw:
                    p.append(f"hardware.{k}: missing")
    if "extra" in record and not isinstance(record["extra"], dict):
        p.append("extra: expected an object")

    metrics = record.get("metrics")
    if "metrics" in record:
        if not isinstance(metrics, dict) or not metrics:
            p.append("metrics: expected a non-empty object {metric name: {...}}")
            metrics = {}
        for name, m in metrics.items():
            where = f"metrics.{name}"
            if not is_valid_metric_name(name):
                p.append(f"{where}: metric name must be lower-case and one of "
                         f"{sorted(PLAIN_METRICS)} or <{'|'.join(sorted(AT_K_METRICS))}>@<k>")
            if not isinstance(m, dict):
                p.append(f"{where}: expected an object")
                continue
            for key in METRIC_KEYS:
                if key not in m:
                    p.append(f"{where}.{key}: missing required field")
            for key in m:
                if key not in METRIC_KEYS:
                    p.append(f"{where}.{key}: unknown field (allowed: {', '.join(METRIC_KEYS)})")
            if "paper" in m and m["paper"] is not None and not _is_number(m["paper"]):
                p.append(f"{where}.paper: expected a finite number or null, got {m['paper']!r}")
            if "paper_source" in m:
                if not isinstance(m["paper_source"], str):
                    p.append(f"{where}.paper_source: expected a string")
                elif m.get("paper") is not None and not m["paper_source"].strip():
                    p.append(f"{where}.paper_source: must say where the paper value comes from "
                             f"(e.g. 'Table 3')")
            if "tolerance" in m and m["tolerance"] is not None and not (
                    _is_number(m["tolerance"]) and m["tolerance"] >= 0):
                p.append(f"{where}.tolerance: expected a non-negative number or null, "
                         f"got {m['tolerance']!r}")
            values = m.get("values")
            if "values" in m:
                if not (isinstance(values, list) and values and all(_is_number(v) for v in values)):
                    p.append(f"{where}.values: expected a non-empty list of finite numbers")
                    values = None
                elif runs_ok and len(values) != runs:
                    p.append(f"{where}.values: {len(values)} values but runs = {runs}")
            for key in ("mean", "std"):
                if key in m and not _is_number(m[key]):
                    p.append(f"{where}.{key}: expected a finite number, got {m[key]!r}")
            if values and _is_number(m.get("mean")) and _is_number(m.get("std")):
                mean, std = mean_std(values)
                if not _close(m["mean"], mean):
                    p.append(f"{where}.mean: {m['mean']!r} is not the mean of values ({mean!r})")
                if not _close(m["std"], std):
                    p.append(f"{where}.std: {m['std']!r} is not the sample std (ddof=1) of "
                             f"values ({std!r})")
        pm = record.get("primary_metric")
        if isinstance(pm, str) and pm.strip() and isinstance(metrics, dict) and pm not in metrics:
            p.append(f"primary_metric: {pm!r} is not a key of metrics ({sorted(metrics)})")
    return p


def check_record(record: Any, source: str = "<record>",
                 expected_entry: Optional[str] = None) -> None:
    """Raise :class:`RecordError` naming ``source`` and every bad field, if any."""
    problems = validate_record(record, source, expected_entry)
    if problems:
        raise RecordError(source, problems)


def load_record(path: PathLike) -> Dict[str, Any]:
    """Read and validate one record file."""
    path = pathlib.Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError(str(path), [f"line {exc.lineno}, column {exc.colno}: invalid JSON "
                                      f"({exc.msg})"]) from None
    check_record(record, str(path), expected_entry=path.stem)
    return record


def load_records(results_dir: PathLike) -> Tuple[List[Dict[str, Any]], List[RecordError]]:
    """All ``*.json`` records in ``results_dir`` (sorted by file name) and the errors found.
    A missing folder holds no records."""
    results_dir = pathlib.Path(results_dir)
    records, errors = [], []
    if not results_dir.is_dir():
        return records, errors
    for path in sorted(results_dir.glob("*.json")):
        try:
            records.append(load_record(path))
        except RecordError as exc:
            errors.append(exc)
    return records, errors


# --------------------------------------------------------------------------- provenance
def _repo_root() -> Optional[pathlib.Path]:
    here = pathlib.Path(__file__).resolve().parent.parent.parent
    return here if (here / ".git").exists() else None


def git_commit(cwd: Optional[PathLike] = None) -> str:
    """``git rev-parse HEAD`` (+ ``-dirty`` when tracked files are modified), else ``"unknown"``."""
    cwd = cwd or _repo_root() or os.getcwd()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=cwd, capture_output=True, text=True, timeout=30)
        if status.returncode == 0 and status.stdout.strip():
            commit += "-dirty"
        return commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> Dict[str, str]:
    """Versions of python, torch, torch_geometric, numpy, graphkit (+ scipy, ogb if present)."""
    import importlib

    out = {"python": platform.python_version()}
    for name in ("torch", "torch_geometric", "numpy", "graphkit", "scipy", "ogb"):
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except Exception:
            if name in REQUIRED_VERSIONS:
                out[name] = "not installed"
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware_info() -> Dict[str, Any]:
    """CPU model, logical cores, memory, OS, and the GPU name when CUDA is used."""
    info: Dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count() or 0,
                            "platform": platform.platform(), "gpu": None}
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
                    break
    except (OSError, ValueError):
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except Exception:
        pass
    return info


def current_command(argv: Optional[Sequence[str]] = None) -> str:
    """The command line of this process, e.g. ``python examples/dagnn.py --dataset Cora``."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or argv[0] in ("", "-c"):
        return shlex.join(["python"] + argv) if argv else "python"
    first = argv[0]
    try:
        rel = os.path.relpath(first)
        if not rel.startswith(".."):
            first = rel
    except ValueError:
        pass
    if first.endswith(".py"):
        return shlex.join(["python", first] + argv[1:])
    if os.path.basename(first) == "__main__.py" or first.endswith("-m"):
        return shlex.join(["python", "-m"] + argv[1:])
    return shlex.join([os.path.basename(first)] + argv[1:])


def _as_float_list(values: Any, where: str) -> List[float]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{where}: expected a list of per-run numbers, "
                        f"got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{where}[{i}]: expected a number, got {type(v).__name__}")
        out.append(float(v))
    return out


def write_result_record(*, entry: str, method: str, dataset: str, task: str,
                        primary_metric: str, metrics: Dict[str, Dict[str, Any]], runs: int,
                        protocol: str, deviations: Union[List[str], str], wall_time_s: float,
                        out_dir: PathLike = "leaderboards/results",
                        command: Optional[str] = None,
                        extra: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    r"""Validate and atomically write ``<out_dir>/<entry>.json``.

    Args:
        entry (str): The record id and file name, e.g. ``"dagnn-coauthor-cs"``.
        method (str): The paper's method name (``"DAGNN"``).
        dataset (str): The paper's dataset name (``"Coauthor-CS"``).
        task (str): e.g. ``"node classification"``.
        primary_metric (str): A key of ``metrics``.
        metrics (dict): ``{name: {"paper": float|None, "paper_source": str,
            "tolerance": float|None, "values": [per-run floats]}}``; names are lower-case
            (``accuracy``, ``recall@20``, ``macro_f1``, ``mae``) and values are in the paper's
            unit. ``mean`` and ``std`` (sample, ``ddof=1``) are computed here.
        runs (int): Number of runs; every ``values`` list has this length.
        protocol (str): Split, selection rule, evaluation protocol.
        deviations (list of str or str): Differences from the paper ("" or [] for none).
        wall_time_s (float): Total wall time of the runs.
        out_dir (str, optional): Output folder. (default: :obj:`"leaderboards/results"`)
        command (str, optional): The command; defaults to this process's ``sys.argv``.
        extra (dict, optional): Any further JSON data (hyper-parameters, per-run epochs).

    Returns:
        pathlib.Path: The written file.

    Raises:
        RecordError: naming the file and every malformed field; nothing is written then.

    Under DDP, call it on the main process only.
    """
    if not isinstance(runs, bool) and hasattr(runs, "__index__"):
        runs = operator.index(runs)  # NumPy / 0-d tensor integers
    if hasattr(wall_time_s, "item"):
        wall_time_s = wall_time_s.item()
    if isinstance(deviations, str):
        deviations = [deviations] if deviations.strip() else []
    elif isinstance(deviations, (list, tuple)):
        deviations = list(deviations)
    if not isinstance(metrics, dict):
        raise TypeError(f"write_result_record({entry!r}): metrics must be a dict, "
                        f"got {type(metrics).__name__}")
    full_metrics: Dict[str, Dict[str, Any]] = {}
    for name, m in metrics.items():
        where = f"write_result_record({entry!r}): metrics.{name}"
        if not isinstance(m, dict):
            raise TypeError(f"{where}: expected a dict, got {type(m).__name__}")
        unknown = set(m) - set(METRIC_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: paper, "
                             f"paper_source, tolerance, values)")
        if "values" not in m:
            raise ValueError(f"{where}: missing 'values'")
        values = _as_float_list(m["values"], f"{where}.values")
        paper = m.get("paper")
        tol = m.get("tolerance")
        full = {
            "paper": None if paper is None else float(paper),
            "paper_source": m.get("paper_source", "") or "",
            "tolerance": None if tol is None else float(tol),
            "mean": None, "std": None, "values": values,
        }
        if values and all(math.isfinite(v) for v in values):
            full["mean"], full["std"] = mean_std(values)
        full_metrics[name] = full
    record: Dict[str, Any] = {
        "entry": entry, "method": method, "dataset": dataset, "task": task,
        "primary_metric": primary_metric, "metrics": full_metrics, "runs": runs,
        "protocol": protocol, "deviations": deviations,
        "command": command if command is not None else current_command(),
        "git_commit": git_commit(), "versions": package_versions(),
        "hardware": hardware_info(),
        "wall_time_s": float(wall_time_s) if _is_number(wall_time_s) else wall_time_s,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra is not None:
        record["extra"] = extra
    out = pathlib.Path(out_dir) / f"{entry}.json"
    check_record(record, str(out))
    try:
        text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise RecordError(str(out), [f"extra: not JSON-serialisable ({exc})"]) from None
    return atomic_write_text(out, text)
