"""Ranking primitives shared by models and evaluation: a pair-membership index and a
deterministic top-k. Kept outside ``nn`` and ``rec`` so that both can use them."""
from __future__ import annotations

from typing import Optional, Tuple

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
        keys = pairs[0] * num_items + pairs[1]
        # sorted and deduplicated; splits usually hand over sorted pairs, which skip the sort
        if keys.numel() > 1 and not bool((keys[1:] > keys[:-1]).all()):
            keys = torch.unique(keys)
        keys = keys.to(device)
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
    is ``>= t`` and lies in a kept chunk. Of the kept chunks only the entries ``>= t`` are
    kept (usually about ``k`` per row), in ascending column order, and go through the exact
    rule below. The only pass over the whole row is the one computing the chunk maxima;
    everything after it works on about ``k * 64`` entries per row. Rows with NaN, or with
    fewer than ``k`` finite chunk maxima, take the full path. A row with equal scores across
    the cut-off (an untrained model scores every item alike) is completed with the
    lowest-indexed entries equal to the ``k``-th score, found by a running count, without
    sorting the row.
    """
    if scores.dim() == 2 and scores.is_floating_point() and scores.size(1) >= 32 * _TOPK_CHUNK \
            and 1 <= k <= scores.size(1) // (8 * _TOPK_CHUNK):
        top = _topk_by_chunk_maxima(scores, k)
        if top is not None:
            return top
    return _topk_exact(scores, k)


def _row_slots(counts: Tensor, total: int) -> Tensor:
    """Position of each entry within its row, for entries listed row by row (``nonzero``)."""
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(
        starts, counts, output_size=total)


def _topk_by_chunk_maxima(scores: Tensor, k: int) -> Optional[Tensor]:
    b, n = scores.shape
    c = _TOPK_CHUNK
    full = n // c
    dev = scores.device
    if scores.stride(1) != 1:
        scores = scores.contiguous()
    maxima = scores[:, :full * c].reshape(b, full, c).amax(-1)  # a view: rows keep their stride
    if full * c < n:
        maxima = torch.cat([maxima, scores[:, full * c:].amax(-1, keepdim=True)], 1)
    threshold = torch.topk(maxima, k, dim=1).values[:, -1:]
    if not bool(torch.isfinite(threshold).all()) or bool(torch.isnan(maxima).any()):
        return None
    keep = maxima[:, :full] >= threshold  # the short last chunk, if any, is always a candidate
    rows, chunks = keep.nonzero(as_tuple=True)  # row-major: chunks ascend within a row
    counts = torch.bincount(rows, minlength=b)
    width = max(int(counts.max()), 1)  # 0 when every row's k-th chunk maximum is the short last chunk
    if width * c * 4 > n:  # too many chunks kept for the prefilter to pay off
        return None
    chosen = torch.zeros((b, width), dtype=torch.long, device=dev)
    chosen[rows, _row_slots(counts, rows.numel())] = chunks
    # copy the kept chunks as 64-float rows: every (row, start) of the scores as one row of an
    # overlapping-window view, then index_select (a memcpy per chunk)
    s0 = scores.stride(0)
    windows = scores.as_strided(((b - 1) * s0 + n - c + 1, c), (1, 1))
    starts = torch.arange(b, device=dev).unsqueeze(1) * s0 + chosen * c
    values = windows.index_select(0, starts.view(-1)).view(b, width * c)
    if full * c < n:  # the columns of the short last chunk come last: order stays ascending
        values = torch.cat([values, scores[:, full * c:]], 1)
    # candidates: the entries >= t, outside padding slots (a row with fewer kept chunks than
    # the widest repeats chunk 0 there), still in ascending column order within each row
    rows, pos = (values >= threshold).nonzero(as_tuple=True)
    head = pos < width * c
    slot_chunk = torch.div(pos, c, rounding_mode="floor")
    real = ~head | (slot_chunk < counts[rows])
    rows, pos, head, slot_chunk = rows[real], pos[real], head[real], slot_chunk[real]
    cols = torch.where(head, chosen[rows, slot_chunk.clamp_(max=width - 1)] * c + pos % c,
                       full * c + pos - width * c)
    counts = torch.bincount(rows, minlength=b)
    slot = _row_slots(counts, rows.numel())
    width = int(counts.max())
    packed = torch.full((b, width), float("-inf"), dtype=scores.dtype, device=dev)
    packed[rows, slot] = values[rows, pos]
    packed_cols = torch.zeros((b, width), dtype=torch.long, device=dev)
    packed_cols[rows, slot] = cols
    return packed_cols.gather(1, _topk_exact(packed, k))


_TIE_GROUP = 1 << 22  # entries per group of tied rows in the tie fix-up


def _fill_ties(scores: Tensor, index: Tensor, tied: Tensor, tie: Tensor, above: Tensor, k: int,
               width: int) -> Tensor:
    """Write into ``index[tied, above:k]`` the lowest column indices among the first ``width``
    whose score equals ``tie``, for the rows that have enough of them; return the positions
    (within ``tied``) of the rows that have not."""
    need = k - above
    group = max(1, _TIE_GROUP // max(width, 1))
    left = []
    for start in range(0, tied.numel(), group):  # bounded memory: a few bytes per entry
        rows = tied[start:start + group]
        equal = scores[rows, :width] == tie[start:start + group]
        want = need[start:start + group].unsqueeze(1)
        running = torch.cumsum(equal, 1, dtype=torch.int32)
        done = running[:, -1:] >= want
        left.append(start + (~done).view(-1).nonzero().view(-1))
        r, cols = (equal & (running <= want) & done).nonzero(as_tuple=True)  # row-major
        counts = torch.bincount(r, minlength=rows.numel())
        slot = above[start:start + group][r] + _row_slots(counts, r.numel())
        index[rows[r], slot] = cols
    return torch.cat(left)


def _topk_exact(scores: Tensor, k: int) -> Tensor:
    """One ``topk`` of size ``k + 1`` finds the rows where the ``k``-th and ``(k+1)``-th values
    are equal (a tie across the cut-off). Within the top-k, equal values are ordered by index
    with two stable sorts over ``k`` elements. In a tied row the entries ranked above the tie
    value ``v`` are right; the rest of its top-k are the lowest-indexed entries equal to ``v``,
    found by a running count over the row (no sort of the row)."""
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
        values = values.gather(1, order)
        tie = values[tied, k - 1:k]
        above = (values[tied] != tie).sum(1)  # > v, or NaN: ranked before every entry equal to v
        # most tied rows have enough entries equal to v among their first columns: look there
        # first, then over whole rows for the others
        left = _fill_ties(scores, index, tied, tie, above, k, min(n, max(1024, 64 * k)))
        if left.numel():
            _fill_ties(scores, index, tied[left], tie[left], above[left], k, n)
    return index
