r"""Classification metrics: accuracy, micro/macro F1 (single- and multi-label), ROC-AUC and
average precision, plus the OGB rule for averaging a binary metric over tasks.

All functions take torch tensors or numpy arrays (converted at the boundary, so there is one
implementation), return a Python ``float``, and raise :class:`ValueError` naming the argument
and row of a NaN prediction, a label out of range or an empty selection.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from graphkit.evaluate._checks import as_tensor, check_binary, check_finite

ArrayLike = Union[Tensor, np.ndarray]


def _tensor(value: Any, name: str, where: str) -> Tensor:
    return as_tensor(value, name, where)[0]


def _select(mask: Optional[ArrayLike], n: int, device: torch.device, where: str
            ) -> Optional[Tensor]:
    """Checks a boolean mask of length ``n`` or an index vector into ``[0, n)``."""
    if mask is None:
        return None
    mask = _tensor(mask, "mask", where).to(device)
    if mask.dtype == torch.bool:
        if mask.numel() != n:
            raise ValueError(f"{where}: boolean mask has {mask.numel()} entries for {n} nodes")
    elif mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= n):
        raise ValueError(f"{where}: mask indices must lie in [0, {n})")
    return mask


def _single_label(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike],
                  num_classes: Optional[int], where: str) -> Tuple[Tensor, Tensor, Optional[int]]:
    """Predicted and true labels ``(M,)`` of the selected rows, and the number of classes
    when known (given, or the width of the logits)."""
    y_pred = _tensor(y_pred, "y_pred", where)
    y_true = _tensor(y_true, "y_true", where)
    if y_true.dim() == 2 and y_true.size(1) == 1:
        y_true = y_true.view(-1)
    if y_true.dim() != 1:
        raise ValueError(f"{where}: y_true must have shape (N,) or (N, 1), got "
                         f"{tuple(y_true.shape)}")
    if y_pred.dim() == 2 and y_pred.size(1) == 1 and not y_pred.is_floating_point():
        y_pred = y_pred.view(-1)
    if y_pred.size(0) != y_true.size(0):
        raise ValueError(f"{where}: y_pred has {y_pred.size(0)} rows but y_true has "
                         f"{y_true.size(0)} labels")
    if y_pred.dim() == 2:
        if num_classes is not None and y_pred.size(1) != num_classes:
            raise ValueError(f"{where}: y_pred has {y_pred.size(1)} columns but "
                             f"num_classes={num_classes}")
        check_finite(y_pred, "y_pred", where)
        num_classes = y_pred.size(1) if num_classes is None else num_classes
        y_pred = y_pred.argmax(dim=-1)
    elif y_pred.dim() != 1:
        raise ValueError(f"{where}: y_pred must have shape (N,) or (N, C), got "
                         f"{tuple(y_pred.shape)}")
    else:
        check_finite(y_pred, "y_pred", where)
    y_pred = y_pred.to(y_true.device)
    mask = _select(mask, y_true.size(0), y_true.device, where)
    if mask is not None:
        y_pred, y_true = y_pred[mask], y_true[mask]
    if y_true.numel() == 0:
        raise ValueError(f"{where}: no nodes selected (empty mask or empty input)")
    if num_classes is not None:
        lo, hi = int(y_true.min()), int(y_true.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{where}: labels must lie in [0, {num_classes}), found "
                             f"{lo if lo < 0 else hi}")
    return y_pred, y_true, num_classes


def accuracy(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike] = None,
             num_classes: Optional[int] = None) -> float:
    r"""Fraction of correctly classified nodes (single-label),

    .. math::
        \mathrm{acc} = \frac{1}{|M|} \sum_{v \in M} [\hat{y}_v = y_v].

    Args:
        y_pred: Predicted labels :math:`(N,)` or scores/logits :math:`(N, C)` (arg-max taken).
        y_true: True labels :math:`(N,)` (or :math:`(N, 1)`, as OGB stores them).
        mask: Optional boolean mask :math:`(N,)` or index vector selecting the nodes :math:`M`.
        num_classes: If given, labels must lie in ``[0, num_classes)``.

    Raises :class:`ValueError` for mismatched sizes, labels out of range, NaN or infinite
    predictions (naming the row) and empty selections.
    """
    y_pred, y_true, _ = _single_label(y_pred, y_true, mask, num_classes, "accuracy")
    return float((y_pred == y_true).sum()) / y_true.numel()


def _confusion(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike],
               num_classes: Optional[int], threshold: float, where: str
               ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-class true positives, false positives, false negatives (float64) and the classes
    that take part in macro averaging."""
    yt = _tensor(y_true, "y_true", where)
    if yt.dim() == 2 and yt.size(1) > 1:  # multi-label indicator matrix (N, C)
        yp = _tensor(y_pred, "y_pred", where)
        if yp.shape != yt.shape:
            raise ValueError(f"{where}: multi-label y_true {tuple(yt.shape)} needs y_pred of "
                             f"the same shape, got {tuple(yp.shape)}")
        if num_classes is not None and yt.size(1) != num_classes:
            raise ValueError(f"{where}: y_true has {yt.size(1)} columns but "
                             f"num_classes={num_classes}")
        check_binary(yt, "y_true", where)
        if yp.is_floating_point():
            check_finite(yp, "y_pred", where)
            yp = yp > threshold
        else:
            check_binary(yp, "y_pred", where)
            yp = yp.bool()
        yp, yt = yp.to(yt.device), yt.bool()
        mask = _select(mask, yt.size(0), yt.device, where)
        if mask is not None:
            yp, yt = yp[mask], yt[mask]
        if yt.size(0) == 0:
            raise ValueError(f"{where}: no nodes selected (empty mask or empty input)")
        tp = (yp & yt).sum(0).to(torch.float64)
        fp = (yp & ~yt).sum(0).to(torch.float64)
        fn = (~yp & yt).sum(0).to(torch.float64)
        return tp, fp, fn, torch.ones_like(tp, dtype=torch.bool)
    pred, true, c = _single_label(y_pred, y_true, mask, num_classes, where)
    if pred.is_floating_point() and not bool((pred == pred.round()).all()):
        raise ValueError(f"{where}: predicted labels must be whole numbers")
    pred, true = pred.long(), true.long()
    if int(pred.min()) < 0 or (c is not None and int(pred.max()) >= c):
        raise ValueError(f"{where}: predicted labels must lie in "
                         f"[0, {c if c is not None else 'num_classes'}), found "
                         f"{int(pred.min()) if int(pred.min()) < 0 else int(pred.max())}")
    c = max(c or 0, int(pred.max()) + 1, int(true.max()) + 1)
    tp = torch.bincount(true[pred == true], minlength=c).to(torch.float64)
    n_pred = torch.bincount(pred, minlength=c).to(torch.float64)
    n_true = torch.bincount(true, minlength=c).to(torch.float64)
    return tp, n_pred - tp, n_true - tp, (n_pred + n_true) > 0


