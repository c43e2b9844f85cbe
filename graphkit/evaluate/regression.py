r"""Regression metrics: mean absolute error and root mean squared error.

Both take torch tensors or numpy arrays of equal shape (``(N,)`` or ``(N, T)``; ``(N, 1)``
and ``(N,)`` are interchangeable), return a Python ``float`` averaged over all entries, and
raise :class:`ValueError` naming the row of a NaN/inf prediction or target, a shape mismatch or
an empty input.
"""
from __future__ import annotations

from typing import Any, Tuple

from torch import Tensor

from graphkit.evaluate._checks import as_tensor, check_finite

__all__ = ["mae", "rmse"]


def _pair(y_pred: Any, y_true: Any, where: str, mask: Any = None) -> Tuple[Tensor, Tensor]:
    p = as_tensor(y_pred, "y_pred", where)[0]
    t = as_tensor(y_true, "y_true", where)[0]
    if mask is not None:  # a boolean mask or an index vector over the rows
        m = as_tensor(mask, "mask", where)[0].to(p.device)
        p, t = p[m], t[m.to(t.device)]
    if p.dim() == 2 and p.size(1) == 1:
        p = p.view(-1)
    if t.dim() == 2 and t.size(1) == 1:
        t = t.view(-1)
    if p.shape != t.shape:
        raise ValueError(f"{where}: y_pred has shape {tuple(p.shape)} but y_true has "
                         f"{tuple(t.shape)}")
    if p.numel() == 0:
        raise ValueError(f"{where}: empty input")
    p, t = p.double(), t.to(p.device).double()
    check_finite(p, "y_pred", where)
    check_finite(t, "y_true", where)
    return p, t


def mae(y_pred: Any, y_true: Any, mask: Any = None) -> float:
    r"""Mean absolute error :math:`\frac{1}{N}\sum_i |\hat y_i - y_i|` (over the rows selected by
    ``mask``, a boolean mask or an index vector, when given)."""
    p, t = _pair(y_pred, y_true, "mae", mask)
    return float((p - t).abs().mean())


def rmse(y_pred: Any, y_true: Any, mask: Any = None) -> float:
    r"""Root mean squared error :math:`\sqrt{\frac{1}{N}\sum_i (\hat y_i - y_i)^2}` (over the rows
    selected by ``mask`` when given)."""
    p, t = _pair(y_pred, y_true, "rmse", mask)
    return float(((p - t) ** 2).mean().sqrt())
