"""Adaptive propagation of the Deep Adaptive Graph Neural Network (DAGNN)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Linear, Module
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor, to_torch_csr_tensor

from graphkit.utils.sparse import edge_spmm, spmm_with_transpose

try:  # PyG >= 2.5
    from torch_geometric import EdgeIndex
except ImportError:  # pragma: no cover
    EdgeIndex = None


def _is_compiling() -> bool:
    try:
        return torch.compiler.is_compiling()
    except AttributeError:  # pragma: no cover
        return False


class DAGNNConv(Module):
    r"""The adaptive propagation layer of the Deep Adaptive Graph Neural Network
    (DAGNN) from the `"Towards Deeper Graph Neural Networks"
    <https://arxiv.org/abs/2007.09296>`_ paper (Liu, Gao and Ji, KDD 2020).

    This is *not* the directed-acyclic-graph network "DAGNN" (Thost and Chen,
    ICLR 2021). The layer has no feature transformation of its own: it
    propagates its input :math:`K` times with the symmetrically normalised
    adjacency matrix with self-loops, stacks the :math:`K + 1` representations
    and combines them with node-wise learned retention scores:

    .. math::
        \mathbf{H}_0 &= \mathbf{X}, \qquad
        \mathbf{H}_k = \mathbf{\hat{D}}^{-1/2} \mathbf{\hat{A}}
        \mathbf{\hat{D}}^{-1/2} \mathbf{H}_{k-1}, \quad k = 1, \ldots, K

        s_{i,k} &= \sigma\left(\mathbf{h}_{i,k}^{\top} \mathbf{w} + b\right)

        \mathbf{x}^{\prime}_i &= \sum_{k=0}^{K} s_{i,k} \, \mathbf{h}_{i,k}

    where :math:`\mathbf{\hat{A}} = \mathbf{A} + \mathbf{I}` and
    :math:`\hat{D}_{ii} = \sum_{j} \hat{A}_{ij}`. The only parameters are the
    projection :math:`\mathbf{w} \in \mathbb{R}^{F}` and the bias :math:`b`.

    PyG has no DAGNN operator; :class:`~torch_geometric.nn.conv.APPNP` is the
    closest one (fixed teleport weights instead of learned retention scores).
    Propagation is done with a ``torch.sparse`` CSR product; with
    :obj:`cached=True` the normalised CSR matrix is computed once and reused,
    which is the intended use for transductive node classification.

    Args:
        in_channels (int): Size of each input sample (in DAGNN, the number of
            classes, since the layer is applied to class logits).
        K (int): Number of propagation steps :math:`K` (:obj:`K >= 0`).
        cached (bool, optional): If set to :obj:`True`, the layer caches the
            normalised adjacency matrix on first execution and uses it in all
            later calls. Only use this in transductive settings.
            (default: :obj:`False`)
        add_self_loops (bool, optional): If set to :obj:`False`, no self-loops
            are added before normalisation; isolated nodes then propagate zeros.
            (default: :obj:`True`)
        normalize (bool, optional): If set to :obj:`False`, the given edge
            weights (or ones) are used as they are, without
            :math:`\mathbf{\hat{D}}^{-1/2} \mathbf{\hat{A}}
            \mathbf{\hat{D}}^{-1/2}` normalisation and without added
            self-loops. (default: :obj:`True`)
        bias (bool, optional): If set to :obj:`False`, the retention
            projection has no bias :math:`b`. (default: :obj:`True`)

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)` (COO, PyG :class:`EdgeIndex`)
          or a sparse adjacency :math:`(|\mathcal{V}|, |\mathcal{V}|)` whose row
          :math:`i` holds the in-neighbours of node :math:`i`
          (``torch.sparse`` or ``SparseTensor``),
          edge weights :math:`(|\mathcal{E}|)` *(optional, COO only)*
        - **output:** node features :math:`(|\mathcal{V}|, F)`

    Gradients reach the node features and the edge weights (or the values of a sparse
    adjacency), e.g. learned edge weights or edge masks. When no edge weight requires a
    gradient, propagation uses a ``torch.sparse`` CSR product with a precomputed transpose;
    when one does, it uses a differentiable gather/scatter-add over the edges (slower, exact
    to any order of differentiation). Learned edge weights cannot be combined with
    :obj:`cached=True` (a :class:`ValueError`): the cache would freeze them. The cache
    follows :meth:`~torch.nn.Module.to` and :meth:`~torch.nn.Module.double`: it is rebuilt
    from the cached graph in the dtype and on the device of the next input.

    Graphs without edges and isolated nodes are allowed: with self-loops such
    nodes keep their own features at every step. Features must be finite; NaN
    or infinite values raise a :class:`ValueError` (outside of
    :func:`torch.compile`, where input checks are skipped).
    """

    _cached_adj: Optional[Tuple[Tensor, Tensor]]
    _cached_graph: Optional[Tuple[Any, Optional[Tensor]]]

    def __init__(
        self,
        in_channels: int,
        K: int,
        cached: bool = False,
        add_self_loops: bool = True,
        normalize: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels <= 0:
            raise ValueError(f"DAGNNConv: 'in_channels' must be a positive int (got {in_channels!r})")
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ValueError(f"DAGNNConv: 'K' must be a non-negative int (got {K!r})")
        self.in_channels = in_channels
        self.K = K
        self.cached = cached
        self.add_self_loops = add_self_loops
        self.normalize = normalize
        self.bias = bias

        self.proj = Linear(in_channels, 1, bias=bias)
        self._cached_adj = None
        # the graph the cache was built from (rebuilt from it on a dtype/device change)
        self._cached_graph = None

        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module and clears the cache."""
        self.proj.reset_parameters()
        self._cached_adj = None
        self._cached_graph = None

    def _check_input(self, x: Tensor, edge_index, edge_weight: Optional[Tensor]) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(
                f"DAGNNConv: 'x' must be a 2-dimensional tensor [num_nodes, {self.in_channels}] "
                f"(got {type(x).__name__} with shape {tuple(getattr(x, 'shape', ()))})")
        if x.size(-1) != self.in_channels:
            raise ValueError(f"DAGNNConv: 'x' has {x.size(-1)} channels but the layer was built with "
                             f"in_channels={self.in_channels}")
        if not x.is_floating_point():
            raise TypeError(f"DAGNNConv: 'x' must be a floating point tensor (got {x.dtype})")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).any(dim=-1).nonzero().view(-1)
            raise ValueError(f"DAGNNConv: 'x' contains NaN or infinite values (first bad node id: "
                             f"{int(bad[0])}, {bad.numel()} bad nodes)")
        num_nodes = x.size(0)
        if isinstance(edge_index, SparseTensor) or (isinstance(edge_index, Tensor)
                                                    and edge_index.layout != torch.strided):
            if edge_index.size(0) != num_nodes or edge_index.size(1) != num_nodes:
                raise ValueError(f"DAGNNConv: sparse adjacency of shape {tuple(edge_index.size())} does "
                                 f"not match the {num_nodes} nodes of 'x'")
            if edge_weight is not None:
                raise ValueError("DAGNNConv: 'edge_weight' must be None when 'edge_index' is a sparse "
                                 "matrix (put the weights in the matrix values)")
            return
        if not isinstance(edge_index, Tensor):
            raise TypeError(f"DAGNNConv: 'edge_index' must be a Tensor, EdgeIndex or sparse matrix "
                            f"(got {type(edge_index).__name__})")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"DAGNNConv: 'edge_index' must have shape [2, num_edges] "
                             f"(got {tuple(edge_index.shape)})")
        if edge_index.dtype not in (torch.long, torch.int):
            raise TypeError(f"DAGNNConv: 'edge_index' must hold integer ids (got {edge_index.dtype})")
        if edge_index.numel() > 0:
            lo, hi = int(edge_index.min()), int(edge_index.max())
            if lo < 0 or hi >= num_nodes:
                col = (edge_index.view(-1) < 0) | (edge_index.view(-1) >= num_nodes)
                pos = int(col.nonzero()[0]) % edge_index.size(1)
                raise ValueError(f"DAGNNConv: 'edge_index' holds node id "
                                 f"{lo if lo < 0 else hi} out of range [0, {num_nodes}) "
                                 f"(first at edge {pos})")
        if edge_weight is not None and (edge_weight.dim() != 1
                                        or edge_weight.numel() != edge_index.size(1)):
            raise ValueError(f"DAGNNConv: 'edge_weight' must have shape [{edge_index.size(1)}] "
                             f"(got {tuple(edge_weight.shape)})")

    def _normalized_edges(self, edge_index, edge_weight: Optional[Tensor], num_nodes: int,
                          dtype: torch.dtype) -> Tuple[Tensor, Optional[Tensor]]:
        """Returns ``(edge_index, edge_weight)`` of the propagation matrix as COO (source,
        target) with the weights normalised (if :obj:`normalize`); differentiable w.r.t. the
        given edge weights or the values of a sparse adjacency."""
        if isinstance(edge_index, SparseTensor):
            if self.normalize:
                edge_index = gcn_norm(edge_index, None, num_nodes, False, self.add_self_loops,
                                      "source_to_target", dtype)
            row, col, val = edge_index.coo()
            # (source, target)
            return torch.stack([col, row]), None if val is None else val.to(dtype)
        if is_torch_sparse_tensor(edge_index):
            adj = edge_index
            if adj.layout == torch.sparse_csr:
                crow = adj.crow_indices()
                row = torch.repeat_interleave(
                    torch.arange(num_nodes, device=crow.device), crow[1:] - crow[:-1])
                col = adj.col_indices()
            else:
                if adj.layout != torch.sparse_coo:
                    adj = adj.to_sparse_coo()
                adj = adj.coalesce()
                row, col = adj.indices()
            # Row i of the matrix holds the neighbours node i aggregates from (target, source).
            edge_index, edge_weight = torch.stack([col, row]), adj.values()
        if EdgeIndex is not None and isinstance(edge_index, EdgeIndex):
            edge_index = edge_index.as_tensor()
        edge_index = edge_index.long()
        if edge_weight is not None:
            edge_weight = edge_weight.to(dtype)
        if self.normalize:
            edge_index, edge_weight = gcn_norm(edge_index, edge_weight, num_nodes, False,
                                               self.add_self_loops, "source_to_target", dtype)
        return edge_index, edge_weight

    def _build_adj(self, edge_index, edge_weight: Optional[Tensor], num_nodes: int,
                   dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        """Returns the (normalised) propagation matrix as a ``torch.sparse`` CSR tensor
        whose row ``i`` aggregates the messages sent to node ``i``, and its transpose
        (constants: no gradient reaches the edge weights through them)."""
        with torch.no_grad():
            edge_index, edge_weight = self._normalized_edges(edge_index, edge_weight,
                                                             num_nodes, dtype)
        return self._to_csr_pair(edge_index, edge_weight, num_nodes, dtype)

    @staticmethod
    def _weights_need_grad(edge_index, edge_weight: Optional[Tensor]) -> bool:
        if not torch.is_grad_enabled():
            return False
        if edge_weight is not None:
            return edge_weight.requires_grad
        if isinstance(edge_index, SparseTensor):
            val = edge_index.storage.value()
            return val is not None and val.requires_grad
        return isinstance(edge_index, Tensor) and edge_index.layout != torch.strided \
            and edge_index.requires_grad

    @staticmethod
    def _to_csr_pair(edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                     dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        if edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
        edge_weight = edge_weight.to(dtype)
        size = (num_nodes, num_nodes)
        # Row = target, column = source: out[dst] = sum_src w * x[src].
        adj = to_torch_csr_tensor(edge_index.flip(0), edge_weight, size=size)
        adj_t = to_torch_csr_tensor(edge_index, edge_weight, size=size)
        return adj, adj_t

    def forward(self, x: Tensor, edge_index, edge_weight: Optional[Tensor] = None) -> Tensor:
        r"""Runs :math:`K` propagation steps and the adaptive combination.

        Args:
            x (torch.Tensor): Node features :math:`(|\mathcal{V}|, F)`.
            edge_index (torch.Tensor or EdgeIndex or SparseTensor): The graph,
                as COO indices :math:`(2, |\mathcal{E}|)` (source, target) or a
                sparse :math:`(|\mathcal{V}|, |\mathcal{V}|)` matrix (``torch.sparse``
                COO/CSR, ``SparseTensor``) whose row :math:`i` lists the
                neighbours node :math:`i` aggregates from.
            edge_weight (torch.Tensor, optional): Edge weights for COO input.
                (default: :obj:`None`)
        """
        if not _is_compiling():
            self._check_input(x, edge_index, edge_weight)

        if self._weights_need_grad(edge_index, edge_weight):
            if self.cached:
                raise ValueError("DAGNNConv: edge weights that require grad cannot be used with "
                                 "cached=True (the cache would freeze them); use cached=False")
            return self._forward_differentiable(x, edge_index, edge_weight)

        adj = self._cached_adj
        if adj is None:
            adj = self._build_adj(edge_index, edge_weight, x.size(0), x.dtype)
            if self.cached:
                self._cached_adj = adj
                self._cached_graph = (edge_index, None if edge_weight is None
                                      else edge_weight.detach())
        elif adj[0].size(0) != x.size(0) and not _is_compiling():
            raise ValueError(f"DAGNNConv: the cached adjacency has {adj[0].size(0)} nodes but 'x' has "
                             f"{x.size(0)}; call reset_parameters() or use cached=False")
        elif adj[0].dtype != x.dtype or adj[0].device != x.device:
            # after .to() / .double(): rebuilt from the cached graph, not cast (exact)
            graph, weight = self._cached_graph
            adj = self._build_adj(graph.to(x.device),
                                  None if weight is None else weight.to(x.device),
                                  x.size(0), x.dtype)
            self._cached_adj = adj

        a, a_t = adj
        hs = [x]
        h = x
        for _ in range(self.K):
            h = spmm_with_transpose(a, a_t, h)
            hs.append(h)
        return self._combine(hs)

    def _forward_differentiable(self, x: Tensor, edge_index,
                                edge_weight: Optional[Tensor]) -> Tensor:
        edge_index, edge_weight = self._normalized_edges(edge_index, edge_weight, x.size(0),
                                                         x.dtype)
        if edge_weight is None:  # defensive: this path is only taken with weights given
            edge_weight = x.new_ones(edge_index.size(1))
        src, dst = edge_index[0], edge_index[1]
        hs = [x]
        for _ in range(self.K):
            hs.append(edge_spmm(src, dst, edge_weight, hs[-1]))
        return self._combine(hs)

    def _combine(self, hs) -> Tensor:
        stacked = torch.stack(hs, dim=1)  # [N, K + 1, F]
        score = torch.sigmoid(self.proj(stacked))  # [N, K + 1, 1]
        return (score * stacked).sum(dim=1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, K={self.K})"
