r"""LightGCN for implicit-feedback recommendation, and the sparse kernels behind it."""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Embedding

from graphkit.nn.models.mf import MF  # noqa: F401  (MF lived here; old imports keep working)
from graphkit.nn.models.recommender import (
    _EmbeddingRecommender,
    as_interaction_pairs,
    check_ids,
    check_triples,
    hardest_candidates,
    register_recommender,
)
from graphkit.utils.sparse import csr_spmm, symmetric_spmm


def bipartite_normalized_adjacency(edge_index: Tensor, num_users: int, num_items: int,
                                   dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The symmetric-normalised adjacency of the user–item graph as a sparse CSR tensor.

    .. math::
        \mathbf{A} = \begin{pmatrix} \mathbf{0} & \mathbf{R} \\ \mathbf{R}^{\top} & \mathbf{0}
        \end{pmatrix}, \qquad
        \hat{\mathbf{A}} = \mathbf{D}^{-1/2} \mathbf{A} \mathbf{D}^{-1/2}

    with users indexed ``0 .. U-1`` and items ``U .. U+I-1``. Built directly from the
    ``E`` interactions in :math:`O(E \log E)`; no dense ``(U+I)^2`` matrix is ever formed.

    Args:
        edge_index (torch.Tensor): ``[2, E]`` ``(user, item)`` pairs (duplicates are merged).
        num_users (int): number of users ``U``.
        num_items (int): number of items ``I``.
        dtype (torch.dtype): floating-point type of the values; the normalisation is computed
            in it. (default: :obj:`torch.float32`)
    """
    where = "bipartite_normalized_adjacency"
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{where}: edge_index must be [2, E] (user, item) pairs, got {tuple(edge_index.shape)}")
    check_ids("edge_index[0] (users)", edge_index[0], num_users, where, "user")
    check_ids("edge_index[1] (items)", edge_index[1], num_items, where, "item")
    user, item = edge_index.long()
    key = torch.unique(user * num_items + item)
    user, item = key // num_items, key % num_items
    n = num_users + num_items
    deg_u = torch.bincount(user, minlength=num_users).to(dtype)
    deg_i = torch.bincount(item, minlength=num_items).to(dtype)
    w = deg_u[user].rsqrt() * deg_i[item].rsqrt()
    row = torch.cat([user, item + num_users])
    col = torch.cat([item + num_users, user])
    with warnings.catch_warnings():  # torch's "sparse CSR is beta" notice
        warnings.simplefilter("ignore", UserWarning)
        adj = torch.sparse_coo_tensor(torch.stack([row, col]), torch.cat([w, w]), (n, n),
                                      check_invariants=False)
        return adj.coalesce().to_sparse_csr()


def _row_slice(adj: Tensor, rows: Tensor) -> Tensor:
    r"""The rows ``rows`` of a CSR matrix as a ``[len(rows), N]`` CSR matrix (a gather of
    their non-zeros; no pass over the other rows)."""
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    start, count = crow[rows], crow[rows + 1] - crow[rows]
    sub_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(count, 0, out=sub_crow[1:])
    nnz = int(sub_crow[-1])
    nz = torch.repeat_interleave(start - sub_crow[:-1], count, output_size=nnz)
    nz += torch.arange(nnz, dtype=nz.dtype, device=nz.device)
    return _csr(sub_crow, col.index_select(0, nz), val.index_select(0, nz), (rows.numel(), adj.size(1)))


def _columns_matmul(adj: Tensor, rows: Tensor, g: Tensor) -> Tensor:
    r"""``adj[:, rows] @ g`` for a CSR ``adj`` ``[M, N]`` and ``g`` ``[len(rows), F]``.

    No column slice is built: every non-zero ``(i, j)`` points into ``g`` extended by one zero
    row, at ``j``'s position in ``rows`` or at the zero row when ``j`` is not in ``rows``. The
    product is then one weighted ``embedding_bag`` over a table of ``len(rows) + 1`` rows, which
    stays in cache; compacting the non-zeros first (a mask, a prefix sum and a gather over all
    of them) costs more than the product it saves.
    """
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    position = torch.full((adj.size(1),), rows.numel(), dtype=col.dtype, device=col.device)
    position[rows] = torch.arange(rows.numel(), dtype=col.dtype, device=col.device)
    table = torch.cat([g, g.new_zeros(1, g.size(1))])
    # index_select: about 2x faster than advanced indexing for a flat gather on CPU
    return F.embedding_bag(position.index_select(0, col), table, crow, mode="sum",
                           per_sample_weights=val.to(g.dtype), include_last_offset=True)


def _csr(crow: Tensor, col: Tensor, val: Tensor, size) -> Tensor:
    with warnings.catch_warnings():  # torch's "sparse CSR is beta" notice
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, size, check_invariants=False)


def locality_order(adj: Tensor) -> Tensor:
    r"""A node order that keeps neighbours close in memory: reverse Cuthill–McKee of the
    (symmetric) sparsity pattern of ``adj``, computed with SciPy on CPU. ``perm[new] = old``.

    Sparse products gather one embedding row per non-zero; with neighbours stored close
    together more of those rows are still in cache. On Gowalla this makes a product with 64
    channels about 1.2x faster than in the dataset's own order (and about 1.6x faster than in
    a random order), and a whole training step 5-7% faster.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    n = adj.size(0)
    pattern = sp.csr_matrix((adj.values().detach().cpu().numpy(), adj.col_indices().cpu().numpy(),
                             adj.crow_indices().cpu().numpy()), shape=(n, n))
    perm = reverse_cuthill_mckee(pattern, symmetric_mode=True)
    return torch.from_numpy(perm.astype("int64")).to(adj.crow_indices().device)


