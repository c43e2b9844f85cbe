r"""Link-prediction ranking metrics in OGB's conventions: MRR and Hits@K of positive edge
scores against negative edge scores.

Scores may be any real numbers including :math:`\pm\infty` (only their order matters); a NaN
score is an error naming the argument and row, since it would otherwise compare as neither
higher nor lower than anything and rank a positive first or last silently.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

from graphkit.evaluate._checks import as_tensor, check_finite

ArrayLike = Union[Tensor, np.ndarray]


def _pos_neg(y_pred_pos: ArrayLike, y_pred_neg: ArrayLike, where: str):
    pos = as_tensor(y_pred_pos, "y_pred_pos", where)[0]
    neg = as_tensor(y_pred_neg, "y_pred_neg", where)[0]
    pos = pos.to(neg.device)
    if pos.dim() != 1:
        raise ValueError(f"{where}: y_pred_pos must be 1-dimensional, got {pos.dim()} "
                         "dimensions")
    check_finite(pos, "y_pred_pos", where, allow_inf=True)
    check_finite(neg, "y_pred_neg", where, allow_inf=True)
    return pos, neg


def link_ranks(y_pred_pos: ArrayLike, y_pred_neg: ArrayLike, where: str = "link_ranks"
               ) -> Tensor:
    r"""Rank of every positive among its own row of negatives, ties counted as the mean of
    the optimistic and the pessimistic rank:

    .. math::
        r_i = 1 + \tfrac{1}{2}\big(|\{j : n_{ij} > p_i\}| + |\{j : n_{ij} \ge p_i\}|\big).

    Args:
        y_pred_pos: :math:`(E,)` positive scores.
        y_pred_neg: :math:`(E, Q)` negative scores; row :math:`i` is ranked against
            ``y_pred_pos[i]``.

    Returns:
        A float32 tensor :math:`(E,)` of ranks (OGB's dtype), on the device of ``y_pred_neg``.
    """
    pos, neg = _pos_neg(y_pred_pos, y_pred_neg, where)
    if neg.dim() != 2 or neg.size(0) != pos.size(0):
        raise ValueError(f"{where}: y_pred_neg must have shape (num_edges={pos.size(0)},"
                         f" num_neg), got {tuple(neg.shape)}")
    pos_col = pos.view(-1, 1)
    optimistic = (neg > pos_col).sum(dim=1)
    pessimistic = (neg >= pos_col).sum(dim=1)
    return 0.5 * (optimistic + pessimistic).to(torch.float) + 1


def mrr(y_pred_pos: ArrayLike, y_pred_neg: ArrayLike) -> float:
    r"""Mean reciprocal rank :math:`\frac{1}{E}\sum_i 1 / r_i` with :math:`r_i` from
    :func:`link_ranks` (``ogbl-citation2``, ``ogbl-wikikg2``: per-positive negatives
    :math:`(E, Q)`)."""
    rank = link_ranks(y_pred_pos, y_pred_neg, "mrr")
    if rank.numel() == 0:
        raise ValueError("mrr: y_pred_pos is empty")
    return float((1.0 / rank).to(torch.float64).mean())


def hits_at_k(y_pred_pos: ArrayLike, y_pred_neg: ArrayLike, k: int) -> float:
    r"""Hits@K in OGB's two forms, chosen by the shape of ``y_pred_neg``:

    - shared negatives :math:`(Q,)` (``ogbl-collab``, ``-ddi``, ``-ppa``): the fraction of
      positives scored strictly above the :math:`K`-th largest negative,
      :math:`\frac{1}{E}\sum_i [p_i > n_{(K)}]`, and 1.0 when :math:`Q < K`;
    - per-positive negatives :math:`(E, Q)`: :math:`\frac{1}{E}\sum_i [r_i \le K]` with
      :math:`r_i` from :func:`link_ranks`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"hits_at_k: k must be a positive int (got {k!r})")
    where = f"hits@{k}"
    neg = as_tensor(y_pred_neg, "y_pred_neg", where)[0]
    if neg.dim() == 2:
        rank = link_ranks(y_pred_pos, neg, where)
        if rank.numel() == 0:
            raise ValueError(f"{where}: y_pred_pos is empty")
        return float((rank <= k).to(torch.float64).mean())
    pos, neg = _pos_neg(y_pred_pos, neg, where)
    if neg.dim() != 1:
        raise ValueError(f"{where}: y_pred_neg must be 1-dimensional, got {neg.dim()} "
                         "dimensions")
    if pos.numel() == 0:
        raise ValueError(f"{where}: y_pred_pos is empty")
    if neg.numel() < k:
        return 1.0
    kth = torch.topk(neg, k)[0][-1]
    return float((pos > kth).sum()) / pos.numel()
