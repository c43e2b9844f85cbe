r"""GF-CF: the training-free graph-filter recommender, and the machinery shared by the graph
filters (:class:`~graphkit.nn.models.BSPM`, :class:`~graphkit.nn.models.PolyFilter`).

Every filter here scores a user from the row :math:`\mathbf{r}_u` of the binary interaction
matrix :math:`\mathbf{R}` and the normalised matrix
:math:`\tilde{\mathbf{R}} = \mathbf{D}_U^{-1/2}\mathbf{R}\mathbf{D}_I^{-1/2}`, through the
item–item matrix :math:`\tilde{\mathbf{P}} = \tilde{\mathbf{R}}^{\top}\tilde{\mathbf{R}}` and the
top-:math:`k` right singular vectors :math:`\mathbf{V}_k` of :math:`\tilde{\mathbf{R}}`.
:math:`\tilde{\mathbf{P}}` is never formed: a block of users is held item-major, as
:math:`\mathbf{X} \in \mathbb{R}^{I \times B}`, and :math:`\tilde{\mathbf{P}}\mathbf{X}` is computed
as :math:`\tilde{\mathbf{R}}^{\top}(\tilde{\mathbf{R}}\mathbf{X})` with two sparse CSR products
(``2 nnz(R) B`` multiply–adds). Only when ``item_item="dense"`` (or ``"auto"`` and it fits a
quarter of ``memory_budget_mb`` and is cheaper) is the dense ``[I, I]`` matrix built.

**Cost and blocking.** Users are filtered in panels of a few dozen (``~2^20 / max(U, I)``
columns, so that a panel of :math:`\mathbf{X}` and of :math:`\tilde{\mathbf{R}}\mathbf{X}` stays
in cache while the non-zeros stream by: ~3x more multiply–adds per second than a block of 768
users on Gowalla); the first application of :math:`\tilde{\mathbf{P}}` to the raw 0/1 rows
gathers columns of :math:`\tilde{\mathbf{R}}` instead when that is cheaper; the ideal term
:math:`\mathbf{D}_I^{1/2}\mathbf{V}_k(\mathbf{V}_k^{\top}\mathbf{D}_I^{-1/2}\mathbf{X})` is one dense
product for up to 1024 users at a time. Per user, a filter with :math:`A` applications of
:math:`\tilde{\mathbf{P}}` costs about ``2 A nnz(R)`` multiply–adds plus ``I k`` for the ideal
term: time grows with interactions times users, memory with ``I`` (panel columns, the
``[I, k]`` vectors, the ``[I, 1024]`` ideal block) and the interactions, never with ``I^2``.
The dense form costs ``I^2`` per user and application and ``4 I^2`` bytes (6.7 GB at Gowalla's
41k items, 37 GB at 100k). With many items keep ``item_item="sparse"`` (what ``"auto"``
chooses), ``svd="arpack"`` (``"dense"`` needs ``~24 I^2`` bytes) or a lower ``rank``, lower
``memory_budget_mb`` if working memory is short (it only changes the blocking), or use
:class:`~graphkit.nn.models.PolyFilter`, which needs no SVD.

The singular vectors are computed once by :meth:`set_graph` with ARPACK
(:func:`scipy.sparse.linalg.svds`, exact up to its tolerance ``1e-6`` relative, deterministic
start vector) or, with ``svd="lowrank"``, by the randomised :func:`torch.svd_lowrank`
(``niter`` power iterations). The randomised solver is approximate: on Gowalla at ``k = 256``
the spectrum of :math:`\tilde{\mathbf{R}}` is so flat near the cut-off that 8 power iterations
recover only ~89% of the ARPACK subspace (``||V_lr^T V_arpack||_F^2 / k``; 58% with 2), and it
is not faster on CPU (25 s against 12 s at 1 thread), so ARPACK is the default.

**Users and items without training interactions.** Their degree is 0 and their
:math:`D^{-1/2}` (and :math:`D^{1/2}`) is taken as 0: an item nobody interacted with gets score
0 from every filter, and a user without interactions gets all-zero scores (so
:meth:`~graphkit.nn.models.Recommender.recommend` returns the lowest item ids, ties being
broken by id). No NaN or infinity is ever produced.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from torch import Tensor

from graphkit.nn.models.recommender import Recommender, as_interaction_pairs, check_ids, register_recommender
from graphkit.utils import csr_spmm

__all__ = ["GFCF"]

_FLOAT = 4  # bytes of a float32 score
_PANEL_FLOATS = 2 ** 20  # a column panel of the sparse products: about 4 MB, so it stays in cache
_IDEAL_BLOCK = 1024  # users whose ideal low-pass term is one dense product (wider gains nothing)
_SCATTER_COST = 16  # streaming multiply-adds one scattered entry of the raw-row product costs


def check_nonnegative(owner: str, name: str, value: Any, *, positive: bool = False) -> float:
    """``float(value)``, or a :class:`ValueError` naming ``owner`` and ``name`` when it is NaN,
    infinite, negative (or zero with ``positive=True``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: '{name}' must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise ValueError(f"{owner}: '{name}' must be {need} finite number, got {value!r}")
    return value


def check_count(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{owner}: '{name}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_rank(owner: str, rank: Any, num_users: int, num_items: int) -> int:
    rank = check_count(owner, "rank", rank, 0)
    if rank > min(num_users, num_items) - 1:
        raise ValueError(f"{owner}: rank={rank} is too large for a {num_users} x {num_items} interaction "
                         f"matrix; it must be at most {min(num_users, num_items) - 1}")
    return rank


def _fingerprint(pairs: Tensor, num_items: int) -> Tensor:
    """Three int64 numbers identifying a set of (user, item) pairs (order-free)."""
    keys = pairs[0] * num_items + pairs[1]
    mixed = (keys * 2654435761) % 2147483647
    return torch.stack([torch.tensor(keys.numel()), keys.sum(), mixed.sum()]).to(torch.long).cpu()


def top_right_singular_vectors(rows: Tensor, cols: Tensor, values: Tensor, shape, rank: int,
                               solver: str = "arpack", niter: int = 8, seed: int = 0) -> Tensor:
    r"""The top-``rank`` right singular vectors ``[n, rank]`` (float32, columns by descending
    singular value) of the sparse ``shape = (m, n)`` matrix given in COO form.

    ``solver="arpack"``: :func:`scipy.sparse.linalg.svds` (float32, tolerance ``1e-6``, fixed
    start vector, so deterministic); needs ``rank < min(m, n)``.
    ``solver="lowrank"``: :func:`torch.svd_lowrank` with ``q = rank + 16`` and ``niter`` power
    iterations, seeded with ``seed`` (approximate, see the module notes).
    ``solver="dense"``: the top eigenvectors of the dense ``[n, n]`` Gram matrix
    :math:`\mathbf{A}^{\top}\mathbf{A}` (float64, LAPACK ``syevr`` for the top ``rank`` only); exact and much
    faster than ARPACK when ``n`` is a few thousand and ``rank`` a sizeable share of it, but it takes
    ``~3 * 8 n^2`` bytes.
    """
    m, n = shape
    if solver == "arpack":
        import scipy.sparse as sp
        from scipy.sparse.linalg import svds

        mat = sp.csr_matrix((values.cpu().numpy(), (rows.cpu().numpy(), cols.cpu().numpy())),
                            shape=(m, n), dtype=np.float32)
        v0 = np.full(min(m, n), 1.0 / math.sqrt(min(m, n)), dtype=np.float32)
        _, s, vt = svds(mat, k=rank, tol=1e-6, v0=v0, return_singular_vectors="vh")
        order = np.argsort(-s, kind="stable")
        return torch.from_numpy(np.ascontiguousarray(vt[order].T)).float()
    if solver == "lowrank":
        mat = torch.sparse_coo_tensor(torch.stack([rows, cols]).cpu(), values.cpu().float(), (m, n),
                                      check_invariants=False).coalesce()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, _, v = torch.svd_lowrank(mat, q=min(rank + 16, m, n), niter=niter)
        return v[:, :rank].contiguous().float()
    if solver == "dense":
        import scipy.sparse as sp

        mat = sp.csr_matrix((values.cpu().double().numpy(), (rows.cpu().numpy(), cols.cpu().numpy())),
                            shape=(m, n), dtype=np.float64)
        from scipy.linalg import eigh

        if rank == 0:
            return torch.zeros(n, 0)
        # only the top eigenvectors (MRRR), ascending eigenvalues
        _, vec = eigh((mat.T @ mat).toarray(), subset_by_index=[n - rank, n - 1], driver="evr")
        return torch.from_numpy(np.ascontiguousarray(vec[:, ::-1])).float()
    raise ValueError(f"unknown SVD solver {solver!r}; choose 'arpack', 'lowrank' or 'dense'")


class _ItemFilterRecommender(Recommender):
    r"""Shared machinery of the training-free item–item graph filters (see the module notes).

    A subclass implements :meth:`_filter` (item-major block ``[I, B]`` of raw rows to its
    ``[I, B]`` scores), :meth:`_prepare` (work done once per graph, e.g. the SVD) and
    :attr:`_work_columns` (how many ``[I]`` and ``[U]`` float columns its filter keeps alive
    per user, for the memory budget).

    Args:
        memory_budget_mb (float): working memory of one scoring block (MB): the users of a
            :meth:`score_all` call are split into sub-blocks whose intermediates fit it, and a
            dense item–item matrix is only built if it fits a quarter of it. The returned
            ``[B, I]`` scores are not counted. (default: ``1024``)
        item_item (str): ``"sparse"`` (two sparse products per application of
            :math:`\tilde{\mathbf{P}}`), ``"dense"`` (build :math:`\tilde{\mathbf{P}}`, an error
            if it does not fit the budget) or ``"auto"`` (dense when it fits and
            ``I^2 <= 8 nnz(R)``: a dense GEMM runs ~4x more multiply-adds per second than the
            cache-panelled sparse products, which cost ``2 nnz(R)`` per user against ``I^2``).
            (default: ``"auto"``)
    """

    trainable = False
    _buffer_names = ("item_vectors", "graph_key")

    def __init__(self, num_users: int, num_items: int, memory_budget_mb: float = 1024.0,
                 item_item: str = "auto") -> None:
        super().__init__(num_users, num_items)
        name = type(self).__name__
        self.memory_budget_mb = check_nonnegative(name, "memory_budget_mb", memory_budget_mb, positive=True)
        if item_item not in ("auto", "sparse", "dense"):
            raise ValueError(f"{name}: 'item_item' must be 'auto', 'sparse' or 'dense', got {item_item!r}")
        self.item_item = item_item
        # saved with the model: the singular vectors and the fingerprint of the graph they belong to
        self.register_buffer("item_vectors", torch.zeros(num_items, 0))
        self.register_buffer("graph_key", torch.zeros(3, dtype=torch.long))
        self.train_edge_index: Optional[Tensor] = None
        self._graph: Optional[Dict[str, Tensor]] = None
        self._raw: Optional[tuple] = None  # (dense item-major raw rows, sparse [B, I] rows) of a block
        self._raw_ideal: Optional[Tensor] = None  # the ideal term of those raw rows, when computed ahead

    # ------------------------------------------------------------------ subclass hooks
    _rank: int = 0  # singular vectors needed
    _work_columns = (2, 1)  # floats per user: (columns of length I, columns of length U)

    def _prepare(self) -> None:
        """Work done once per graph after the normalised matrices exist."""

    def _filter(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: Tensor) -> "_ItemFilterRecommender":
        r"""Prepare the filter from the training interactions: a ``[2, E]`` (user, item)
        integer tensor, a PyG ``EdgeIndex`` or a ``torch.sparse`` ``[U, I]`` matrix (stored
        entries are interactions, values unused; duplicates count once). Builds
        :math:`\tilde{\mathbf{R}}` and, when the filter needs them, the top singular vectors —
        unless the vectors loaded with :meth:`load_state_dict` belong to this very graph.
        Returns the model."""
        where = f"{type(self).__name__}.set_graph"
        pairs = as_interaction_pairs(edge_index, self.num_users, self.num_items, where)
        if pairs.size(1) == 0:
            raise ValueError(f"{where}: the training graph has no interactions")
        device = self._device()
        keys = torch.unique(pairs[0] * self.num_items + pairs[1])  # sorted by user, then item
        users, items = keys // self.num_items, keys % self.num_items
        pairs = torch.stack([users, items]).to(device)
        users, items = pairs[0], pairs[1]
        du = torch.bincount(users, minlength=self.num_users).to(torch.float32)
        di = torch.bincount(items, minlength=self.num_items).to(torch.float32)
        du_isqrt = torch.where(du > 0, du.clamp(min=1).rsqrt(), torch.zeros_like(du))
        di_isqrt = torch.where(di > 0, di.clamp(min=1).rsqrt(), torch.zeros_like(di))
        di_sqrt = di.sqrt()  # 0 where the degree is 0
        values = du_isqrt[users] * di_isqrt[items]
        rowptr = torch.zeros(self.num_users + 1, dtype=torch.long, device=device)
        rowptr[1:] = torch.cumsum(du.long(), 0)
        colptr = torch.zeros(self.num_items + 1, dtype=torch.long, device=device)
        colptr[1:] = torch.cumsum(di.long(), 0)
        by_item = torch.argsort(items * self.num_users + users)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
            rn = torch.sparse_csr_tensor(rowptr, items, values, (self.num_users, self.num_items),
                                         check_invariants=False)
            rn_t = torch.sparse_csr_tensor(colptr, users[by_item], values[by_item],
                                           (self.num_items, self.num_users), check_invariants=False)
        self._graph = {"rowptr": rowptr, "items": items, "rn": rn, "rn_t": rn_t, "colptr": colptr,
                       "di_isqrt": di_isqrt, "di_sqrt": di_sqrt, "values": values, "users": users}
        self.train_edge_index = pairs
        self._seen = None
        key = _fingerprint(pairs, self.num_items).to(self.graph_key.device)
        if self._rank > 0:
            rank_max = min(self.num_users, self.num_items) - 1
            if self._rank > rank_max:
                raise ValueError(f"{where}: rank={self._rank} is too large for a {self.num_users} x "
                                 f"{self.num_items} interaction matrix; it must be at most {rank_max}")
            if not (tuple(self.item_vectors.shape) == (self.num_items, self._rank)
                    and torch.equal(self.graph_key, key)):
                need = 3 * 8 * self.num_items ** 2 / 2 ** 20
                if self._svd_solver() == "dense" and need > self.memory_budget_mb:
                    raise ValueError(f"{where}: svd='dense' needs about {need:.0f} MB for the {self.num_items} x "
                                     f"{self.num_items} Gram matrix and its eigendecomposition, more than "
                                     f"memory_budget_mb={self.memory_budget_mb:g}; use svd='arpack'")
                v = top_right_singular_vectors(users, items, values, (self.num_users, self.num_items),
                                               self._rank, self._svd_solver(), self._svd_niter())
                self.item_vectors = v.to(device=self.graph_key.device)
        self.graph_key = key
        # the ideal filter's two sides, D^{-1/2} V and D^{1/2} V
        self._graph["v_in"] = di_isqrt.unsqueeze(1) * self.item_vectors.to(device)
        self._graph["v_out"] = di_sqrt.unsqueeze(1) * self.item_vectors.to(device)
        self._dense_p = None
        if self._use_dense():
            self._dense_p = self._dense_item_item()
        self._prepare()
        return self

    def fit(self, graph: Any) -> "_ItemFilterRecommender":
        r"""Prepare the filter from an :class:`~graphkit.rec.InteractionGraph` (its ``train``
        part) or anything :meth:`set_graph` accepts. There is nothing to train. Returns the
        model."""
        train = getattr(graph, "train", graph)
        return self.set_graph(train)

    def _set_svd(self, svd: str, svd_niter: int) -> None:
        """Check and store the truncated-SVD solver (``"arpack"`` exact, ``"dense"`` exact for
        a few thousand items, ``"lowrank"``
        randomised) and its power iterations."""
        name = type(self).__name__
        if svd not in ("arpack", "lowrank", "dense"):
            raise ValueError(f"{name}: 'svd' must be 'arpack', 'lowrank' or 'dense', got {svd!r}")
        self.svd = svd
        self.svd_niter = check_count(name, "svd_niter", svd_niter, 0)

    def _svd_solver(self) -> str:
        return getattr(self, "svd", "arpack")

    def _svd_niter(self) -> int:
        return getattr(self, "svd_niter", 8)

    def _use_dense(self) -> bool:
        fits = self.num_items ** 2 * _FLOAT <= self.memory_budget_mb * 2 ** 20 / 4
        if self.item_item == "dense":
            if not fits:
                need = self.num_items ** 2 * _FLOAT * 4 / 2 ** 20
                raise ValueError(f"{type(self).__name__}: item_item='dense' needs the {self.num_items} x "
                                 f"{self.num_items} item-item matrix to fit a quarter of memory_budget_mb; "
                                 f"raise memory_budget_mb to at least {need:.0f} or use 'sparse'")
            return True
        nnz = self.train_edge_index.size(1)
        return self.item_item == "auto" and fits and self.num_items ** 2 <= 8 * nnz

    def _dense_item_item(self) -> Tensor:
        g = self._graph
        p = torch.zeros(self.num_items, self.num_items, device=g["values"].device)
        step = max(1, int(2 ** 24 // max(self.num_items, 1)))  # user rows per chunk
        for start in range(0, self.num_users, step):
            lo, hi = int(g["rowptr"][start]), int(g["rowptr"][min(start + step, self.num_users)])
            if hi == lo:
                continue
            block = torch.zeros(min(step, self.num_users - start), self.num_items, device=p.device)
            block[g["users"][lo:hi] - start, g["items"][lo:hi]] = g["values"][lo:hi]
            p.addmm_(block.t(), block)
        return p

    def _apply(self, fn, *args, **kwargs):  # cached matrices follow the buffers' device/dtype
        super()._apply(fn, *args, **kwargs)
        if self.train_edge_index is not None:
            self.set_graph(self.train_edge_index.to(self.graph_key.device))
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the singular vectors' shape depends on the rank: take the stored shape
        name = prefix + "item_vectors"
        if name in state_dict and state_dict[name].shape != self.item_vectors.shape:
            self.item_vectors = torch.empty_like(state_dict[name], device=self.item_vectors.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ products
    def _panel_width(self) -> int:
        """Columns per panel of the sparse products: a power of two near ``_PANEL_FLOATS /
        max(U, I)`` (8 to 512), so that a panel of the input and of the intermediate
        ``[U, panel]`` stay in cache while the non-zeros stream by."""
        width = _PANEL_FLOATS / max(self.num_users, self.num_items, 1)
        return int(min(512, max(8, 2 ** math.ceil(math.log2(width)))))

    def _propagate(self, x: Tensor) -> Tensor:
        r""":math:`\tilde{\mathbf{P}}\mathbf{X}` for an item-major block ``x`` ``[I, B]``.

        Sparse form: :math:`\tilde{\mathbf{R}}^{\top}(\tilde{\mathbf{R}}\mathbf{X})`, two CSR
        products per panel of :meth:`_panel_width` columns (the whole block would not stay in
        cache: on Gowalla a panel of 32 columns runs ~3x faster per multiply-add than 768).
        When ``x`` is the block's raw 0/1 rows, the first product is a gather of the columns of
        :math:`\tilde{\mathbf{R}}` the users' items pick: :math:`\sum_i d_i b_i` multiply-adds
        (:math:`b_i` users of the block with item :math:`i`) instead of ``nnz(R) B``."""
        if self._dense_p is not None:
            return self._dense_p @ x
        g = self._graph
        raw = self._raw
        is_raw = raw is not None and x is raw[0]
        width = self._panel_width()
        if x.size(1) <= width and not is_raw:
            return csr_spmm(g["rn_t"], csr_spmm(g["rn"], x))
        out = torch.empty_like(x)
        for start in range(0, x.size(1), width):
            end = min(start + width, x.size(1))
            mid = self._raw_product(raw[1], start, end) if is_raw else None
            if mid is None:
                mid = csr_spmm(g["rn"], x[:, start:end])
            out[:, start:end] = csr_spmm(g["rn_t"], mid)
        return out

    def _raw_product(self, rows: Tensor, start: int, end: int) -> Optional[Tensor]:
        r""":math:`\tilde{\mathbf{R}}\mathbf{X}` ``[U, end - start]`` for the raw rows
        ``start:end`` of the block (``rows`` sparse CSR ``[B, I]``, 0/1): every (user, item)
        pair adds the column of item :math:`i` of :math:`\tilde{\mathbf{R}}`. ``None`` when
        that scatter would not be cheaper than the streaming product (it costs about 16
        multiply-adds of the latter per entry; dense data such as ML-1M, where the users'
        items are popular, take the streaming product)."""
        g = self._graph
        device = rows.device
        crow = rows.crow_indices()
        lo, hi = int(crow[start]), int(crow[end])
        items = rows.col_indices()[lo:hi]
        column = torch.repeat_interleave(torch.arange(end - start, device=device),
                                         crow[start + 1:end + 1] - crow[start:end])
        first, counts = g["colptr"][items], g["colptr"][items + 1] - g["colptr"][items]
        if int(counts.sum()) * _SCATTER_COST > self.train_edge_index.size(1) * (end - start):
            return None
        pair = torch.repeat_interleave(torch.arange(items.numel(), device=device), counts)
        offset = torch.cumsum(counts, 0) - counts
        entry = torch.arange(pair.numel(), device=device) - offset[pair] + first[pair]
        width = end - start
        out = torch.zeros(self.num_users * width, device=device, dtype=g["values"].dtype)
        out.index_add_(0, g["rn_t"].col_indices()[entry] * width + column[pair], g["rn_t"].values()[entry])
        return out.view(self.num_users, width)

    def _ideal(self, x: Tensor) -> Tensor:
        r"""The ideal low-pass filter :math:`\mathbf{D}_I^{1/2}\mathbf{V}_k\mathbf{V}_k^{\top}
        \mathbf{D}_I^{-1/2}\mathbf{X}` of an item-major block (the transpose of
        :math:`\mathbf{r}_u \mathbf{D}_I^{-1/2}\mathbf{V}_k\mathbf{V}_k^{\top}\mathbf{D}_I^{1/2}`)."""
        g = self._graph
        left, right = g["v_in"].to(x.dtype), g["v_out"].to(x.dtype)
        raw = self._raw
        if raw is not None and x is raw[0]:  # the raw rows: a sparse product is enough
            if self._raw_ideal is not None:  # computed ahead for a wider block (do not modify it)
                return self._raw_ideal
            return right @ torch.sparse.mm(raw[1], left).t()
        return right @ (left.t() @ x)

    def _rows(self, users: Tensor, dense: bool = True):
        """The raw interaction rows of ``users``: item-major dense ``[I, B]`` (``None`` with
        ``dense=False``) and sparse CSR ``[B, I]`` (float32, 0/1)."""
        g = self._graph
        start, end = g["rowptr"][users], g["rowptr"][users + 1]
        counts = end - start
        crow = torch.zeros(users.numel() + 1, dtype=torch.long, device=users.device)
        crow[1:] = torch.cumsum(counts, 0)
        col = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), counts)
        offset = torch.arange(int(crow[-1]), device=users.device) - torch.repeat_interleave(crow[:-1], counts)
        items = g["items"][torch.repeat_interleave(start, counts) + offset]
        x = None
        if dense:
            x = torch.zeros(self.num_items, users.numel(), device=users.device)
            x[items, col] = 1.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
            rows = torch.sparse_csr_tensor(crow, items, torch.ones_like(items, dtype=torch.float32),
                                           (users.numel(), self.num_items), check_invariants=False)
        return x, rows

    def _work_bytes(self) -> int:
        n_i, n_u = self._work_columns
        return (n_i * self.num_items + n_u * self.num_users + 2 * self._rank) * _FLOAT

    def block_size(self) -> int:
        """Users per sub-block so that the filter's intermediates fit ``memory_budget_mb``."""
        per_user = self._work_bytes()
        size = int(self.memory_budget_mb * 2 ** 20 // per_user)
        if size < 1:
            raise ValueError(f"{type(self).__name__}: memory_budget_mb={self.memory_budget_mb:g} is too small "
                             f"for one user (its intermediates take {per_user} bytes); raise it")
        return size

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score_all(self, users: Tensor) -> Tensor:
        r"""Scores of ``users`` ``[B]`` against every item, ``[B, I]`` (float32), computed in
        sub-blocks that fit ``memory_budget_mb``."""
        where = f"{type(self).__name__}.score_all"
        if self._graph is None:
            raise RuntimeError(f"{where}: call set_graph(train_edge_index) (or fit(graph)) first")
        users = torch.as_tensor(users, device=self._device())
        if users.dim() != 1:
            raise ValueError(f"{where}: users must be 1-D, got shape {list(users.shape)}")
        check_ids("users", users, self.num_users, where, "user")
        users = users.long()
        panel, wide = self._blocking()
        out = torch.empty(users.numel(), self.num_items, device=users.device)
        for start in range(0, users.numel(), wide):
            block = users[start:start + wide]
            ideal = None
            if wide > panel:  # the ideal term of the whole block: one wide dense product
                g = self._graph
                rows = self._rows(block, dense=False)[1]
                ideal = g["v_out"].to(rows.dtype) @ torch.sparse.mm(rows, g["v_in"].to(rows.dtype)).t()
            for first in range(0, block.numel(), panel):
                sub = block[first:first + panel]
                self._raw = self._rows(sub)
                if ideal is not None:
                    self._raw_ideal = ideal[:, first:first + sub.numel()].contiguous()
                try:
                    out[start + first:start + first + sub.numel()] = self._filter(self._raw[0]).t()
                finally:
                    self._raw, self._raw_ideal = None, None
        return out

    def _blocking(self):
        """``(panel, wide)``: users filtered together (a cache-sized panel in the sparse form,
        :meth:`block_size` in the dense form) and users whose ideal term is computed together
        (a multiple of the panel, at most ``_IDEAL_BLOCK``, within the memory budget)."""
        fit = self.block_size()
        if self._dense_p is not None:
            return fit, fit
        panel = min(fit, self._panel_width())
        if self._rank == 0:
            return panel, panel
        spare = self.memory_budget_mb * 2 ** 20 - panel * self._work_bytes()
        wide = int(min(_IDEAL_BLOCK, spare // ((self.num_items + self._rank) * _FLOAT)))
        return panel, max(panel, wide // panel * panel)

    def scorer(self) -> Callable[[Tensor], Tensor]:
        return self.score_all

    def _device(self) -> torch.device:
        return self.graph_key.device


@register_recommender("gfcf")
class GFCF(_ItemFilterRecommender):
    r"""GF-CF, the training-free graph-filter recommender from `"How Powerful is Graph
    Convolution for Recommendation?" <https://arxiv.org/abs/2108.07567>`_ (Shen et al., CIKM
    2021): a linear item–item low-pass filter plus an ideal low-pass filter.

    .. math::
        \tilde{\mathbf{R}} = \mathbf{D}_U^{-1/2}\mathbf{R}\mathbf{D}_I^{-1/2},\qquad
        \mathbf{s}_u = \mathbf{r}_u \tilde{\mathbf{R}}^{\top}\tilde{\mathbf{R}}
        + \alpha\, \mathbf{r}_u \mathbf{D}_I^{-1/2}\mathbf{V}_k\mathbf{V}_k^{\top}\mathbf{D}_I^{1/2}

    where :math:`\mathbf{r}_u` is the user's binary interaction row and :math:`\mathbf{V}_k` the
    top-:math:`k` right singular vectors of :math:`\tilde{\mathbf{R}}`. The linear term is
    computed as :math:`(\mathbf{r}_u\tilde{\mathbf{R}}^{\top})\tilde{\mathbf{R}}` with sparse
    products, never as an ``[I, I]`` matrix unless ``item_item`` says so (see
    :mod:`graphkit.nn.models.gf_cf`). ``rank=0`` or ``alpha=0`` leaves the linear filter alone
    (the paper's Amazon-Book setting).

    There is nothing to train (``trainable = False``): :meth:`set_graph` (or :meth:`fit`)
    prepares the filter. The singular vectors are buffers, saved in the ``state_dict`` with a
    fingerprint of the graph they were computed on, so a loaded model does not recompute them.

    Args:
        num_users (int): number of users.
        num_items (int): number of items.
        alpha (float): weight of the ideal low-pass term, ``>= 0``. (default: :obj:`0.3`, the
            reference code's)
        rank (int): number of singular vectors :math:`k`, ``0 <= k < min(U, I)``.
            (default: :obj:`256`, the reference code's)
        svd (str): ``"arpack"`` (exact, :func:`scipy.sparse.linalg.svds`), ``"dense"`` (exact,
            eigenvectors of the dense item Gram matrix; for a few thousand items, it must fit
            ``memory_budget_mb``) or ``"lowrank"`` (randomised :func:`torch.svd_lowrank`,
            approximate). (default: :obj:`"arpack"`)
        svd_niter (int): power iterations of ``"lowrank"``. (default: :obj:`8`)
        memory_budget_mb (float): working memory of one scoring block. (default: :obj:`1024`)
        item_item (str): ``"auto"``, ``"sparse"`` or ``"dense"``. (default: :obj:`"auto"`)

    Shapes:
        - **input:** training interactions ``[2, E]`` (or a sparse ``[U, I]`` matrix) via
          :meth:`set_graph`; user ids ``[B]``
        - **output:** :meth:`score_all` → ``[B, I]``; :meth:`recommend` → ``[B, k]``
    """

    def __init__(self, num_users: int, num_items: int, alpha: float = 0.3, rank: int = 256,
                 svd: str = "arpack", svd_niter: int = 8, memory_budget_mb: float = 1024.0,
                 item_item: str = "auto") -> None:
        super().__init__(num_users, num_items, memory_budget_mb, item_item)
        self.alpha = check_nonnegative("GFCF", "alpha", alpha)
        self.rank = check_rank("GFCF", rank, num_users, num_items)
        self._set_svd(svd, svd_niter)

    @property
    def _rank(self) -> int:  # type: ignore[override]
        return self.rank if self.alpha > 0 else 0

    _work_columns = (3, 1)

    def _filter(self, x: Tensor) -> Tensor:
        out = self._propagate(x)
        if self._rank > 0:
            out.add_(self._ideal(x), alpha=self.alpha)
        return out

    def __repr__(self) -> str:
        return f"GFCF({self.num_users}, {self.num_items}, alpha={self.alpha:g}, rank={self.rank})"
