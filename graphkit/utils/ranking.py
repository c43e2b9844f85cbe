"""Ranking primitives shared by models and evaluation: a pair-membership index and a
deterministic top-k. Kept outside ``nn`` and ``rec`` so that both can use them."""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
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


# --------------------------------------------------------------------------------------------
# Exact top-k of dot-product scores without a [B, I] score block


def _bf16_products_accumulate_in_float32(device: torch.device) -> bool:
    """Whether ``torch.mm`` on bfloat16 inputs accumulates in float32 on ``device``: the error
    bound of the bfloat16 screening assumes it. ``1 + 63 * 2**-9`` summed in bfloat16 stays
    ``1`` (its spacing at 1 is ``2**-7``); summed in float32 it is ``1.123``."""
    d = 64
    for lead in (0, d // 2, d - 1):  # the large term first, in the middle, last
        u = torch.full((8, d), 2.0 ** -9, device=device)
        u[:, lead] = 1.0
        try:
            out = torch.mm(u.bfloat16(), torch.ones(d, 256, device=device, dtype=torch.bfloat16)).float()
        except RuntimeError:
            return False
        if not bool(((out - (1 + 63 * 2.0 ** -9)).abs() <= 2.0 ** -6).all()):
            return False
    return True


def _fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (CUDA compute capability 8+;
    x86 CPUs with AVX512-BF16 or AMX), so that a bfloat16 screening product is cheaper than
    the float32 one, and whether it accumulates in float32."""
    key = (device.type, device.index)
    cached = _BF16_OK.get(key)
    if cached is not None:
        return cached
    ok = False
    if device.type == "cuda":
        ok = torch.cuda.get_device_capability(device)[0] >= 8
    elif device.type == "cpu":
        try:
            with open("/proc/cpuinfo") as fh:
                flags = next((line for line in fh if line.startswith("flags")), "").split()
            ok = "avx512_bf16" in flags or "amx_bf16" in flags
        except OSError:
            ok = False
    ok = ok and _bf16_products_accumulate_in_float32(device)
    _BF16_OK[key] = ok
    return ok


_BF16_OK: dict = {}
_SCREEN_TILE = 4096  # items per screening tile


def screening_group_size(num_items: int) -> int:
    """Items per screening group of :class:`DotProductTopK`: the power of two nearest
    ``sqrt(num_items / 320)``, within ``[8, 64]``. Larger groups mean fewer maxima to keep
    (work ``~ I / r`` per user) but more items to re-score (``~ 30 r``); this balances the
    two (measured on one CPU core: best or within 5% of the best of 8, 16, 32 and 64 at 25k,
    100k, 400k and 1.6M items)."""
    target = math.sqrt(max(num_items, 1) / 320)
    return int(min(64, max(8, 2 ** round(math.log2(max(target, 1))))))


def _check_excluded(rows: Tensor, cols: Tensor, num_rows: int, num_items: int, device) -> Tuple[Tensor, Tensor]:
    """Excluded (row, item) pairs as int64 on ``device``, in range (else a ``ValueError``),
    sorted by row."""
    if rows is None or cols is None or rows.shape != cols.shape or rows.dim() != 1:
        raise ValueError("DotProductTopK: exclude_rows and exclude_cols must be 1-D tensors of equal length")
    rows, cols = rows.to(device).long(), cols.to(device).long()
    if rows.numel():
        for name, ids, size in (("exclude_rows", rows, num_rows), ("exclude_cols", cols, num_items)):
            lo, hi = (int(v) for v in torch.aminmax(ids))
            if lo < 0 or hi >= size:
                raise ValueError(f"DotProductTopK: {name} must lie in [0, {size}), found [{lo}, {hi}]")
        if rows.numel() > 1 and not bool((rows[1:] >= rows[:-1]).all()):
            rows, order = torch.sort(rows, stable=True)
            cols = cols[order]
    return rows, cols


class DotProductTopK:
    r"""Exact top-``k`` items of the dot-product scores :math:`s_{ui} = \mathbf{e}_u^{\top}
    \mathbf{e}_i` of a block of users, with given (user, item) pairs excluded and ties broken
    by ascending item index, without materialising the ``[B, I]`` score block.

    The answer of scoring every item, masking the excluded pairs and taking
    :func:`topk_ties_by_index`, obtained in two passes:

    1. **Screening.** Items are cut into groups of ``group_size`` consecutive ids and tiles of
       ``tile_items``. Each tile's scores ``[b, tile]`` are computed (in bfloat16 where the
       hardware multiplies it natively, else in float32) while they sit in cache, and reduced
       at once to their group maxima; only the ``[b, I / group_size]`` maxima are kept. (The
       screening copy of the items is stored with each tile's rows permuted so that a
       group's items lie one tile-row apart: the reduction then runs over contiguous memory.)
    2. **Certified re-scoring.** Each screened score is within a bound :math:`\delta_{ug}` of
       the float32 score of the same pair (:meth:`_slack`: rounding of the bfloat16 copies,
       float32 accumulation, bfloat16 output). A group without excluded items holds an item
       scoring at least its maximum minus :math:`\delta_{ug}`, so the ``k``-th largest of
       these lower bounds, :math:`\tau_u`, is at most the ``k``-th best score of the row;
       only groups whose maximum plus :math:`\delta_{ug}` reaches :math:`\tau_u` can hold a
       top-``k`` item, tied ones included. Their items are scored in float32, the excluded
       pairs masked, and ranked exactly, ties by item id.

    Rows where the certificate does not narrow the search (fewer than ``k`` groups free of
    excluded items; a bound too loose, as for a zero user vector) are scored against every
    item. The answer does not depend on the screening precision: the items and scores
    returned are those of the float32 re-scoring.

    **Cost.** The screening product is the ``2 b I F`` flop of full ranking, at bfloat16
    speed where available (about 2x float32 on AVX512-BF16 CPUs) and without writing scores
    to memory, whereas the score-block path writes the ``[B, I]`` block once and reads it
    twice. The rest is ``O(b I / group_size)`` elementwise work and about 40 groups of items
    re-scored per user (measured on trained LightGCN embeddings and on random ones).

    Args:
        item_emb (torch.Tensor): ``[I, F]`` float32 item embeddings (must be finite).
        tile_items (int): items per screening tile, a multiple of ``group_size``.
            (default: ``4096``)
        group_size (int, optional): consecutive items per group of the screening maxima
            (default: :func:`screening_group_size`, 8 to 64 as the items grow)
        block_users (int): users screened at once. (default: ``256``)
        precision (str): ``"auto"`` (bfloat16 where it is native, else float32),
            ``"bfloat16"`` or ``"float32"``. (default: ``"auto"``)
    """

    def __init__(self, item_emb: Tensor, tile_items: int = _SCREEN_TILE, group_size: Optional[int] = None,
                 block_users: int = 256, precision: str = "auto") -> None:
        if item_emb.dim() != 2 or item_emb.dtype != torch.float32:
            raise ValueError(f"DotProductTopK: item_emb must be a [I, F] float32 tensor, got "
                             f"{tuple(item_emb.shape)} {item_emb.dtype}")
        if group_size is None:
            group_size = screening_group_size(item_emb.size(0)) if item_emb.dim() == 2 else 1
        if group_size < 1 or tile_items < group_size or tile_items % group_size:
            raise ValueError(f"DotProductTopK: tile_items ({tile_items}) must be a multiple of "
                             f"group_size ({group_size})")
        if precision not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"DotProductTopK: precision must be 'auto', 'bfloat16' or 'float32', got {precision!r}")
        if not bool(torch.isfinite(item_emb).all()):
            raise ValueError("DotProductTopK: item embeddings must be finite")
        dev = item_emb.device
        self.item_emb = item_emb.detach().contiguous()
        self.tile, self.group, self.block_users = int(tile_items), int(group_size), int(block_users)
        use_bf16 = precision == "bfloat16" or (precision == "auto" and _fast_bf16(dev))
        self.screen_dtype = torch.bfloat16 if use_bf16 else torch.float32
        num_items, feat = item_emb.shape
        r = self.group
        self.num_groups = -(-num_items // r)
        # screening copy: within a tile of n items, position p = j * (n // r) + g holds item
        # g * r + j of the tile (j < r), so that a [r, n // r] view of the tile's scores has
        # group g in column g; a short rest of n % r items keeps its place
        pos = torch.arange(num_items, device=dev)
        start = pos - pos % self.tile
        n = torch.clamp(num_items - start, max=self.tile)
        width = n // r
        off = pos - start
        strided = off < width * r
        safe_width = width.clamp(min=1)
        source = torch.where(strided, start + (off % safe_width) * r + off // safe_width, pos)
        self.items_lp = self.item_emb.index_select(0, source).to(self.screen_dtype)
        self.tiles = [(s, min(s + self.tile, num_items)) for s in range(0, num_items, self.tile)]
        # float32 accumulation over F products, in the screening and in the re-scoring
        self.accumulation_eps = 2.0 * (2.0 * feat * 2.0 ** -24)
        group_of_item = pos // r
        norms = self.item_emb.norm(dim=1)
        group_norm = torch.zeros(self.num_groups, device=dev).scatter_reduce_(0, group_of_item, norms, "amax")
        lp_error = (self.item_emb.index_select(0, source) - self.items_lp.float()).norm(dim=1)
        group_lp_error = torch.zeros(self.num_groups, device=dev).scatter_reduce_(
            0, group_of_item[source], lp_error, "amax")
        # [3, G]: the item factors of the screening error bound (see _slack)
        self._item_terms = torch.stack([group_norm, group_lp_error, torch.ones_like(group_norm)])
        self._buffers: dict = {}

    # ------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, user_emb: Tensor, k: int, exclude_rows: Optional[Tensor] = None,
                 exclude_cols: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Top-``k`` item ids ``[B, k]`` (best first, ties by ascending id) of the rows of
        ``user_emb`` ``[B, F]`` and their float32 scores; ``(exclude_rows, exclude_cols)``
        are (row of ``user_emb``, item) pairs ranked last with score ``-inf``. Users with
        fewer than ``k`` items left get excluded ones last, by ascending id."""
        num_items = self.item_emb.size(0)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_items:
            raise ValueError(f"DotProductTopK: k must be an int in [1, {num_items}], got {k!r}")
        if user_emb.dim() != 2 or user_emb.size(1) != self.item_emb.size(1) or user_emb.device != self.item_emb.device:
            raise ValueError(f"DotProductTopK: user_emb must be [B, {self.item_emb.size(1)}] on "
                             f"{self.item_emb.device}, got {tuple(user_emb.shape)} on {user_emb.device}")
        b = user_emb.size(0)
        if exclude_rows is None:
            exclude_rows = exclude_cols = torch.zeros(0, dtype=torch.long, device=user_emb.device)
        exclude_rows, exclude_cols = _check_excluded(exclude_rows, exclude_cols, b, num_items, user_emb.device)
        user_emb = user_emb.to(torch.float32)
        if b == 0:
            return (torch.zeros(0, k, dtype=torch.long, device=user_emb.device),
                    torch.zeros(0, k, device=user_emb.device))
        threads = torch.get_num_threads() if user_emb.device.type == "cpu" else 1
        parts = max(-(-b // self.block_users), min(threads, -(-b // 32)))  # sub-blocks of >= 32 users
        step = -(-b // parts)  # equal sub-blocks of at most block_users
        starts = torch.arange(0, b + step, step, device=exclude_rows.device).clamp_(max=b)
        bounds = torch.searchsorted(exclude_rows, starts).tolist()
        jobs = [(start, bounds[i], bounds[i + 1]) for i, start in enumerate(range(0, b, step))]

        def run(job):
            start, lo, hi = job
            return self._block(user_emb[start:start + step], k, exclude_rows[lo:hi] - start, exclude_cols[lo:hi])

        if threads > 1 and len(jobs) > 1:
            # one sub-block per core, each on one thread: the tile products are too small to
            # split well across threads (1.5x on 2 cores that way, 1.8x like this)
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
                    results = list(pool.map(run, jobs))
            finally:
                torch.set_num_threads(threads)
        else:
            results = [run(job) for job in jobs]
        return torch.cat([t for t, _ in results]), torch.cat([v for _, v in results])

    def _scratch(self, name: str, shape: Tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """A reused buffer: fresh memory costs a page fault per 4 KiB on first touch, which
        made the re-scoring gathers about 6x slower than the same copy into reused memory."""
        numel = 1
        for n in shape:
            numel *= n
        buffers = self._buffers.setdefault(threading.get_ident(), {})  # one set per worker thread
        buf = buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype:
            buf = buffers[name] = torch.empty(numel, dtype=dtype, device=self.item_emb.device)
        return buf[:numel].view(shape)

    def _full_rows(self, u: Tensor, k: int, rows: Tensor, cols: Tensor) -> Tuple[Tensor, Tensor]:
        """Rows scored against every item, at most ``block_users // 4`` at once (the float32
        rows then take no more memory than the screening of a block)."""
        step = max(1, self.block_users // 4)
        tops, values = [], []
        bounds = torch.searchsorted(rows, torch.arange(0, u.size(0) + step, step, device=rows.device)
                                    .clamp_(max=u.size(0))).tolist()
        for i, start in enumerate(range(0, u.size(0), step)):
            scores = u[start:start + step] @ self.item_emb.t()
            lo, hi = bounds[i], bounds[i + 1]
            scores[rows[lo:hi] - start, cols[lo:hi]] = float("-inf")
            top = topk_ties_by_index(scores, k)
            tops.append(top)
            values.append(scores.gather(1, top))
        return torch.cat(tops), torch.cat(values)

    def _block(self, u: Tensor, k: int, rows: Tensor, cols: Tensor) -> Tuple[Tensor, Tensor]:
        b, dev = u.size(0), u.device
        r = self.group
        if self.num_groups < 4 * k:
            return self._full_rows(u, k, rows, cols)
        # 1. screening: group maxima of the tile scores
        u_lp = u.to(self.screen_dtype)
        maxima = self._scratch("maxima", (b, self.num_groups), self.screen_dtype)
        buf = self._scratch("tile", (b, self.tile), self.screen_dtype)
        for start, end in self.tiles:
            n = end - start
            width, g0 = n // r, start // r
            out = buf[:, :n]
            torch.mm(u_lp, self.items_lp[start:end].t(), out=out)
            if width:
                torch.amax(out[:, :width * r].view(b, r, width), 1, out=maxima[:, g0:g0 + width])
            if n > width * r:
                torch.amax(out[:, width * r:], 1, keepdim=True, out=maxima[:, g0 + width:g0 + width + 1])
        # 2. the certificate: tau, a lower bound of each row's k-th best score (bfloat16
        # maxima enter the float32 arithmetic as they are read)
        slack = self._slack(u, u_lp, maxima)
        lower = torch.sub(maxima, slack)
        lower[rows, cols // r] = float("-inf")  # groups holding an excluded item
        tau = torch.topk(lower, k, dim=1).values[:, -1:]
        cand = torch.ge(slack.add_(maxima), tau)  # upper bound >= tau
        counts = cand.sum(1)
        # rows the certificate does not narrow, or with non-finite values, are scored in full
        # (a sum is finite only if every term is: one pass; an overflowing sum only costs a
        # row scored in full)
        bad = ~torch.isfinite(tau).view(-1) | (counts * r * 8 > self.item_emb.size(0)) | \
            ~torch.isfinite(maxima.sum(1)) | ~torch.isfinite(u.sum(1))
        if bool(bad.any()):
            top = torch.empty(b, k, dtype=torch.long, device=dev)
            val = torch.empty(b, k, device=dev)
            bad_rows = bad.nonzero().view(-1)
            keep = bad[rows]
            sel = torch.full((b,), -1, dtype=torch.long, device=dev)
            sel[bad_rows] = torch.arange(bad_rows.numel(), device=dev)
            top[bad_rows], val[bad_rows] = self._full_rows(u[bad_rows], k, sel[rows[keep]], cols[keep])
            good = (~bad).nonzero().view(-1)
            if good.numel():
                sel[good] = torch.arange(good.numel(), device=dev)
                keep = ~keep
                top[good], val[good] = self._rescore(u[good], k, cand[good], sel[rows[keep]], cols[keep])
            return top, val
        return self._rescore(u, k, cand, rows, cols)

    def _slack(self, u: Tensor, u_lp: Tensor, maxima: Tensor) -> Tensor:
        r"""``[b, G]`` bound on how far a screened score in group ``g`` is from the float32
        score of the same pair and from its re-scored value. With :math:`\tilde u,
        \tilde\imath` the screening copies, :math:`|u\cdot i - \tilde u\cdot\tilde\imath|
        \le \lVert u-\tilde u\rVert\lVert i\rVert + \lVert\tilde u\rVert\lVert
        i-\tilde\imath\rVert`; each float32 accumulation over ``F`` products adds at most
        :math:`F\,2^{-24}\lVert u\rVert\lVert i\rVert` (screening and re-scoring: twice
        that); a bfloat16 output adds :math:`2^{-8}` of the magnitude; subnormal inputs read as
        zero add :math:`F\,2^{-126}(\lVert u\rVert + \lVert i\rVert)`. Group maxima of the
        item terms, and a 1% margin on the whole. One ``[b, 3] x [3, G]`` product."""
        feat = u.size(1)
        unorm = u.norm(dim=1)
        tiny = feat * 2.0 ** -126
        out = self._scratch("slack", (u.size(0), self.num_groups), torch.float32)
        if self.screen_dtype == torch.float32:
            terms_u = torch.stack([self.accumulation_eps * unorm + tiny, torch.zeros_like(unorm),
                                   tiny * unorm + tiny], 1)
            return torch.mm(1.01 * terms_u, self._item_terms, out=out)
        u_err = (u - u_lp.float()).norm(dim=1)
        lp_norm = u_lp.float().norm(dim=1)
        out_eps = 2.0 ** -8
        terms_u = torch.stack([u_err + self.accumulation_eps * unorm + tiny, lp_norm, tiny * unorm + tiny], 1)
        slack = torch.mm(terms_u, self._item_terms, out=out)
        # |error| <= inputs + 2^-8 (|m| + inputs), times the margin
        return slack.mul_(1.01 * (1 + out_eps)).add_(maxima.abs(), alpha=1.01 * out_eps)

    def _rescore(self, u: Tensor, k: int, cand: Tensor, rows: Tensor, cols: Tensor) -> Tuple[Tensor, Tensor]:
        """Exact float32 scores of the items of each row's candidate groups, excluded pairs
        masked, ranked by :func:`_topk_exact`. Candidate groups come in ascending order, and
        a group is a run of consecutive ids, so each row's columns ascend by item id."""
        dev = u.device
        num_items = self.item_emb.size(0)
        b, r = u.size(0), self.group
        crow, cgroup = cand.nonzero(as_tuple=True)  # row-major: groups ascend within a row
        counts = torch.bincount(crow, minlength=b)
        width = int(counts.max())
        slots = _row_slots(counts, crow.numel())
        items = (cgroup.unsqueeze(1) * r + torch.arange(r, device=dev)).view(-1)
        past_end = items >= num_items  # the last group may be short
        emb = torch.index_select(self.item_emb, 0, items.clamp_(max=num_items - 1),
                                 out=self._scratch("gathered", (items.numel(), u.size(1)), torch.float32))
        group_scores = torch.bmm(emb.view(-1, r, u.size(1)), u[crow].unsqueeze(2),
                                 out=self._scratch("group_scores", (crow.numel(), r, 1), torch.float32))
        group_scores.view(-1).masked_fill_(past_end, float("-inf"))
        scores = torch.full((b, width, r), float("-inf"), device=dev)
        scores[crow, slots] = group_scores.view(-1, r)
        ids = torch.full((b, width, r), num_items, dtype=torch.long, device=dev)
        ids[crow, slots] = items.view(-1, r)
        if rows.numel():
            # excluded pairs that fall in a candidate group: slot of (row, group) from a running
            # count of the candidates along the row
            slot_of = torch.cumsum(cand, 1, dtype=torch.int32)
            g = cols // r
            hit = cand[rows, g]
            if bool(hit.any()):
                rr, cc = rows[hit], cols[hit]
                scores[rr, slot_of[rr, cc // r].long() - 1, cc % r] = float("-inf")
        scores, ids = scores.view(b, -1), ids.view(b, -1)
        pos = _topk_exact(scores, k)
        return ids.gather(1, pos).clamp_(max=num_items - 1), scores.gather(1, pos)


class DotProductScorer:
    r"""Block scorer ``users -> user_emb[users] @ item_emb.T`` of embedding recommenders, for
    :func:`graphkit.rec.full_ranking` and ``recommend``, that also ranks without scores.

    * Called, it writes every block into one reused buffer. A block of 2048 users against
      40k items is 335 MB of scores; written into freshly allocated memory, every 4 KiB page
      costs a page fault on first touch, which made the score product about 1.6x slower on
      CPU than the same product into reused memory. The returned tensor is overwritten by the
      next call, and :func:`~graphkit.rec.full_ranking` may mask it in place
      (``returns_scratch``); copy it to keep it.
    * :meth:`topk` ranks a block exactly without a ``[B, I]`` score block
      (:class:`DotProductTopK`), when the items are many enough for it to pay off
      (:meth:`ranks_without_scores`) and the embeddings are finite float32; full ranking and
      ``recommend`` use it then, so their lists are the same.

    Args:
        user_emb (torch.Tensor): ``[U, F]`` user embeddings.
        item_emb (torch.Tensor): ``[I, F]`` item embeddings.
    """

    returns_scratch = True

    def __init__(self, user_emb: Tensor, item_emb: Tensor) -> None:
        if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.size(1) != item_emb.size(1):
            raise ValueError(f"DotProductScorer: embeddings must be [U, F] and [I, F] "
                             f"(got {tuple(user_emb.shape)} and {tuple(item_emb.shape)})")
        self.user_emb, self.item_emb = user_emb, item_emb
        self._buffer: Optional[Tensor] = None
        self._ranker: Optional[DotProductTopK] = None
        self._ranker_ok: Optional[bool] = None

    def __call__(self, users: Tensor) -> Tensor:
        n = users.numel()
        dtype = torch.result_type(self.user_emb, self.item_emb)
        if self._buffer is None or self._buffer.size(0) < n or self._buffer.dtype != dtype:
            self._buffer = self.user_emb.new_empty(n, self.item_emb.size(0), dtype=dtype)
        out = self._buffer[:n]
        return torch.mm(self.user_emb[users], self.item_emb.t(), out=out)

    def ranks_without_scores(self, k: int) -> bool:
        """Whether :meth:`topk` applies: float32 embeddings on one device, finite items, at
        least ``2 * DotProductTopK`` tile of items and 4k screening groups."""
        if self._ranker_ok is None:
            ok = (self.user_emb.dtype == torch.float32 and self.item_emb.dtype == torch.float32
                  and self.user_emb.device == self.item_emb.device
                  and self.item_emb.size(0) >= 2 * _SCREEN_TILE
                  and bool(torch.isfinite(self.item_emb).all()))
            self._ranker_ok = ok
        return self._ranker_ok and -(-self.item_emb.size(0) // screening_group_size(self.item_emb.size(0))) >= 4 * k

    def topk(self, users: Tensor, k: int, exclude: Optional[PairIndex] = None) -> Optional[Tuple[Tensor, Tensor]]:
        """Exact top-``k`` items ``[B, k]`` of ``users`` and their float32 scores, the pairs of
        ``exclude`` ranked last with score ``-inf``, ties by ascending item id; ``None`` when
        :meth:`ranks_without_scores` is false (then score the block and rank it)."""
        if not self.ranks_without_scores(k):
            return None
        if self._ranker is None:
            self._ranker = DotProductTopK(self.item_emb.detach())
        dev = self.item_emb.device
        users = users.to(dev)
        user_emb = self.user_emb.detach()[users]
        if not bool(torch.isfinite(user_emb.sum(1)).all()):
            return None  # the scoring path names the user with a NaN score
        if exclude is not None:
            rows, cols = exclude.block(users.to(exclude.keys.device))
            rows, cols = rows.to(dev), cols.to(dev)
        else:
            rows = cols = None
        return self._ranker(user_emb, k, rows, cols)
