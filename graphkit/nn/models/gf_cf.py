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

__all__ = ["GFCF"]

_FLOAT = 4  # bytes of a float32 score


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
    raise ValueError(f"unknown SVD solver {solver!r}; choose 'arpack' or 'lowrank'")


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
            ``I^2 <= 32 nnz(R)``). (default: ``"auto"``)
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
        self._graph = {"rowptr": rowptr, "items": items, "rn": rn, "rn_t": rn_t,
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
        """Check and store the truncated-SVD solver (``"arpack"`` exact, ``"lowrank"``
        randomised) and its power iterations."""
        name = type(self).__name__
        if svd not in ("arpack", "lowrank"):
            raise ValueError(f"{name}: 'svd' must be 'arpack' or 'lowrank', got {svd!r}")
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
        return self.item_item == "auto" and fits and self.num_items ** 2 <= 32 * nnz

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
    def _propagate(self, x: Tensor) -> Tensor:
        r""":math:`\tilde{\mathbf{P}}\mathbf{X}` for an item-major block ``x`` ``[I, B]``."""
        if self._dense_p is not None:
            return self._dense_p @ x
        g = self._graph
        return torch.sparse.mm(g["rn_t"], torch.sparse.mm(g["rn"], x))

    def _ideal(self, x: Tensor) -> Tensor:
        r"""The ideal low-pass filter :math:`\mathbf{D}_I^{1/2}\mathbf{V}_k\mathbf{V}_k^{\top}
        \mathbf{D}_I^{-1/2}\mathbf{X}` of an item-major block (the transpose of
        :math:`\mathbf{r}_u \mathbf{D}_I^{-1/2}\mathbf{V}_k\mathbf{V}_k^{\top}\mathbf{D}_I^{1/2}`)."""
        g = self._graph
        left, right = g["v_in"].to(x.dtype), g["v_out"].to(x.dtype)
        raw = self._raw
        if raw is not None and x is raw[0]:  # the raw rows: a sparse product is enough
            return right @ torch.sparse.mm(raw[1], left).t()
        return right @ (left.t() @ x)

    def _rows(self, users: Tensor):
        """The raw interaction rows of ``users``: item-major dense ``[I, B]`` and sparse CSR
        ``[B, I]`` (float32, 0/1)."""
        g = self._graph
        start, end = g["rowptr"][users], g["rowptr"][users + 1]
        counts = end - start
        crow = torch.zeros(users.numel() + 1, dtype=torch.long, device=users.device)
        crow[1:] = torch.cumsum(counts, 0)
        col = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), counts)
        offset = torch.arange(int(crow[-1]), device=users.device) - torch.repeat_interleave(crow[:-1], counts)
        items = g["items"][torch.repeat_interleave(start, counts) + offset]
        x = torch.zeros(self.num_items, users.numel(), device=users.device)
        x[items, col] = 1.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
            rows = torch.sparse_csr_tensor(crow, items, torch.ones_like(items, dtype=x.dtype),
                                           (users.numel(), self.num_items), check_invariants=False)
        return x, rows

    def block_size(self) -> int:
        """Users per sub-block so that the filter's intermediates fit ``memory_budget_mb``."""
        n_i, n_u = self._work_columns
        per_user = (n_i * self.num_items + n_u * self.num_users + 2 * self._rank) * _FLOAT
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
        size = self.block_size()
        out = torch.empty(users.numel(), self.num_items, device=users.device)
        for start in range(0, users.numel(), size):
            block = users[start:start + size]
            self._raw = self._rows(block)
            try:
                out[start:start + block.numel()] = self._filter(self._raw[0]).t()
            finally:
                self._raw = None
        return out

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
        svd (str): ``"arpack"`` (exact, :func:`scipy.sparse.linalg.svds`) or ``"lowrank"``
            (randomised :func:`torch.svd_lowrank`, approximate). (default: :obj:`"arpack"`)
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