def _relabel_columns(adj: Tensor, new_of_old: Tensor) -> Tensor:
    r"""``adj`` with column ``c`` moved to ``new_of_old[c]`` (columns sorted within rows)."""
    crow, col, val = adj.crow_indices(), new_of_old.index_select(0, adj.col_indices()), adj.values()
    row = torch.repeat_interleave(torch.arange(adj.size(0), device=col.device), crow.diff(),
                                  output_size=col.numel())
    order = torch.argsort(row * adj.size(1) + col)
    return _csr(crow, col[order], val[order], tuple(adj.shape))


class _Propagation:
    r"""The cached propagation matrices of :class:`LightGCN`.

    Without a node order both of them are :math:`\hat{A}`. With a locality order ``perm``
    (``perm[new] = old``, :func:`locality_order`) and the permutation matrix :math:`P`:
    ``inner`` :math:`= P \hat{A} P^{\top}` for products inside the permuted space and ``enter``
    :math:`= P \hat{A}` for the first product, which reads the embedding table in id order, so
    the table is never permuted as a whole (a random-order gather of the ``[N, F]`` table costs
    about as much as the locality order saves on one product). The backward pass's last product
    runs in the permuted space too and its ``[N, F]`` result is gathered back into id order:
    a product whose rows are in id order (:math:`\hat{A} P^{\top}`) is no faster on one thread
    and slower on two, because torch splits the rows evenly between threads and, in id order,
    the users' half carries most of the non-zeros.
    """

    def __init__(self, adj: Tensor, perm: Optional[Tensor] = None) -> None:
        self.adj, self.perm = adj, perm
        if perm is None:
            self.inv_perm, self.inner, self.enter = None, adj, adj
            return
        self.inv_perm = torch.empty_like(perm)
        self.inv_perm[perm] = torch.arange(perm.numel(), device=perm.device)
        self.enter = _row_slice(adj, perm)
        self.inner = _relabel_columns(self.enter, self.inv_perm)

    def apply(self, fn) -> "_Propagation":
        """A copy with ``fn`` applied to every tensor (see :meth:`torch.nn.Module._apply`)."""
        out, done = _Propagation.__new__(_Propagation), {}
        for name in ("adj", "perm", "inv_perm", "inner", "enter"):
            value = getattr(self, name)
            if value is not None and id(value) not in done:  # shared matrices stay shared
                done[id(value)] = fn(value)
            setattr(out, name, None if value is None else done[id(value)])
        return out


