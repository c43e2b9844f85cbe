"""UltraGCN: graph-free collaborative filtering through constraint losses."""
from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from graphkit.nn.models.recommender import Recommender, as_interaction_pairs, check_triples, register_recommender


def _scipy_product_kernel():
    """SciPy's numeric sparse-product kernel (behind ``@``; one pass, no symbolic one), or
    ``None``. It is private and writes into the arrays it is given without checking their
    size, so it is used only on the SciPy 1.x releases whose signature we know (1.10 to 1.x)
    and after it reproduces ``@`` on a small product."""
    try:
        import scipy
        from scipy.sparse._sparsetools import csr_matmat
    except ImportError:  # pragma: no cover - another SciPy layout: ``@`` is used
        return None
    major, minor = (int(p) for p in scipy.__version__.split(".")[:2])
    if major != 1 or minor < 10:  # pragma: no cover
        return None
    a = sp.random(7, 5, density=0.5, format="csr", dtype=np.float64, random_state=0)
    at, expect = a.T.tocsr(), (a.T.tocsr() @ a).toarray()
    indptr = np.empty(at.shape[0] + 1, dtype=at.indptr.dtype)
    bound = at.shape[0] * a.shape[1]
    indices, data = np.empty(bound, dtype=at.indices.dtype), np.empty(bound)
    try:
        csr_matmat(at.shape[0], a.shape[1], at.indptr, at.indices, at.data, a.indptr, a.indices, a.data,
                   indptr, indices, data)
        got = sp.csr_matrix((data[:indptr[-1]], indices[:indptr[-1]], indptr), shape=expect.shape).toarray()
    except Exception:  # pragma: no cover - another signature
        return None
    return csr_matmat if np.array_equal(got, expect) else None


_csr_matmat = _scipy_product_kernel()

#: Above this many user x item cells, seen-item checks use binary search instead of a bitmap.
_DENSE_SEEN_LIMIT = 1 << 26
# Buffers that depend on the training graph. They are saved with the state dict and resized
# on load, so a restored model can rank and train without calling ``set_graph`` again.
_GRAPH_BUFFERS = ("beta_user", "beta_item", "ii_neighbors", "ii_weights", "train_ptr", "train_col")


def _argsort_small_keys(keys: Tensor, num_keys: int) -> Tensor:
    r"""A stable ``argsort`` of integer ``keys`` in ``[0, num_keys)``.

    On CPU with ``num_keys <= 65536`` the keys fit in 16 bits and NumPy's stable sort is a
    radix sort: about 5x faster than ``torch.argsort`` for the 0.8M sampled negatives of a
    Yelp2018 batch. Elsewhere ``torch.argsort(stable=True)``.
    """
    if keys.device.type == "cpu" and num_keys <= 1 << 16:
        order = np.argsort(keys.numpy().astype(np.uint16), kind="stable")
        return torch.from_numpy(order.astype(np.int64, copy=False))
    return torch.argsort(keys, stable=True)


class _SampledDot(torch.autograd.Function):
    r"""``out[b, n] = u[b] . W[idx[b, n]]`` without materialising ``W[idx]``.

    The forward pass is a sampled dense-dense product (SDDMM) on a CSR pattern with ``N``
    entries per row. The backward pass is two sparse-dense products, ``G W`` for the rows and
    ``G^T u`` for the table, each one weighted ``embedding_bag`` (one bag per row of ``G`` or of
    ``G^T``; no zero-filled or copied result as with torch's CSR ``@``); ``G^T``'s row order
    comes from a radix sort of the sampled item ids (:func:`_argsort_small_keys`). Memory is
    ``O(B N)`` instead of ``O(B N d)``. Under ``create_graph=True`` the backward is computed with
    differentiable gathers instead, so second derivatives are exact.

    With ``with_half_norm=True`` it also returns :math:`\frac12\lVert W\rVert^2` (see
    :func:`_half_squared_norm_value`), whose gradient ``grad_norm * W`` is added in place to the
    table's gradient: the table's whole gradient is then one new tensor.
    """

    @staticmethod
    def forward(ctx, u: Tensor, weight: Tensor, idx: Tensor, with_half_norm: bool = False):
        b, n = idx.shape
        crow = torch.arange(0, b * n + 1, n, dtype=torch.long, device=idx.device)
        pattern = torch.sparse_csr_tensor(crow, idx.reshape(-1), torch.zeros(b * n, dtype=u.dtype, device=u.device),
                                          size=(b, weight.size(0)))
        out = torch.sparse.sampled_addmm(pattern, u, weight.t(), beta=0.0).values().view(b, n)
        ctx.save_for_backward(u, weight, idx)
        ctx.with_half_norm = with_half_norm
        if with_half_norm:
            return out, _half_squared_norm_value(weight)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor, grad_norm: Optional[Tensor] = None):
        u, weight, idx = ctx.saved_tensors
        b, n = idx.shape
        flat = idx.reshape(-1)
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward (gathers)
            rows = weight.index_select(0, flat).view(b, n, -1)
            grad_u = (grad.unsqueeze(-1) * rows).sum(1) if ctx.needs_input_grad[0] else None
            grad_w = None
            if ctx.needs_input_grad[1]:
                per_entry = (grad.unsqueeze(-1) * u.unsqueeze(1)).reshape(b * n, -1)
                grad_w = torch.zeros_like(weight).index_add(0, flat, per_entry)
                if ctx.with_half_norm:
                    grad_w = grad_w + grad_norm * weight
            return grad_u, grad_w, None, None
        g = grad.reshape(-1).contiguous()
        grad_u = grad_w = None
        if ctx.needs_input_grad[0]:
            crow = torch.arange(0, b * n + 1, n, dtype=torch.long, device=idx.device)
            grad_u = F.embedding_bag(flat, weight.detach(), crow, mode="sum", per_sample_weights=g,
                                     include_last_offset=True)
        if ctx.needs_input_grad[1]:
            order = _argsort_small_keys(flat, weight.size(0)).to(idx.device)
            crow_t = torch.zeros(weight.size(0) + 1, dtype=torch.long, device=idx.device)
            torch.cumsum(torch.bincount(flat, minlength=weight.size(0)), 0, out=crow_t[1:])
            grad_w = F.embedding_bag(torch.div(order, n, rounding_mode="floor"), u.detach(), crow_t,
                                     mode="sum", per_sample_weights=g.index_select(0, order),
                                     include_last_offset=True)
            if ctx.with_half_norm:  # + grad_norm * W, in place: no second table
                grad_w.addcmul_(weight.detach(), grad_norm)
        return grad_u, grad_w, None, None


