"""Input checks shared by the metric functions: conversion at the numpy boundary and errors
that name the offending entry."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor


def as_tensor(value: Any, key: str, where: str) -> Tuple[Tensor, bool]:
    """Returns ``(tensor, was_numpy)``; numpy arrays are converted without a copy."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)), True
    if isinstance(value, Tensor):
        return value, False
    raise TypeError(f"{where}: '{key}' must be a numpy ndarray or a torch tensor "
                    f"(got {type(value).__name__})")


def check_finite(t: Tensor, key: str, where: str, allow_inf: bool = False,
                 only: Optional[Tensor] = None) -> None:
    """Raises :class:`ValueError` naming the first NaN (and, unless ``allow_inf``, the first
    infinite) entry of ``t`` by row (and column). ``only`` restricts the check to the entries
    where it is ``True`` (e.g. the labelled ones)."""
    if not t.is_floating_point():
        return
    bad = torch.isnan(t) if allow_inf else ~torch.isfinite(t)
    if only is not None:
        bad = bad & only
    if not bool(bad.any()):
        return
    first = bad.nonzero()[0].tolist()
    value = float(t[tuple(first)])
    what = "NaN" if value != value else f"{value}"
    at = f"row {first[0]}" + (f", column {first[1]}" if len(first) > 1 else "")
    count = int(bad.sum())
    allowed = "must not be NaN" if allow_inf else "must be finite"
    raise ValueError(f"{where}: '{key}' is {what} at {at} ({count} such entr"
                     f"{'y' if count == 1 else 'ies'}); predictions {allowed}")


def check_binary(t: Tensor, key: str, where: str) -> None:
    """Raises :class:`ValueError` unless every entry of ``t`` is 0 or 1 (``False``/``True``)."""
    if t.dtype == torch.bool:
        return
    bad = (t != 0) & (t != 1)
    if bool(bad.any()):
        first = bad.nonzero()[0].tolist()
        at = f"row {first[0]}" + (f", column {first[1]}" if len(first) > 1 else "")
        raise ValueError(f"{where}: '{key}' must hold 0/1 labels, found {float(t[tuple(first)])} "
                         f"at {at}")
