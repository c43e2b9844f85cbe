"""Ranking primitives shared by models and evaluation: a pair-membership index and a
deterministic top-k. Kept outside ``nn`` and ``rec`` so that both can use them."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor


class PairIndex:
    """Sorted ``user * num_items + item`` keys with per-user CSR offsets.

    Answers "which items has user u" (:meth:`block`) and "is (u, i) a stored pair"
    (:meth:`contains`) with vectorised tensor operations, on any device.
    """

    def __init__(self, pairs: Tensor, num_users: int, num_items: int, device=None):
        device = pairs.device if device is None else torch.device(device)
        pairs = pairs.long()
        keys = torch.unique(pairs[0] * num_items + pairs[1]).to(device)  # sorted, deduplicated
        self.keys = keys
        self.num_items = num_items
        users = keys // num_items
        self.items = keys - users * num_items
        counts = torch.bincount(users, minlength=num_users)
        self.counts = counts
        self.indptr = torch.zeros(num_users + 1, dtype=torch.long, device=device)
        torch.cumsum(counts, 0, out=self.indptr[1:])

    def block(self, users: Tensor) -> Tuple[Tensor, Tensor]:
        """Row positions (within ``users``) and item ids of all pairs of ``users``."""
        start, count = self.indptr[users], self.counts[users]
        total = int(count.sum())
        if total == 0:
            empty = torch.zeros(0, dtype=torch.long, device=users.device)
            return empty, empty
        rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), count)
        offsets = torch.arange(total, device=users.device) - torch.repeat_interleave(
            torch.cumsum(count, 0) - count, count)
        return rows, self.items[start[rows] + offsets]

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """Boolean tensor: is ``(users[b], items[b, j])`` a stored pair."""
        query = users.view(-1, 1) * self.num_items + items
        if self.keys.numel() == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == query


_TOPK_CHUNK = 64  # columns per chunk of the chunk-maxima prefilter


def topk_ties_by_index(scores: Tensor, k: int) -> Tensor:
    """Top-``k`` item indices per row; equal scores ranked by ascending item index.

    For wide rows (all-item ranking: tens of thousands of columns, small ``k``) the columns
    are first cut into chunks of 64 and only the chunks whose maximum reaches the ``k``-th
    largest chunk maximum ``t`` of their row are kept. That is exact: the ``k`` chunk maxima at
    or above ``t`` are ``k`` distinct entries, so every entry of the top-``k`` (ties included)
    is ``>= t`` and lies in a kept chunk. The kept columns, in ascending order, go through the
    exact rule below. One pass over the scores (the chunk maxima) replaces ``torch.topk`` over
    the full rows, which is several times slower on CPU. Rows with NaN, or with fewer than
    ``k`` finite chunk maxima, take the full path.
    """
    if scores.dim() == 2 and scores.is_floating_point() and scores.size(1) >= 32 * _TOPK_CHUNK \
            and 1 <= k <= scores.size(1) // (8 * _TOPK_CHUNK):
        top = _topk_by_chunk_maxima(scores, k)
        if top is not None:
            return top
    return _topk_exact(scores, k)


def _topk_by_chunk_maxima(scores: Tensor, k: int):
    b, n = scores.shape
    c = _TOPK_CHUNK
    full = n // c
    maxima = scores[:, :full * c].reshape(b, full, c).amax(-1)
    if full * c < n:
        maxima = torch.cat([maxima, scores[:, full * c:].amax(-1, keepdim=True)], 1)
    num_chunks = maxima.size(1)
    threshold = torch.topk(maxima, k, dim=1).values[:, -1:]
    if not bool(torch.isfinite(threshold).all()) or bool(torch.isnan(maxima).any()):
        return None
    keep = maxima >= threshold
    counts = keep.sum(1)
    width = int(counts.max())
    if width * c * 4 > n:  # too many chunks kept for the prefilter to pay off
        return None
    rows, chunks = keep.nonzero(as_tuple=True)  # row-major: chunks ascend within a row
    slot = torch.arange(rows.numel(), device=scores.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts, output_size=rows.numel())
    chosen = torch.full((b, width), num_chunks, dtype=torch.long, device=scores.device)
    chosen[rows, slot] = chunks
    cols = (chosen.unsqueeze(-1) * c + torch.arange(c, device=scores.device)).view(b, -1)
    outside = cols >= n  # padding chunks and the columns past the end of a short last chunk
    cols.clamp_(max=n - 1)
    values = scores.gather(1, cols).masked_fill_(outside, float("-inf"))
    return cols.gather(1, _topk_exact(values, k))


def _topk_exact(scores: Tensor, k: int) -> Tensor:
    """One ``topk`` of size ``k + 1`` finds the rows where the ``k``-th and ``(k+1)``-th values
    are equal (a tie across the cut-off); only those rows are fully sorted. Within the top-k,
    equal values are ordered by index with two stable sorts over ``k`` elements."""
    n = scores.size(1)
    kk = min(k + 1, n)
    values, index = torch.topk(scores, kk, dim=1, sorted=True)
    tied = (values[:, k - 1] == values[:, k]).nonzero().view(-1) if kk > k else index[:0, 0]
    values, index = values[:, :k], index[:, :k]
    order = torch.argsort(index, dim=1)
    values, index = values.gather(1, order), index.gather(1, order)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    index = index.gather(1, order)
    if tied.numel():
        index[tied] = torch.sort(scores[tied], dim=1, descending=True, stable=True).indices[:, :k]
    return index