class _LayerMeanRows(torch.autograd.Function):
    r"""Rows ``R`` of the LightGCN layer mean :math:`\frac{1}{K+1}\sum_k \hat{A}^k X` and its
    exact gradient, with two fewer full sparse products than autograd through ``K`` layers.

    Forward: ``K - 1`` full products, then the last layer only for the rows ``R`` (a product
    with the ``[|R|, N]`` row slice of :math:`\hat{A}`). Backward: the gradient :math:`G`
    lives on ``R`` only, and :math:`\sum_{k \le K} \hat{A}^k G` is evaluated in Horner form
    :math:`G + \hat{A}(G + \hat{A}(G + \dots))`: the innermost :math:`\hat{A} G =
    \hat{A}_{:, R} G` is a product with the columns ``R`` only (:func:`_columns_matmul`),
    followed by ``K - 1`` full products, and adding :math:`G` touches the rows ``R`` only. All
    products are weighted ``embedding_bag`` calls (:func:`~graphkit.utils.csr_spmm`); a gather /
    ``index_add_`` over the same non-zeros is several times slower on CPU. Products run in the
    node order of ``graph`` (:class:`_Propagation`). The function also returns the layer-0
    rows ``X[R]``, so that a penalty on them adds its gradient in the same backward instead of
    in a second full-size buffer.
    """

    @staticmethod
    def forward(ctx, x: Tensor, graph: "_Propagation", rows: Tensor, num_layers: int):  # type: ignore[override]
        x0 = x.index_select(0, rows)
        # rows in the permuted space of graph.inner / graph.enter
        rows_p = rows if graph.inv_perm is None else graph.inv_perm.index_select(0, rows)
        ctx.num_layers, ctx.graph, ctx.num_nodes = num_layers, graph, x.size(0)
        ctx.save_for_backward(rows, rows_p)
        ctx.set_materialize_grads(False)
        acc = x0.clone()
        if num_layers == 1:
            acc += csr_spmm(_row_slice(graph.adj, rows), x)
        elif num_layers > 1:
            h = csr_spmm(graph.enter, x)
            acc += h.index_select(0, rows_p)
            for _ in range(num_layers - 2):
                h = csr_spmm(graph.inner, h)
                acc += h.index_select(0, rows_p)
            acc += csr_spmm(_row_slice(graph.inner, rows_p), h)
        if num_layers > 0:
            acc.div_(num_layers + 1)
        return acc, x0

    @staticmethod
    def backward(ctx, grad: Optional[Tensor], grad_x0: Optional[Tensor]):  # type: ignore[override]
        K, graph = ctx.num_layers, ctx.graph
        rows, rows_p = ctx.saved_tensors
        g = None if grad is None else grad / (K + 1)
        direct = g if grad_x0 is None else (grad_x0 if g is None else g + grad_x0)
        if direct is None:
            return None, None, None, None
        if K == 0 or g is None:
            total = torch.zeros(ctx.num_nodes, direct.size(-1), dtype=direct.dtype, device=direct.device)
        elif K == 1:
            total = _columns_matmul(graph.adj, rows, g)
        else:
            y = _columns_matmul(graph.inner, rows_p, g)  # A G, G supported on rows
            for _ in range(K - 2):
                y = csr_spmm(graph.inner, y.index_add_(0, rows_p, g))
            total = csr_spmm(graph.inner, y.index_add_(0, rows_p, g))
            if graph.inv_perm is not None:  # back to id order
                total = total.index_select(0, graph.inv_perm)
        return total.index_add_(0, rows, direct), None, None, None


