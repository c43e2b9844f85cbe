r"""Top-K recommendation metrics on a hit matrix.

Every function takes

- ``hits``: a :math:`(U, L)` bool or 0/1 tensor, :math:`L \ge K`; ``hits[u, i]`` says whether
  the item user :math:`u` ranked at position :math:`i + 1` is relevant (held out), i.e.
  :math:`h_{u,i} = [r_{u,i} \in T_u]`;
- ``num_relevant``: a :math:`(U,)` tensor of :math:`|T_u| \ge 1`, the number of relevant items of
  each user (which may exceed :math:`L`);
- ``k``: the cut-off :math:`K`;

and returns the per-user values as a float64 tensor :math:`(U,)`, which are averaged over the
users to report a number; the exception is :func:`f1_at_k`, defined on the averages. Below,
:math:`H_u(K) = \sum_{i \le K} h_{u,i}`. :func:`graphkit.rec.full_ranking` builds the hit
matrix by ranking all items and calls these functions by name through
:func:`graphkit.evaluate.get_metric`.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: Names of the top-K metrics, in the order :func:`graphkit.rec.full_ranking` reports them.
RANKING_METRICS = ("recall", "ndcg", "precision", "hit", "mrr", "map", "f1")


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def _check(hits: Tensor, num_relevant: Tensor, k: int, where: str) -> Tensor:
    """Validates the inputs; returns the first ``k`` columns of ``hits`` as float64."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{where}: k must be a positive int (got {k!r})")
    if not isinstance(hits, Tensor) or hits.dim() != 2:
        raise ValueError(f"{where}: hits must be a (num_users, L) tensor, got {_shape(hits)}")
    if hits.size(1) < k:
        raise ValueError(f"{where}: hits has {hits.size(1)} columns, fewer than k={k}")
    if not isinstance(num_relevant, Tensor) or num_relevant.shape != (hits.size(0),):
        raise ValueError(f"{where}: num_relevant must be a ({hits.size(0)},) tensor, got "
                         f"{_shape(num_relevant)}")
    h = hits.to(torch.float64)
    if hits.dtype != torch.bool:
        bad = (h != 0) & (h != 1)
        if bool(bad.any()):
            u, i = bad.nonzero()[0].tolist()
            raise ValueError(f"{where}: hits must be 0/1, found {float(hits[u, i])} at row {u}, "
                             f"column {i}")
    if hits.size(0):
        nr = num_relevant.to(h.device)
        bad = (nr < 1) | (nr < h.sum(1))
        if bool(bad.any()):
            u = int(bad.nonzero()[0])
            raise ValueError(f"{where}: num_relevant[{u}] = {num_relevant[u].item()} but a user "
                             f"needs at least one relevant item and no fewer than its hits "
                             f"({int(h[u].sum())})")
    return h[:, :k]


def recall_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""Recall@K :math:`= H_u(K) / |T_u|`."""
    h = _check(hits, num_relevant, k, f"recall@{k}")
    return h.sum(1) / num_relevant.to(h)


def precision_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""Precision@K :math:`= H_u(K) / K`."""
    h = _check(hits, num_relevant, k, f"precision@{k}")
    return h.sum(1) / k


def hit_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""Hit@K (hit ratio) :math:`= [H_u(K) > 0]`."""
    h = _check(hits, num_relevant, k, f"hit@{k}")
    return (h.sum(1) > 0).to(torch.float64)


def ndcg_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""NDCG@K with binary relevance,

    .. math::
        \mathrm{NDCG@K} = \frac{\sum_{i \le K} h_{u,i} / \log_2(i + 1)}
                               {\sum_{i \le \min(K, |T_u|)} 1 / \log_2(i + 1)}.
    """
    h = _check(hits, num_relevant, k, f"ndcg@{k}")
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, device=h.device, dtype=torch.float64))
    ideal = torch.cat([discount.new_zeros(1), discount.cumsum(0)])
    return (h * discount).sum(1) / ideal[torch.clamp(num_relevant.to(h.device), max=k).long()]


def mrr_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""MRR@K, the reciprocal rank of the first relevant item, :math:`= \max_{i \le K}
    h_{u,i} / i` (0 without a hit)."""
    h = _check(hits, num_relevant, k, f"mrr@{k}")
    positions = torch.arange(1, k + 1, device=h.device, dtype=torch.float64)
    return (h / positions).max(dim=1).values


def map_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""MAP@K (per user: average precision at the hits),

    .. math::
        \mathrm{AP@K} = \frac{1}{\min(K, |T_u|)} \sum_{i \le K} h_{u,i}\, \frac{H_u(i)}{i}.
    """
    h = _check(hits, num_relevant, k, f"map@{k}")
    positions = torch.arange(1, k + 1, device=h.device, dtype=torch.float64)
    return (h.cumsum(1) / positions * h).sum(1) / torch.clamp(num_relevant.to(h), max=k)


def f1_from_precision_recall(precision: float, recall: float) -> float:
    r"""The harmonic mean :math:`2PR / (P + R)`, 0 when :math:`P + R = 0`."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def f1_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    r"""F1@K of the *averaged* precision and recall (as in the UltraGCN and LCFN evaluation
    code), not an average of per-user F1 scores:

    .. math::
        \mathrm{F1@K} = \frac{2\,\bar P \bar R}{\bar P + \bar R}, \qquad
        \bar P = \operatorname{mean}_u \mathrm{Precision@K}, \quad
        \bar R = \operatorname{mean}_u \mathrm{Recall@K}.

    Returns a 0-dimensional float64 tensor (0 when there are no users).
    """
    if hits.size(0) == 0:
        _check(hits, num_relevant, k, f"f1@{k}")
        return torch.zeros((), dtype=torch.float64)
    p = float(precision_at_k(hits, num_relevant, k).mean())
    r = float(recall_at_k(hits, num_relevant, k).mean())
    return torch.tensor(f1_from_precision_recall(p, r), dtype=torch.float64)