def sampled_dot(u: Tensor, weight: Tensor, idx: Tensor, *, with_half_norm: bool = False):
    r"""Scores ``u[b] . weight[idx[b, n]]`` for ``idx`` of shape ``[B, N]``; with
    ``with_half_norm=True`` the pair ``(scores, 0.5 * weight.pow(2).sum())``, the two computed by
    one autograd node so that ``weight`` gets one gradient tensor.

    Uses the sparse kernels of :class:`_SampledDot` in eager mode (several times faster than
    gathering a ``[B, N, d]`` tensor on CPU), and a plain gather + batched product under
    :func:`torch.compile`, for dtypes the sparse kernels do not cover, and when ``N`` exceeds
    the number of rows of ``weight``.
    """
    # The sparse kernels need at most one stored entry per cell: N <= number of rows of weight.
    if torch.compiler.is_compiling() or u.dtype not in (torch.float32, torch.float64) \
            or weight.dtype != u.dtype or idx.size(-1) > weight.size(0):
        out = torch.bmm(F.embedding(idx, weight), u.unsqueeze(-1)).squeeze(-1)
        return (out, half_squared_norm(weight)) if with_half_norm else out
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return _SampledDot.apply(u, weight, idx.long(), bool(with_half_norm))


def _half_squared_norm_value(weight: Tensor) -> Tensor:
    """``0.5 * weight.pow(2).sum()`` from the row norms: one pass, nothing of ``weight``'s size."""
    rows = weight.reshape(-1, weight.size(-1)) if weight.dim() > 0 else weight.reshape(1, 1)
    return 0.5 * torch.linalg.vector_norm(rows, dim=1).square().sum()