@register_recommender("lightgcn")
class LightGCN(_EmbeddingRecommender):
    r"""The LightGCN model from the `"LightGCN: Simplifying and Powering Graph Convolution
    Network for Recommendation" <https://arxiv.org/abs/2002.02126>`_ paper.

    Layer-0 embeddings :math:`\mathbf{E}^{(0)}` of users and items are propagated over the
    symmetric-normalised user–item graph without weights or non-linearities, and the final
    representation is the mean of all layers:

    .. math::
        \mathbf{E}^{(k+1)} = \mathbf{D}^{-1/2} \mathbf{A} \mathbf{D}^{-1/2} \mathbf{E}^{(k)},
        \qquad
        \mathbf{E} = \frac{1}{K+1} \sum_{k=0}^{K} \mathbf{E}^{(k)},
        \qquad \hat{y}_{ui} = \mathbf{e}_u^{\top} \mathbf{e}_i .

    Training minimises the BPR loss with the paper's L2 penalty on the layer-0 embeddings of the
    batch (:meth:`loss`).

    How this differs from :class:`torch_geometric.nn.models.LightGCN`: PyG's model propagates a
    homogeneous ``edge_index`` through :class:`~torch_geometric.nn.conv.LGConv` on every call
    (gather/scatter over ``2E`` edges, normalisation recomputed each time), initialises with
    Xavier, and takes users and items as one node set. This model builds the normalised
    adjacency once as a CSR matrix (:meth:`set_graph`) and propagates with sparse products whose
    backward pass reuses the symmetric matrix, initialises with :math:`\mathcal{N}(0, 0.1^2)` as
    the reference implementation does, and keeps users and items apart (ids ``0..U-1`` and
    ``0..I-1``). Its propagation equals ``LGConv`` exactly on the same graph
    (:meth:`embeddings` also accepts a homogeneous ``edge_index`` over ``U + I`` nodes), and
    :meth:`to_pyg` returns an equivalent PyG model.

    Args:
        num_users (int): number of users.
        num_items (int): number of items.
        embedding_dim (int): embedding size. (default: :obj:`64`)
        num_layers (int): number of propagation steps :math:`K`. (default: :obj:`3`)
        reg_weight (float): L2 coefficient on the batch's layer-0 embeddings. (default: :obj:`1e-4`)
        init_std (float): standard deviation of the normal initialisation. (default: :obj:`0.1`)
        reorder_nodes (bool): propagate internally in a locality order of the graph
            (:func:`locality_order`), which makes the sparse products faster on CPU; the
            embeddings, ids and results are unchanged up to float rounding. (default: :obj:`True`)

    Shapes:
        - **input:** training interactions ``[2, E]`` or a sparse ``[U, I]`` matrix via
          :meth:`set_graph`; user ids ``[B]``
        - **output:** :meth:`embeddings` → ``([U, F], [I, F])``; :meth:`score_all` → ``[B, I]``
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3,
                 reg_weight: float = 1e-4, init_std: float = 0.1, reorder_nodes: bool = True):
        super().__init__(num_users, num_items)
        if int(embedding_dim) < 1:
            raise ValueError(f"LightGCN: 'embedding_dim' must be positive, got {embedding_dim}")
        if num_layers < 0:
            raise ValueError(f"LightGCN: 'num_layers' must be >= 0, got {num_layers}")
        self.embedding_dim = int(embedding_dim)
        self.num_layers = int(num_layers)
        self.reg_weight = float(reg_weight)
        self.init_std = float(init_std)
        self.reorder_nodes = bool(reorder_nodes)
        self.embedding = Embedding(self.num_users + self.num_items, self.embedding_dim)
        self.train_edge_index: Optional[Tensor] = None
        self._graph: Optional[_Propagation] = None
        self.reset_parameters()

    @property
    def _adj(self) -> Optional[Tensor]:
        """The cached normalised adjacency in id order (``None`` before :meth:`set_graph`)."""
        return None if self._graph is None else self._graph.adj

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.embedding.weight, std=self.init_std)

    def set_graph(self, edge_index: Tensor) -> "LightGCN":
        r"""Cache the normalised adjacency of the training interactions, in the dtype and on the
        device of the embedding table (the cache then follows ``.to()`` / ``.double()``).

        Args:
            edge_index (torch.Tensor): ``[2, E]`` (user, item) integer pairs, a PyG
                ``EdgeIndex``, or a ``torch.sparse`` ``[U, I]`` matrix (COO, CSR or CSC) whose
                stored entries are the interactions: their values are not used (the graph is
                binary, duplicates merged). Float ids and ids out of range are refused.
        """
        weight = self.embedding.weight
        pairs = as_interaction_pairs(edge_index, self.num_users, self.num_items, "LightGCN.set_graph")
        self.train_edge_index = pairs.to(weight.device)
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        adj = bipartite_normalized_adjacency(self.train_edge_index, self.num_users, self.num_items, dtype=dtype)
        perm = locality_order(adj) if self.reorder_nodes and adj.values().numel() else None
        self._graph = _Propagation(adj, perm)
        self._seen = None
        return self

    def _apply(self, fn, *args, **kwargs):  # the cached graph follows the parameters' device and dtype
        super()._apply(fn, *args, **kwargs)
        if self._graph is not None:
            self._graph = self._graph.apply(fn)
            self.train_edge_index = fn(self.train_edge_index)
        return self

    def propagate(self, edge_index: Optional[Tensor] = None) -> Tensor:
        r"""Layer-mean embeddings of all ``U + I`` nodes, ``[U + I, F]``.

        Args:
            edge_index (torch.Tensor, optional): a homogeneous ``[2, E']`` graph over the ``U + I``
                nodes (users first), as PyG's ``LightGCN`` takes; propagated with ``LGConv``.
                By default the cached training graph is used.
        """
        x = self.embedding.weight
        out = x
        if edge_index is not None:
            from torch_geometric.nn.conv import LGConv

            conv = LGConv()
            for _ in range(self.num_layers):
                x = conv(x, edge_index)
                out = out + x
            return out / (self.num_layers + 1)
        if self._adj is None:
            raise RuntimeError("LightGCN has no graph: call set_graph(train_edge_index) first")
        graph = self._graph
        if graph.perm is not None:
            x = out = x.index_select(0, graph.perm)
        for _ in range(self.num_layers):
            x = symmetric_spmm(graph.inner, x)
            out = out + x
        out = out / (self.num_layers + 1)
        return out if graph.perm is None else out.index_select(0, graph.inv_perm)

    def propagate_rows(self, nodes: Tensor) -> Tensor:
        r"""Layer-mean embeddings of the given nodes only (users ``0..U-1``, items ``U..``),
        ``[len(nodes), F]``. Equal to ``propagate()[nodes]``, at about two thirds of the cost of
        a training step through it (see :class:`_LayerMeanRows`)."""
        if self._adj is None:
            raise RuntimeError("LightGCN has no graph: call set_graph(train_edge_index) first")
        if torch.compiler.is_compiling():
            return self.propagate()[nodes]
        return self._propagate_rows(nodes)[0]

    def _layer_rows(self, nodes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        # (layer mean, layer 0, inverse): ``mean[inverse]`` / ``x0[inverse]`` are the rows of
        # ``nodes``; both come from one autograd node, so the layer-0 rows' gradient (the L2
        # penalty's) joins the propagated one without a second full-size buffer
        if torch.compiler.is_compiling():
            return self.propagate(), self.embedding.weight, nodes
        uniq, inverse = torch.unique(nodes, return_inverse=True)
        mean, x0 = _LayerMeanRows.apply(self.embedding.weight, self._graph, uniq, self.num_layers)
        return mean, x0, inverse

    def _propagate_rows(self, nodes: Tensor) -> Tuple[Tensor, Tensor]:
        mean, x0, inverse = self._layer_rows(nodes)
        # index_select: its backward is an index_add_, several times faster on CPU than the
        # accumulating index_put_ behind mean[inverse]
        return mean.index_select(0, inverse), x0.index_select(0, inverse)

    def _propagate_triples(self, users: Tensor, pos_items: Tensor, neg_items: Tensor):
        # (layer mean, layer 0) rows of users, positives and negatives; with [B, M] negative
        # candidates, each user's hardest candidate under the current embeddings is kept
        B = users.numel()
        nodes = torch.cat([users, pos_items + self.num_users, neg_items.reshape(-1) + self.num_users])
        mean, x0, inverse = self._layer_rows(nodes)
        if neg_items.dim() == 2:
            inv_c = inverse[2 * B:].view(B, -1)
            with torch.no_grad():
                emb = mean.detach()
                chosen = hardest_candidates(emb.index_select(0, inverse[:B]),
                                             emb.index_select(0, inv_c.reshape(-1)).view(*inv_c.shape, -1), inv_c)
            inverse = torch.cat([inverse[:2 * B], chosen])
        out, x0 = mean.index_select(0, inverse), x0.index_select(0, inverse)
        return out.split(B), x0

    def embeddings(self, edge_index: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        """Final user and item embeddings ``([U, F], [I, F])``."""
        out = self.propagate(edge_index)
        return out[:self.num_users], out[self.num_users:]

    def loss(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Tensor:
        r"""BPR loss plus the L2 penalty on the batch's layer-0 embeddings.

        .. math::
            \mathcal{L} = \frac{1}{B} \sum_{(u,i,j)} \operatorname{softplus}(\hat{y}_{uj} -
            \hat{y}_{ui}) + \lambda \frac{\lVert \mathbf{E}^{(0)}_{u,i,j} \rVert^2}{2B}

        Args:
            users (torch.Tensor): ``[B]`` user ids.
            pos_items (torch.Tensor): ``[B]`` positive item ids.
            neg_items (torch.Tensor): ``[B]`` negative item ids, or ``[B, M]`` candidates: each
                triple then uses the candidate its user scores highest under the current
                embeddings (dynamic negative sampling, `Zhang et al., SIGIR 2013
                <https://doi.org/10.1145/2484028.2484126>`_; the choice itself passes no gradient).

        Users and items share one embedding table, so every id is range-checked (one
        ``aminmax`` per tensor): an out-of-range id raises a :class:`ValueError` naming the
        argument and the id instead of reading another node's row.
        """
        check_triples(users, pos_items, neg_items, self.num_users, self.num_items, "LightGCN.loss")
        if self._adj is None:
            raise RuntimeError("LightGCN has no graph: call set_graph(train_edge_index) first")
        (u, p, n), x0 = self._propagate_triples(users, pos_items, neg_items)
        bpr = F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
        reg = x0.pow(2).sum() / (2 * users.numel())
        return bpr + self.reg_weight * reg

    def to_pyg(self):
        """An equivalent :class:`torch_geometric.nn.models.LightGCN` with the same embeddings."""
        from torch_geometric.nn.models import LightGCN as PyGLightGCN

        model = PyGLightGCN(self.num_users + self.num_items, self.embedding_dim, self.num_layers)
        with torch.no_grad():
            model.embedding.weight.copy_(self.embedding.weight)
        return model.to(self.embedding.weight.device)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_users}, {self.num_items}, "
                f"embedding_dim={self.embedding_dim}, num_layers={self.num_layers})")