def _f1(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))


def micro_f1(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike] = None,
             num_classes: Optional[int] = None, threshold: float = 0.0) -> float:
    r"""Micro-averaged F1: true/false positives and false negatives pooled over all classes,

    .. math::
        F_1^{\mathrm{micro}} = \frac{2 \sum_c TP_c}{\sum_c (2\,TP_c + FP_c + FN_c)}.

    For single-label inputs this equals :func:`accuracy`. Equals scikit-learn's
    ``f1_score(average="micro")``; 0 when nothing is positive or predicted.

    Args:
        y_pred: Single-label: labels :math:`(N,)` or logits :math:`(N, C)` (arg-max taken).
            Multi-label: :math:`(N, C)` 0/1 (or bool) predictions, or floating-point scores
            predicted positive where ``> threshold``.
        y_true: Single-label: labels :math:`(N,)` or :math:`(N, 1)`. Multi-label: a 0/1
            indicator matrix :math:`(N, C)` with :math:`C > 1`.
        mask: Optional boolean mask :math:`(N,)` or index vector selecting rows.
        num_classes: If given, labels (or columns) are checked against it.
        threshold: Multi-label decision threshold on floating-point ``y_pred``; ``0.0`` suits
            logits, use ``0.5`` for probabilities. (default: ``0.0``)
    """
    tp, fp, fn, _ = _confusion(y_pred, y_true, mask, num_classes, threshold, "micro_f1")
    return float(_f1(tp.sum(), fp.sum(), fn.sum()))


