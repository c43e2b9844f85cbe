"""Best-validation tracking across runs, in the style of OGB's example ``Logger``."""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional, Tuple


def mean_std(values: List[float]) -> Tuple[float, float]:
    r"""Mean and sample standard deviation (``ddof=1``, as ``torch.std`` in OGB's examples);
    the standard deviation of a single value is ``0.0``."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std: no values")
    if any(math.isnan(v) or math.isinf(v) for v in vals):
        return float("nan"), float("nan")
    # statistics works in exact rational arithmetic: equal values give std exactly 0.0
    mean = float(statistics.mean(vals))
    if len(vals) == 1:
        return mean, 0.0
    return mean, float(statistics.stdev(vals))


def _number(value: Any, name: str) -> float:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"RunTracker.add: {name} must be a number, got {type(value).__name__}")
    return float(value)


class RunTracker:
    r"""Track validation/test scores per run and report test at the best-validation point.

    Call :meth:`add` after every evaluation. For each run, the best entry is the one with the
    best validation score (highest for ``mode="max"``, lowest for ``mode="min"`` such as MAE);
    ties go to the earliest entry; NaN validation scores never win unless all are NaN.

    .. code-block:: python

        tracker = RunTracker()
        for run in range(runs):
            for epoch in range(epochs):
                ...
                tracker.add(run, valid=val_acc, test=test_acc, epoch=epoch)
        print(tracker.format())          # Valid: 81.20 ± 0.40 | Test: 80.10 ± 0.50 (10 runs)
        test_values = tracker.best_test_values()

    Args:
        mode (str, optional): ``"max"`` or ``"min"``. (default: :obj:`"max"`)
    """

    def __init__(self, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"RunTracker: mode must be 'max' or 'min', got {mode!r}")
        self.mode = mode
        self._entries: Dict[int, List[Dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mode={self.mode!r}, runs={len(self._entries)})"

    @property
    def runs(self) -> List[int]:
        """Run ids with at least one entry, sorted."""
        return sorted(self._entries)

    def add(self, run: int, *, valid: float, test: float, train: Optional[float] = None,
            epoch: Optional[int] = None) -> None:
        """Record one evaluation of run ``run``."""
        if isinstance(run, bool) or not isinstance(run, int) or run < 0:
            raise ValueError(f"RunTracker.add: run must be a non-negative int, got {run!r}")
        entry = {"run": run, "epoch": epoch, "valid": _number(valid, "valid"),
                 "test": _number(test, "test"),
                 "train": None if train is None else _number(train, "train")}
        self._entries.setdefault(run, []).append(entry)

    def _better(self, a: float, b: float) -> bool:
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.mode == "max" else a < b

    def best(self, run: int) -> Dict[str, Any]:
        """The entry of ``run`` with the best validation score (earliest on ties)."""
        if run not in self._entries:
            raise KeyError(f"RunTracker.best: no entries for run {run} "
                           f"(runs with entries: {self.runs})")
        entries = self._entries[run]
        best = entries[0]
        for e in entries[1:]:
            if self._better(e["valid"], best["valid"]):
                best = e
        return dict(best)

    def best_test_values(self) -> List[float]:
        """Test score at the best-validation entry of each run, in run order."""
        return [self.best(r)["test"] for r in self.runs]

    def best_valid_values(self) -> List[float]:
        return [self.best(r)["valid"] for r in self.runs]

    def summary(self) -> Dict[str, Any]:
        """``{"valid": (mean, std), "test": (mean, std), "test_values": [...],
        "valid_values": [...], "runs": n}`` over runs (sample std, ``ddof=1``)."""
        if not self._entries:
            raise ValueError("RunTracker.summary: no entries were added")
        valid, test = self.best_valid_values(), self.best_test_values()
        out = {"valid": mean_std(valid), "test": mean_std(test), "test_values": test,
               "valid_values": valid, "runs": len(test)}
        trains = [self.best(r)["train"] for r in self.runs]
        if all(t is not None for t in trains):
            out["train"] = mean_std(trains)
        return out

    def format(self, digits: int = 2) -> str:
        """``"Valid: 81.20 ± 0.40 | Test: 80.10 ± 0.50 (10 runs)"``."""
        s = self.summary()
        parts = []
        if "train" in s:
            parts.append(f"Train: {s['train'][0]:.{digits}f} ± {s['train'][1]:.{digits}f}")
        parts.append(f"Valid: {s['valid'][0]:.{digits}f} ± {s['valid'][1]:.{digits}f}")
        parts.append(f"Test: {s['test'][0]:.{digits}f} ± {s['test'][1]:.{digits}f}")
        n = s["runs"]
        return " | ".join(parts) + f" ({n} run{'s' if n != 1 else ''})"

    def state_dict(self) -> Dict[str, Any]:
        """Plain data (storable in a checkpoint's ``extra``)."""
        return {"mode": self.mode,
                "entries": {str(r): [dict(e) for e in es] for r, es in self._entries.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.mode = state["mode"]
        self._entries = {int(r): [dict(e) for e in es] for r, es in state["entries"].items()}