class _HalfSquaredNorm(torch.autograd.Function):
    r"""``0.5 * weight.pow(2).sum()`` in one streaming pass, without a ``weight``-sized temporary.

    The forward pass reduces every row to its Euclidean norm (:func:`torch.linalg.vector_norm`
    over the last dimension; no ``weight * weight`` table) and sums the squares of the row
    norms: as accurate as ``pow(2).sum()`` (a flat ``torch.dot`` or whole-table norm would
    accumulate tens of millions of terms in single precision). The backward pass returns
    ``grad * weight``, the table's only new tensor, which autograd adds to the other gradients
    of the table. That backward is made of differentiable operations, so second derivatives
    (``create_graph=True``) are exact.
    """

    @staticmethod
    def forward(ctx, weight: Tensor) -> Tensor:
        ctx.save_for_backward(weight)
        return _half_squared_norm_value(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (weight,) = ctx.saved_tensors
        return grad * weight


def half_squared_norm(weight: Tensor) -> Tensor:
    r"""``0.5 * weight.pow(2).sum()`` (the L2 penalty of a table) through
    :class:`_HalfSquaredNorm`, which allocates nothing of the table's size in the forward pass
    and only the gradient itself in the backward pass. Under :func:`torch.compile` the plain
    expression is used (the compiler fuses it)."""
    if torch.compiler.is_compiling() or not weight.is_floating_point():
        return 0.5 * weight.pow(2).sum()
    return _HalfSquaredNorm.apply(weight)


class _RowsWithHalfSquaredNorm(torch.autograd.Function):
    r"""``(weight[idx], 0.5 * weight.pow(2).sum())`` as one autograd node.

    An embedding lookup's backward pass builds a zero-filled table and adds the rows' gradients
    to it; the L2 term's builds ``grad_norm * weight``. Here the backward pass builds the second
    and adds the rows' gradients to it in place (``index_add_``): one new tensor of the
    table's size, the gradient itself. Under ``create_graph=True`` the same sum is taken with
    differentiable operations, so second derivatives are exact.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, idx: Tensor):
        ctx.save_for_backward(weight, idx)
        rows = weight.index_select(0, idx.reshape(-1)).view(*idx.shape, *weight.shape[1:])
        return rows, _half_squared_norm_value(weight)

    @staticmethod
    def backward(ctx, grad_rows: Tensor, grad_norm: Tensor):
        weight, idx = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        flat = idx.reshape(-1)
        grad_rows = grad_rows.reshape(flat.numel(), *weight.shape[1:])
        if torch.is_grad_enabled():  # create_graph=True: differentiable
            return (grad_norm * weight).index_add(0, flat, grad_rows), None
        grad_w = grad_norm * weight.detach()
        grad_w.index_add_(0, flat, grad_rows)
        return grad_w, None


def rows_with_half_squared_norm(weight: Tensor, idx: Tensor) -> Tuple[Tensor, Tensor]:
    r"""``(F.embedding(idx, weight), 0.5 * weight.pow(2).sum())`` with one gradient tensor for
    ``weight`` (:class:`_RowsWithHalfSquaredNorm`); the plain expressions under
    :func:`torch.compile`."""
    if torch.compiler.is_compiling() or not weight.is_floating_point():
        return F.embedding(idx, weight), 0.5 * weight.pow(2).sum()
    return _RowsWithHalfSquaredNorm.apply(weight, idx.long())


def _row_of_entries(indptr: np.ndarray) -> np.ndarray:
    """The row of every stored entry of a CSR matrix (``np.repeat(arange, counts)``, which
    copies element by element, without the copies: a count of row starts and a running sum)."""
    nnz = int(indptr[-1])
    return np.cumsum(np.bincount(indptr[1:-1], minlength=nnz + 1)[:nnz])


def _top_k_of_rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, row_of: np.ndarray,
                   first_row: int, k: int, out_index: np.ndarray, out_value: np.ndarray,
                   labels: Optional[np.ndarray] = None) -> None:
    r"""Row-wise top-``k`` of a CSR matrix's positive ``values`` (columns in any order within a
    row), ties to the lower column, written into rows ``first_row + r`` of ``out_index`` /
    ``out_value`` (left as they are past a row's positive entries). ``row_of`` gives the row of
    every entry (:func:`_row_of_entries`); ``labels``, if given, the column id of every stored
    column index (ties and the output use the ids).

    No row is sorted whole. A row with more than ``k`` entries is cut into ``k`` runs of
    consecutive entries; the smallest of the ``k`` run maxima, :math:`t`, is a lower bound of
    the row's ``k``-th largest value (the ``k`` maxima are ``k`` distinct entries ``>= t``), so
    every entry of the top-``k``, ties included, is ``>= t``. Only the entries ``>= t`` (for
    distinct values in random order about :math:`k (\ln k + 0.6)` per row whatever its length;
    more where many tie) are sorted, by row, value descending and column ascending. Time is
    linear in the entries plus the sort of the kept ones.
    """
    counts = np.diff(indptr)
    num_rows = counts.size
    threshold = np.full(num_rows, -np.inf)
    long_rows = np.flatnonzero(counts > k)
    if long_rows.size:
        # k runs per long row, plus the row's end so that no run reaches into the next row
        cut = (np.arange(k + 1, dtype=np.int64) * counts[long_rows, None]) // k + indptr[long_rows, None]
        padded = np.append(values, -np.inf)  # reduceat needs indices < len: the row end may be nnz
        maxima = np.maximum.reduceat(padded, cut.ravel()).reshape(-1, k + 1)[:, :k]
        threshold[long_rows] = maxima.min(axis=1)
    keep = values >= threshold[row_of]
    keep &= values > 0  # removed diagonal entries (0)
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return
    row = row_of[kept]
    col, val = indices[kept].astype(np.int64), values[kept]
    if labels is not None:
        col = labels[col]
    order = np.lexsort((col, -val, row))
    row, col, val = row[order], col[order], val[order]
    per_row = np.bincount(row, minlength=num_rows)
    rank = np.arange(row.size, dtype=np.int64) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    top = rank < k
    out_index[row[top] + first_row, rank[top]] = col[top]
    out_value[row[top] + first_row, rank[top]] = val[top]


def _co_occurrence_rows(at: sp.csr_matrix, a: sp.csr_matrix, start: int,
                        stop: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Rows ``start:stop`` of :math:`\mathbf{A}^{\top}\mathbf{A}` as CSR arrays ``(indptr,
    indices, data)``, columns unsorted within a row.

    The chunk's multiply-adds (:math:`\sum_{i} g_i`, counted here from the two operands) and
    its rows times the columns both bound its number of entries, so the product is computed in
    one pass by SciPy's kernel into arrays of the smaller size (pages never written are never
    resident), instead of ``@``, which first counts the entries in a symbolic pass about half
    as long as the product itself. Where that kernel is not available, ``@``.
    """
    if _csr_matmat is not None and at.indices.dtype == a.indices.dtype == at.indptr.dtype == a.indptr.dtype \
            and at.data.dtype == a.data.dtype:
        idx = a.indices.dtype
        bound = min(int(np.diff(a.indptr)[at.indices[at.indptr[start]:at.indptr[stop]]].sum()),
                    (stop - start) * a.shape[1])
        indptr = np.empty(stop - start + 1, dtype=idx)
        indices = np.empty(bound, dtype=idx)
        data = np.empty(bound, dtype=a.dtype)
        # the kernel reads row i of at from at.indptr[i] on, so a view of the chunk's pointers serves
        try:
            _csr_matmat(stop - start, a.shape[1], at.indptr[start:stop + 1], at.indices, at.data,
                        a.indptr, a.indices, a.data, indptr, indices, data)
        except TypeError:  # pragma: no cover - a SciPy whose kernel takes other arguments
            pass
        else:
            nnz = int(indptr[-1])
            return indptr, indices[:nnz], data[:nnz]
    block = (at[start:stop] @ a).tocsr()
    return block.indptr, block.indices, block.data


def item_item_constraint(train_edge_index: Tensor, num_users: int, num_items: int,
                         num_neighbors: int = 10, *, keep_diagonal: bool = True,
                         max_chunk_elements: int = 1 << 20) -> Tuple[Tensor, Tensor]:
    r"""Top-:math:`K` item--item constraint neighbours of UltraGCN.

    With the binary interaction matrix :math:`\mathbf{A} \in \{0,1\}^{|U| \times |I|}`, the
    item co-occurrence graph is :math:`\mathbf{G} = \mathbf{A}^{\top}\mathbf{A}` and
    :math:`g_i = \sum_k G_{i,k}`. Each row keeps the :math:`K` largest weights

    .. math::
        \omega_{i,j} = G_{i,j} \, \frac{\sqrt{g_i + 1}}{g_i} \, \frac{1}{\sqrt{g_j + 1}}.

    This is the weighting used by the authors' code (``get_ii_constraint_mat``); the diagonal
    :math:`G_{i,i} = d_i` is kept there, hence ``keep_diagonal=True`` by default.

    Only co-occurring items can be neighbours, so :math:`\mathbf{G}` is computed sparse, never
    dense over all items: rows are taken in chunks whose sparse product
    :math:`\mathbf{A}_{:,\text{chunk}}^{\top}\mathbf{A}` does at most about
    ``max_chunk_elements`` multiply-adds (row :math:`i` costs :math:`g_i`, so the total is
    :math:`\sum_u d_u^2`), and each row's top-:math:`K` is taken from its stored entries
    without sorting the row (:func:`_top_k_of_rows`: a lower bound of the :math:`K`-th weight
    from :math:`K` runs of the row, then a sort of the few entries above it). Time is
    :math:`O(\sum_u d_u^2)`; memory is :math:`O(\text{max\_chunk\_elements} + |I| K + E)`.
    The default chunk keeps a chunk's arrays (about 12 bytes per multiply-add) in the cache;
    chunks of :math:`2^{24}` ran several times slower on one thread.

    Ties: items of equal weight are ranked by ascending item id. The weights are exactly those
    of a dense top-:math:`K` over :math:`\boldsymbol{\omega}_{i,:}`, and so are the neighbours
    wherever no two items tie at the :math:`K`-th weight.

    Args:
        train_edge_index (torch.Tensor): Training pairs ``[2, E]`` (user, item).
        num_users (int): Number of users.
        num_items (int): Number of items.
        num_neighbors (int, optional): :math:`K`. (default: :obj:`10`)
        keep_diagonal (bool, optional): Keep :math:`G_{i,i}` (the reference behaviour).
            (default: :obj:`True`)
        max_chunk_elements (int, optional): Bound on the multiply-adds (and so on the stored
            co-occurrences) of one row chunk; a row costing more is a chunk of its own.
            (default: :obj:`2**20`)

    Returns:
        ``(neighbors, weights)``: ``LongTensor[num_items, K]`` and ``FloatTensor[num_items, K]``.
        Rows with fewer than :math:`K` co-occurring items are padded with the item itself and
        weight ``0`` (no effect on the loss).
    """
    where = "item_item_constraint"
    if num_neighbors < 1:
        raise ValueError(f"{where}: num_neighbors must be >= 1, got {num_neighbors}")
    if max_chunk_elements < 1:
        raise ValueError(f"{where}: max_chunk_elements must be >= 1, got {max_chunk_elements}")
    k = min(num_neighbors, num_items)
    ei = train_edge_index.detach().cpu().long()
    row, col = ei[0].numpy(), ei[1].numpy()
    a = sp.csr_matrix((np.ones(row.size, dtype=np.int32), (row, col)), shape=(num_users, num_items))
    a.sum_duplicates()
    a.data[:] = 1  # int32: co-occurrence counts are exact and half the bytes of float64
    at = a.T.tocsr()
    # g_i = sum_k G_ik = sum_u A_ui * d_u  (also the cost of row i of A^T A)
    user_deg = np.asarray(a.sum(axis=1), dtype=np.float64).ravel()
    g = at @ user_deg
    cost = g.copy()
    if not keep_diagonal:
        g = g - np.asarray(a.sum(axis=0), dtype=np.float64).ravel()  # G_ii = d_i
    with np.errstate(divide="ignore"):
        left = np.where(g > 0, np.sqrt(g + 1.0) / np.where(g > 0, g, 1.0), 0.0)
    right = 1.0 / np.sqrt(g + 1.0)

    # The product's running sums are indexed by item, and it reads one user's row per
    # interaction: numbering items and users by descending degree for it keeps the sums of the
    # popular items and the rows of the active users, which it touches most, together in the
    # cache. ``label`` maps the item numbers back to item ids.
    idx = a.indices.dtype
    label = np.argsort(-np.diff(at.indptr), kind="stable")
    number = np.empty(num_items, dtype=idx)
    number[label] = np.arange(num_items, dtype=idx)
    user_label = np.argsort(-np.diff(a.indptr), kind="stable")
    user_number = np.empty(num_users, dtype=idx)
    user_number[user_label] = np.arange(num_users, dtype=idx)
    b = sp.csr_matrix((a.data, number[a.indices], a.indptr), shape=a.shape)[user_label]
    at = sp.csr_matrix((at.data, user_number[at.indices], at.indptr), shape=at.shape)
    del a, user_label, user_number
    right_by_number = right[label]

    neighbors = torch.arange(num_items, dtype=torch.long).unsqueeze(1).repeat(1, k)  # padding: self
    weights = torch.zeros(num_items, k, dtype=torch.float32)
    nb_np, w_np = neighbors.numpy(), weights.numpy()
    # chunk boundaries: consecutive rows whose summed cost stays within max_chunk_elements
    cum = np.concatenate([[0], np.cumsum(cost.astype(np.int64))])  # exact integers
    del g, cost
    start = 0
    while start < num_items:
        stop = int(np.searchsorted(cum, cum[start] + max_chunk_elements, side="right")) - 1
        stop = min(max(stop, start + 1), num_items)
        # sparse co-occurrence rows of the chunk (columns unsorted); their cost bounds their entries
        indptr, indices, counts = _co_occurrence_rows(at, b, start, stop)
        row_of = _row_of_entries(indptr)
        omega = counts * left[start:stop][row_of] * right_by_number[indices]  # stored G_ij > 0 only
        if not keep_diagonal:
            omega[indices == number[start:stop][row_of]] = 0.0
        _top_k_of_rows(indptr, indices, omega, row_of, start, k, nb_np, w_np, label)
        start = stop
    return neighbors, weights


@register_recommender("ultragcn")
class UltraGCN(Recommender):
    r"""The UltraGCN model from the `"UltraGCN: Ultra Simplification of Graph Convolutional
    Networks for Recommendation" <https://arxiv.org/abs/2110.15114>`_ paper (Mao et al., CIKM 2021).

    UltraGCN skips message passing. It learns plain user and item embeddings with a loss that
    forces them towards the fixed point of an infinite-layer LightGCN: every positive and every
    sampled negative pair :math:`(u, i)` enters a binary cross-entropy weighted by the degree
    constraint :math:`\beta_{u,i}`, plus a constraint on the top-:math:`K` item--item
    co-occurrence neighbours and an L2 term:

    .. math::
        \beta_{u,i} &= \frac{\sqrt{d_u + 1}}{d_u} \frac{1}{\sqrt{d_i + 1}}, \qquad
        \hat{y}_{u,i} = \mathbf{e}_u^{\top} \mathbf{e}_i

        \mathcal{L}_O &= -\sum_{(u,i) \in N^+} (w_1 + w_2 \beta_{u,i}) \log\sigma(\hat{y}_{u,i})
        - \nu \sum_{(u,i) \in N^+} \frac{1}{|N_{u,i}^-|} \sum_{j \in N_{u,i}^-}
        (w_3 + w_4 \beta_{u,j}) \log\sigma(-\hat{y}_{u,j})

        \mathcal{L}_I &= -\sum_{(u,i) \in N^+} \sum_{j \in S(i)} \omega_{i,j}
        \log\sigma(\hat{y}_{u,j})

        \mathcal{L} &= \mathcal{L}_O + \lambda \mathcal{L}_I + \frac{\gamma}{2} \lVert \Theta \rVert_2^2

    where :math:`N^-_{u,i}` are ``num_negatives`` items drawn uniformly, :math:`\nu` is
    ``negative_weight`` and :math:`S(i)`, :math:`\omega_{i,j}` come from
    :func:`item_item_constraint`. As in the authors' code, the loss is summed over the batch
    and the L2 term covers both full embedding tables.

    Call :meth:`set_graph` with the training pairs before :meth:`loss` or :meth:`recommend`
    (which, with scoring and seen-item masking, comes from :class:`Recommender`).
    The graph-derived buffers (degree weights, item--item neighbours, training CSR) are part of
    the state dict and are restored by :meth:`load_state_dict`.

    .. note::
        Memory: the item--item constraint is computed in row chunks and only the top-:math:`K`
        entries per item are stored (:math:`O(|I| K)`), never the :math:`|I| \times |I|`
        co-occurrence matrix. One training step holds ``B * num_negatives`` scores.

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        embedding_dim (int, optional): Embedding size. (default: :obj:`64`)
        w1 (float, optional): Constant weight of positive pairs. (default: :obj:`1e-7`)
        w2 (float, optional): Weight of :math:`\beta` on positive pairs. (default: :obj:`1.0`)
        w3 (float, optional): Constant weight of negative pairs. (default: :obj:`1e-7`)
        w4 (float, optional): Weight of :math:`\beta` on negative pairs. (default: :obj:`1.0`)
        num_negatives (int, optional): Negatives sampled per positive pair. (default: :obj:`200`)
        negative_weight (float, optional): :math:`\nu`. (default: :obj:`200.0`)
        gamma (float, optional): L2 coefficient :math:`\gamma`. (default: :obj:`1e-4`)
        lambda_ (float, optional): Item--item loss coefficient :math:`\lambda`.
            (default: :obj:`1e-3`)
        num_neighbors (int, optional): :math:`K` item--item neighbours. (default: :obj:`10`)
        init_std (float, optional): Standard deviation of the normal initialisation.
            (default: :obj:`1e-3`)
        sift_positives (bool, optional): Draw negatives uniformly among the items the user
            has *not* interacted with (the authors' ``sampling_sift_pos``; used on
            Amazon-Electronics). (default: :obj:`False`)

    Shapes:
        - **set_graph:** train pairs :math:`(2, E)`
        - **loss:** users :math:`(B)`, pos_items :math:`(B)`, neg_items :math:`(B, N)` → scalar
        - **forward:** users :math:`(B)`, items :math:`(B)` or :math:`(B, N)` → same as items
        - **score_all:** users :math:`(B)` → :math:`(B, |I|)`
        - **recommend:** users :math:`(B)` → :math:`(B, k)`
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, *,
                 w1: float = 1e-7, w2: float = 1.0, w3: float = 1e-7, w4: float = 1.0,
                 num_negatives: int = 200, negative_weight: float = 200.0, gamma: float = 1e-4,
                 lambda_: float = 1e-3, num_neighbors: int = 10, init_std: float = 1e-3,
                 sift_positives: bool = False):
        for name, value in (("num_users", num_users), ("num_items", num_items),
                            ("embedding_dim", embedding_dim), ("num_negatives", num_negatives),
                            ("num_neighbors", num_neighbors)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"UltraGCN: '{name}' must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"UltraGCN: '{name}' must be >= 1, got {value}")
        for name, value in (("w1", w1), ("w2", w2), ("w3", w3), ("w4", w4),
                            ("negative_weight", negative_weight), ("gamma", gamma),
                            ("lambda_", lambda_), ("init_std", init_std)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"UltraGCN: '{name}' must be a finite number >= 0, got {value!r}")
        super().__init__(num_users, num_items)
        self.embedding_dim = embedding_dim
        self.w1, self.w2, self.w3, self.w4 = float(w1), float(w2), float(w3), float(w4)
        self.num_negatives = num_negatives
        self.negative_weight = float(negative_weight)
        self.gamma = float(gamma)
        self.lambda_ = float(lambda_)
        self.num_neighbors = num_neighbors
        self.init_std = float(init_std)
        self.sift_positives = bool(sift_positives)

        self.user_embedding = torch.nn.Embedding(num_users, embedding_dim)
        self.item_embedding = torch.nn.Embedding(num_items, embedding_dim)
        self._seen_cache: Optional[Tensor] = None  # dense seen-item bitmap (small graphs)
        self.register_buffer("beta_user", torch.zeros(0))
        self.register_buffer("beta_item", torch.zeros(0))
        self.register_buffer("ii_neighbors", torch.zeros(0, num_neighbors, dtype=torch.long))
        self.register_buffer("ii_weights", torch.zeros(0, num_neighbors))
        self.register_buffer("train_ptr", torch.zeros(0, dtype=torch.long))
        self.register_buffer("train_col", torch.zeros(0, dtype=torch.long))
        self.reset_parameters()

    # ------------------------------------------------------------------ setup
    def reset_parameters(self) -> None:
        r"""Re-draws both embedding tables from :math:`\mathcal{N}(0, \text{init\_std}^2)`."""
        torch.nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        torch.nn.init.normal_(self.item_embedding.weight, std=self.init_std)

    @property
    def has_graph(self) -> bool:
        return self.beta_user.numel() == self.num_users and self.ii_neighbors.size(0) == self.num_items

    @torch.no_grad()
    def set_graph(self, train_edge_index: Tensor, *, keep_diagonal: bool = True,
                  max_chunk_elements: int = 1 << 20) -> "UltraGCN":
        r"""Pre-computes everything UltraGCN needs from the training pairs.

        Degree weights :math:`\beta`, the top-:math:`K` item--item constraint (sparse and
        chunked, see :func:`item_item_constraint`) and a CSR of the training items per user
        (used to mask seen items and, with ``sift_positives``, to reject positives).

        Args:
            train_edge_index (torch.Tensor): ``[2, E]`` (user, item) integer pairs (a COO
                tensor or a PyG ``EdgeIndex``), or a ``torch.sparse`` ``[num_users, num_items]``
                matrix (COO, CSR or CSC) whose stored entries are the interactions (values not
                used).
            keep_diagonal (bool, optional): Keep :math:`G_{i,i}` in the item--item graph, as the
                authors' code does. (default: :obj:`True`)
            max_chunk_elements (int, optional): Memory bound of the item--item computation
                (multiply-adds, and so stored co-occurrences, per row chunk). (default: :obj:`2**20`)

        Returns the model. The degree and item--item weights take the embeddings' dtype.
        """
        where = "UltraGCN.set_graph"
        train_edge_index = as_interaction_pairs(train_edge_index, self.num_users, self.num_items, where)
        if train_edge_index.size(1) == 0:
            raise ValueError(f"{where}: the training graph is empty")
        device, dtype = self.user_embedding.weight.device, self.user_embedding.weight.dtype
        ei = train_edge_index.detach().cpu().long()
        key = torch.unique(ei[0] * self.num_items + ei[1])  # sorted, de-duplicated
        users, items = key // self.num_items, key % self.num_items

        du = torch.bincount(users, minlength=self.num_users).double()
        di = torch.bincount(items, minlength=self.num_items).double()
        beta_user = torch.where(du > 0, (du + 1).sqrt() / du.clamp(min=1), torch.zeros_like(du))
        beta_item = 1.0 / (di + 1).sqrt()

        nb, w = item_item_constraint(torch.stack([users, items]), self.num_users, self.num_items,
                                     self.num_neighbors, keep_diagonal=keep_diagonal,
                                     max_chunk_elements=max_chunk_elements)
        if nb.size(1) < self.num_neighbors:  # fewer items than K
            pad = self.num_neighbors - nb.size(1)
            nb = torch.cat([nb, nb[:, :1].expand(-1, pad)], dim=1)
            w = torch.cat([w, torch.zeros(w.size(0), pad)], dim=1)
        ptr = torch.zeros(self.num_users + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(du.long(), 0)

        self.beta_user = beta_user.to(device=device, dtype=dtype)
        self.beta_item = beta_item.to(device=device, dtype=dtype)
        self.ii_neighbors = nb.to(device)
        self.ii_weights = w.to(device=device, dtype=dtype)
        self.train_ptr = ptr.to(device)
        self.train_col = items.to(device)
        self._seen_cache = None
        self._seen = None
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Graph buffers change size with the graph: adopt the stored shape before copying.
        self._seen_cache = None
        self._seen = None
        for name in _GRAPH_BUFFERS:
            value = state_dict.get(prefix + name)
            if isinstance(value, Tensor):
                current = getattr(self, name)
                setattr(self, name, torch.empty(value.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _require_graph(self, where: str) -> None:
        if not self.has_graph:
            raise RuntimeError(f"UltraGCN.{where}: call set_graph(train_edge_index) first")

    # --------------------------------------------------------------- sampling
    def _seen_pairs(self) -> Optional[Tensor]:
        """The training pairs ``[2, E]`` from the stored CSR (``None`` before :meth:`set_graph`)."""
        if not self.has_graph:
            return None
        counts = self.train_ptr[1:] - self.train_ptr[:-1]
        rows = torch.repeat_interleave(torch.arange(self.num_users, device=counts.device), counts,
                                       output_size=self.train_col.numel())
        return torch.stack([rows, self.train_col])

    def _is_seen(self, users: Tensor, items: Tensor) -> Tensor:
        """Boolean mask: ``items[b, n]`` is a training item of ``users[b]``.

        Up to ``_DENSE_SEEN_LIMIT`` user x item cells a dense bitmap answers (about 11x faster
        than the binary search of :class:`~graphkit.utils.PairIndex` for 1024 x 200 queries
        on an Electronics-sized graph); above it, the shared :meth:`PairIndex.contains`.
        """
        device = self.train_col.device
        if self.num_users * self.num_items > _DENSE_SEEN_LIMIT:
            return self._seen_index("sample_negatives").contains(users, items)
        if self._seen_cache is None or self._seen_cache.device != device:
            pairs = self._seen_pairs()
            dense = torch.zeros(self.num_users, self.num_items, dtype=torch.bool, device=device)
            dense[pairs[0], pairs[1]] = True
            self._seen_cache = dense
        return self._seen_cache[users.unsqueeze(1).expand_as(items), items]

    def sample_negatives(self, num: int, generator: Optional[torch.Generator] = None,
                         users: Optional[Tensor] = None) -> Tensor:
        r"""Draws ``num_negatives`` items per positive pair, uniformly, on the model's device.

        Args:
            num (int): Number of positive pairs in the batch.
            generator (torch.Generator, optional): Random generator on the model's device.
            users (torch.Tensor, optional): The batch users ``[num]``. Required when
                ``sift_positives=True``: the user's training items are then redrawn (rejection
                sampling, i.e. uniform over the items the user has not seen).

        Returns:
            ``LongTensor[num, num_negatives]``.
        """
        device = self.user_embedding.weight.device
        neg = torch.randint(0, self.num_items, (num, self.num_negatives), device=device,
                            generator=generator)
        if self.sift_positives:
            if users is None:
                raise ValueError("UltraGCN.sample_negatives: sift_positives=True needs 'users'")
            self._require_graph("sample_negatives")
            users = users.to(device)
            seen = self._is_seen(users, neg)
            for _ in range(1000):
                n_bad = int(seen.sum())
                if n_bad == 0:
                    break
                neg[seen] = torch.randint(0, self.num_items, (n_bad,), device=device,
                                          generator=generator)
                seen = self._is_seen(users, neg)
            else:
                raise RuntimeError("UltraGCN.sample_negatives: a user has interacted with (almost) "
                                   "every item; cannot sift positives")
        return neg

    # ------------------------------------------------------------------ model
    def forward(self, users: Tensor, items: Optional[Tensor] = None) -> Tensor:
        r"""Scores :math:`\mathbf{e}_u^{\top}\mathbf{e}_i` for pairs.

        Either ``forward(users, items)`` with ``items`` of shape ``[B]`` or ``[B, N]`` (``N``
        items per user), or ``forward(edge_label_index)`` with ``[2, E]`` (user, item) pairs.
        """
        if items is None:
            pairs = as_interaction_pairs(users, self.num_users, self.num_items, "UltraGCN.forward")
            users, items = pairs[0], pairs[1]
        u = self.user_embedding(users)
        i = self.item_embedding(items)
        if items.dim() == users.dim() + 1:
            return torch.bmm(i, u.unsqueeze(-1)).squeeze(-1)
        return (u * i).sum(-1)

    def loss(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Tensor:
        r"""The full UltraGCN objective :math:`\mathcal{L}_O + \lambda \mathcal{L}_I +
        \frac{\gamma}{2}\lVert\Theta\rVert^2`, summed over the batch (as the authors do).

        Args:
            users (torch.Tensor): ``[B]`` user ids.
            pos_items (torch.Tensor): ``[B]`` positive item ids.
            neg_items (torch.Tensor): ``[B, N]`` sampled negatives.

        Ids out of range raise a :class:`ValueError` naming the argument and the id.
        """
        self._require_graph("loss")
        check_triples(users, pos_items, neg_items, self.num_users, self.num_items, "UltraGCN.loss",
                      candidates=False)
        # Each table gets one gradient tensor: the user rows and the users' L2 term are one
        # autograd node, and so are the positive, negative and neighbour scores and the items' L2
        # term (one sampled product over [pos | neg | nb]).
        u, norm_u = rows_with_half_squared_norm(self.user_embedding.weight, users)
        nb = self.ii_neighbors[pos_items]                     # [B, K]
        n_neg = neg_items.size(1)
        scores, norm_i = sampled_dot(u, self.item_embedding.weight,
                                     torch.cat([pos_items.reshape(-1, 1), neg_items, nb], 1), with_half_norm=True)
        pos_scores, neg_scores, nb_scores = scores[:, 0], scores[:, 1:1 + n_neg], scores[:, 1 + n_neg:]

        beta_u = self.beta_user[users]
        pos_w = self.w1 + self.w2 * beta_u * self.beta_item[pos_items]
        neg_w = self.w3 + self.w4 * beta_u.unsqueeze(1) * self.beta_item[neg_items]
        # BCE-with-logits: label 1 -> softplus(-s), label 0 -> softplus(s)
        loss_o = (pos_w * F.softplus(-pos_scores)).sum() \
            + self.negative_weight * (neg_w * F.softplus(neg_scores)).mean(-1).sum()

        loss_i = -(self.ii_weights[pos_items] * F.logsigmoid(nb_scores)).sum()
        return loss_o + self.lambda_ * loss_i + self.gamma * (norm_u + norm_i)

    @torch.no_grad()
    def score_all(self, users: Tensor) -> Tensor:
        """Scores of ``users`` against every item, ``[B, num_items]``."""
        return self.user_embedding(users) @ self.item_embedding.weight.t()

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_users}, {self.num_items}, "
                f"embedding_dim={self.embedding_dim}, num_negatives={self.num_negatives}, "
                f"num_neighbors={self.num_neighbors})")