def macro_f1(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike] = None,
             num_classes: Optional[int] = None, threshold: float = 0.0) -> float:
    r"""Macro-averaged F1: the unweighted mean of the per-class F1 scores,

    .. math::
        F_1^{\mathrm{macro}} = \frac{1}{|\mathcal{C}|} \sum_{c \in \mathcal{C}}
        \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}.

    As scikit-learn's ``f1_score(average="macro")``: for single-label inputs
    :math:`\mathcal{C}` is the set of classes occurring in the true or the predicted labels of
    the selected rows; for multi-label inputs it is every column, a column with no true and
    no predicted positive scoring 0. Arguments as in :func:`micro_f1`.
    """
    tp, fp, fn, present = _confusion(y_pred, y_true, mask, num_classes, threshold, "macro_f1")
    return float(_f1(tp, fp, fn)[present].mean())


def roc_auc(y_true: Tensor, y_score: Tensor) -> float:
    r"""Area under the ROC curve of binary labels ``y_true`` (0/1) and scores ``y_score``,
    with ties counted as one half (the Mann-Whitney statistic; equals scikit-learn's
    ``roc_auc_score``):

    .. math::
        \mathrm{AUC} = \frac{\sum_{i:\,y_i = 1} \mathrm{rank}(s_i) - P(P+1)/2}{P\,N}

    with average ranks for tied scores, :math:`P` positives and :math:`N` negatives. Raises
    :class:`ValueError` when one class is absent, for labels other than 0/1 and for NaN or
    infinite scores (naming the row)."""
    y_true = y_true.reshape(-1).to(torch.float64)
    y_score = y_score.reshape(-1)
    if y_true.numel() != y_score.numel():
        raise ValueError(f"roc_auc: y_true has {y_true.numel()} entries, y_score "
                         f"{y_score.numel()}")
    check_binary(y_true, "y_true", "roc_auc")
    check_finite(y_score, "y_score", "roc_auc")
    y_score = y_score.to(torch.float64)
    pos = int((y_true == 1).sum())
    neg = int((y_true == 0).sum())
    if pos == 0 or neg == 0:
        raise ValueError("roc_auc: needs at least one positive and one negative label")
    order = torch.argsort(y_score)
    s = y_score[order]
    _, inverse, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    avg_rank = ends - (counts.to(torch.float64) - 1) / 2  # 1-based average rank of each group
    ranks = avg_rank[inverse]
    rank_sum = ranks[y_true[order] == 1].sum()
    return float((rank_sum - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(y_true: Tensor, y_score: Tensor) -> float:
    r"""Average precision over the distinct score thresholds (equals scikit-learn's
    ``average_precision_score``),

    .. math::
        \mathrm{AP} = \sum_n (R_n - R_{n-1})\, P_n .

    Raises :class:`ValueError` without a positive label, for labels other than 0/1 and for
    NaN or infinite scores (naming the row)."""
    y_true = y_true.reshape(-1).to(torch.float64)
    y_score = y_score.reshape(-1)
    if y_true.numel() != y_score.numel():
        raise ValueError(f"average_precision: y_true has {y_true.numel()} entries, y_score "
                         f"{y_score.numel()}")
    check_binary(y_true, "y_true", "average_precision")
    check_finite(y_score, "y_score", "average_precision")
    y_score = y_score.to(torch.float64)
    pos = float((y_true == 1).sum())
    if pos == 0:
        raise ValueError("average_precision: needs at least one positive label")
    order = torch.argsort(y_score, descending=True)
    s, t = y_score[order], (y_true[order] == 1).to(torch.float64)
    _, counts = torch.unique_consecutive(s, return_counts=True)
    last = torch.cumsum(counts, 0) - 1  # last index of every tie group
    tp = torch.cumsum(t, 0)[last]
    fp = (last + 1).to(torch.float64) - tp
    precision = tp / (tp + fp)
    recall = tp / pos
    prev = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - prev) * precision).sum())


def mean_over_tasks(metric: Callable[[Tensor, Tensor], float], y_true: Tensor, y_score: Tensor,
                    where: str) -> float:
    r"""OGB's multi-task rule for a binary metric (``roc_auc``, ``average_precision``): the
    mean over the columns of ``(N, T)`` inputs that have both a positive and a negative
    label, each computed on its labelled (non-NaN) entries. Scores must be finite where
    labelled; raises :class:`ValueError` when no column qualifies."""
    check_finite(y_score, "y_pred", where, only=y_true == y_true)
    values = []
    for i in range(y_true.size(1)):  # loop over tasks (columns), not rows
        t, p = y_true[:, i], y_score[:, i]
        if bool((t == 1).any()) and bool((t == 0).any()):
            labelled = t == t
            values.append(metric(t[labelled], p[labelled]))
    if not values:
        raise ValueError(f"{where}: no task has both positive and negative labels")
    return sum(values) / len(values)


def _task_matrix(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike], where: str
                 ) -> Tuple[Tensor, Tensor]:
    """``(N,)`` or ``(N, T)`` scores and 0/1/NaN labels as ``(M, T)`` of the selected rows."""
    y_pred = _tensor(y_pred, "y_pred", where)
    y_true = _tensor(y_true, "y_true", where)
    if y_true.dim() == 1:
        y_true = y_true.view(-1, 1)
    if y_pred.dim() == 1:
        y_pred = y_pred.view(-1, 1)
    if y_true.dim() != 2 or y_pred.shape != y_true.shape:
        raise ValueError(f"{where}: y_pred {tuple(y_pred.shape)} and y_true "
                         f"{tuple(y_true.shape)} must both be (N,) or (N, T) of the same shape")
    y_pred = y_pred.to(y_true.device)
    mask = _select(mask, y_true.size(0), y_true.device, where)
    if mask is not None:
        y_pred, y_true = y_pred[mask], y_true[mask]
    if y_true.size(0) == 0:
        raise ValueError(f"{where}: no rows selected (empty mask or empty input)")
    labelled = y_true == y_true
    check_binary(y_true[labelled], "y_true", where)
    return y_pred, y_true


def roc_auc_by_task(y_pred: ArrayLike, y_true: ArrayLike,
                    mask: Optional[ArrayLike] = None) -> float:
    r""":func:`roc_auc` in the calling convention of :func:`accuracy`: scores ``y_pred`` and
    0/1 labels ``y_true`` of shape :math:`(N,)` or :math:`(N, T)` (NaN = unlabelled), rows
    selected by ``mask``; several tasks are averaged by :func:`mean_over_tasks` (as
    ``ogbn-proteins`` / ``ogbg-mol*``)."""
    y_pred, y_true = _task_matrix(y_pred, y_true, mask, "roc_auc")
    return mean_over_tasks(roc_auc, y_true, y_pred, "roc_auc")


def average_precision_by_task(y_pred: ArrayLike, y_true: ArrayLike,
                              mask: Optional[ArrayLike] = None) -> float:
    r""":func:`average_precision` in the calling convention of :func:`accuracy`, averaged over
    tasks like :func:`roc_auc_by_task` (as ``ogbg-molpcba``)."""
    y_pred, y_true = _task_matrix(y_pred, y_true, mask, "ap")
    return mean_over_tasks(average_precision, y_true, y_pred, "ap")
