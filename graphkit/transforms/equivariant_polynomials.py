r"""Equivariant polynomial features of graphs (node and edge level), evaluated as batched tensor
contractions on the dense adjacency of every graph."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from graphkit.transforms import _polynomial_basis as _pb
from graphkit.utils.dense_batch import DEFAULT_MAX_NODES, dense_adjacency, pair_mask

__all__ = ["EquivariantPolynomials", "equivariant_polynomials", "basis_names"]

_LEVELS = ("node", "edge", "both")
_SUBSETS = ("all", "ppgn++")
#: Largest ``(B, n, n, n)`` intermediate (entries) built at once by the degree-5/6 elements.
_CHUNK_ENTRIES = 1 << 23


def _check_options(degree: int, level: str, subset: str) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= 6:
        raise ValueError(f"degree must be an int in 1..6, got {degree!r}")
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}")
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}")


def basis_names(degree: int = 4, level: str = "node", subset: str = "all") -> List[str]:
    """Names of the basis elements computed at ``level`` (``"node"`` or ``"edge"``), in the
    order of the feature columns."""
    _check_options(degree, level, subset)
    if level == "both":
        raise ValueError("basis_names: level must be 'node' or 'edge'")
    return [b.name for b in _pb.select(level, degree, subset)]


def equivariant_polynomials(edge_index: Tensor, batch: Optional[Tensor] = None,
                            edge_weight: Optional[Tensor] = None,
                            num_nodes: Optional[int] = None, degree: int = 4,
                            level: str = "both", subset: str = "all",
                            max_nodes: int = DEFAULT_MAX_NODES,
                            dtype: torch.dtype = torch.float64
                            ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Evaluate the polynomial basis on a batch of graphs (see :class:`EquivariantPolynomials`
    for the basis and the conventions).

    Returns:
        ``(node, edge, mask)``: node features ``(N, F_node)`` (rows in node order), edge-level
        features of every pair ``(B, n_max, n_max, F_edge)`` (zero on padding) and the node
        mask ``(B, n_max)``; all in ``dtype``.
    """
    _check_options(degree, level, subset)
    if edge_weight is not None:
        edge_weight = edge_weight.to(dtype)
    adj, mask = dense_adjacency(edge_index, batch, edge_weight, num_nodes, max_nodes, dtype)
    node_el = _pb.select("node", degree, subset) if level in ("node", "both") else []
    edge_el = _pb.select("edge", degree, subset) if level in ("edge", "both") else []
    if edge_weight is None and adj.numel():
        # Integer adjacency: every value (and every partial sum) is an integer at most
        # S^6 with S the largest row sum, so float32 is exact while S^6 <= 2^24.
        if float(adj.sum(-1).max()) ** 6 <= 2 ** 24:
            adj = adj.float()
    b, n = adj.size(0), adj.size(1)
    counts = mask.sum(1)
    node_rows: List[Tensor] = []
    edge_dense = adj.new_zeros(b, n, n, len(edge_el))
    quartic = any(e.degree >= 5 and not e.ppgn for e in node_el + edge_el)
    start = 0
    while start < b:
        stop = b
        if quartic:  # bound the (B, n, n, n) intermediates: several graphs at a time
            stop = start + 1
            while stop < b and (stop + 1 - start) * int(counts[start:stop + 1].max()) ** 3 \
                    <= _CHUNK_ENTRIES:
                stop += 1
        m = int(counts[start:stop].max()) if stop > start else 0
        node_d, edge_d = _pb.evaluate_batched(adj[start:stop, :m, :m], node_el, edge_el)
        node_rows.append(node_d[mask[start:stop, :m]])
        edge_dense[start:stop, :m, :m] = edge_d
        start = stop
    node = torch.cat(node_rows) if node_rows else adj.new_zeros(0, len(node_el))
    return node.to(dtype), edge_dense.to(dtype), mask


class EquivariantPolynomials(BaseTransform):
    r"""Node- and edge-level equivariant polynomial features from the `"Equivariant Polynomials
    for Graph Neural Networks" <https://arxiv.org/abs/2302.11556>`_ paper (Puny et al., ICML
    2023).

    Each basis element is a small multigraph :math:`H` with an output vertex :math:`i` (node
    level) or an output pair :math:`(i, j)` (edge level); its value is the contraction over the
    other vertices of :math:`H` of one adjacency entry per edge of :math:`H`:

    .. math::
        P_H(\mathbf{A})_{i} = \sum_{a, b, \ldots} \prod_{(u, v) \in E(H)} A_{uv},
        \qquad
        P_H(\mathbf{A})_{ij} = \sum_{a, b, \ldots} \prod_{(u, v) \in E(H)} A_{uv}.

    They are permutation equivariant: relabelling the nodes by :math:`\sigma` permutes
    :math:`P_H(\mathbf{A})_i` into :math:`P_H(\mathbf{A})_{\sigma(i)}`. The degree of an element
    is its number of edges. All graphs of a batch are padded to the largest one and evaluated
    together from shared matrix powers :math:`\mathbf{A}^k` (:math:`O(n^3)` per power); the
    elements marked "beyond PPGN" need one :math:`(n, n, n)` intermediate per graph and cost
    :math:`O(n^4)` (graphs are processed in chunks to bound that memory).

    Basis elements (on a simple undirected graph; ``A`` binary and symmetric):

    ==========================  ======  ===================================================
    node level (``poly_x``)     degree  value at node :math:`i`
    ==========================  ======  ===================================================
    ``deg``                     1       degree :math:`d_i`
    ``star2``                   2       :math:`d_i^2`
    ``walk2``                   2       walks of length 2 from :math:`i`
    ``tri``                     3       :math:`(A^3)_{ii}` = **2 x triangles at** :math:`i`
    ``walk3``                   3       walks of length 3 from :math:`i`
    ``cyc4``                    4       :math:`(A^4)_{ii}` = 2 x **4-cycles at** :math:`i`
                                        + ``star2`` + ``walk2`` - ``deg``
    ``walk4``                   4       walks of length 4 from :math:`i`
    ``tri_nb``                  4       :math:`\sum_{a \sim i} (A^3)_{aa}`
    ``cyc5``                    5       :math:`(A^5)_{ii}` closed 5-walks
    ``diamond_tip``             5       :math:`(A (A \odot A^2) A)_{ii}`
    ``cyc6``                    6       :math:`(A^6)_{ii}` closed 6-walks
    ``k4``                      6       6 x **4-cliques at** :math:`i` (beyond PPGN)
    ==========================  ======  ===================================================

    ==========================  ======  ===================================================
    edge level                  degree  value at pair :math:`(i, j)`
    ==========================  ======  ===================================================
    ``adj``                     1       :math:`A_{ij}`
    ``walk2``                   2       :math:`(A^2)_{ij}` common neighbours (diagonal:
                                        degree)
    ``walk3``                   3       :math:`(A^3)_{ij}`
    ``tri``                     3       :math:`A_{ij} (A^2)_{ij}` = **triangles on edge**
                                        :math:`ij`
    ``walk4``                   4       :math:`(A^4)_{ij}`
    ``cyc4``                    4       :math:`A_{ij} (A^3)_{ij}`
    ``sq_common``               4       :math:`(A^2)_{ij}^2`
    ``walk5``                   5       :math:`(A^5)_{ij}`
    ``diamond``                 5       :math:`\sum_{a,b} A_{ia}A_{ja}A_{ib}A_{jb}A_{ab}`
                                        (beyond PPGN)
    ``k4``                      6       :math:`A_{ij}` x ``diamond`` = 2 x 4-cliques on
                                        edge :math:`ij` (beyond PPGN)
    ``diamond_sub_outer``       6       ``diamond`` with :math:`A_{ia}` replaced by
                                        :math:`(A^2)_{ia}` (beyond PPGN)
    ``diamond_sub_middle``      6       ``diamond`` with :math:`A_{ab}` replaced by
                                        :math:`(A^2)_{ab}` (beyond PPGN)
    ==========================  ======  ===================================================

    Counts follow from the elements, e.g. simple paths of length 2 / 3 starting at :math:`i`
    are ``walk2 - deg`` and ``walk3 - walk2 - star2 + deg - tri``; between :math:`i \ne j`,
    paths of length 3 are :math:`(A^3)_{ij} - A_{ij}(d_i + d_j - 1)`. "Beyond PPGN" elements
    are those PPGN's matrix and element-wise products cannot build (their multigraph plus the
    output pair contains a :math:`K_4` minor); ``subset="ppgn++"`` keeps only those, the extra
    input of PPGN++.

    Stored on the returned ``Data`` (a copy; ``F_node`` / ``F_edge`` columns in the orders of
    :attr:`node_names` / :attr:`edge_names`):

    * ``poly_x`` ``(N, F_node)``: node-level features (``level`` ``"node"`` or ``"both"``);
    * ``poly_edge_attr`` ``(E, F_edge)``: edge-level features at the pairs of ``edge_index``
      (``level`` ``"edge"`` or ``"both"``), usable as edge attributes of any PyG layer;
    * with ``pairs=True``, ``poly_pair_index`` ``(2, P)`` and ``poly_pair_attr`` ``(P, F_edge)``:
      every pair :math:`(i, j)` of a graph, diagonal included, where some edge-level feature is
      non-zero (PyG's batching offsets ``poly_pair_index`` like ``edge_index``;
      :func:`torch_geometric.utils.to_dense_adj` rebuilds the dense tensor).

    Input conventions: ``A[i, j]`` is the number (or total weight) of edges ``i -> j``
    (``edge_index[0]`` is the source); parallel edges add up. A graph without edges gets all-zero
    features; an empty graph gets zero rows. A ``Batch`` (with ``batch``) is featurised in one
    go.

    Args:
        degree (int): largest degree (number of edges of :math:`H`) computed, 1..6.
            (default: ``4``: degree, walks and triangle / 4-cycle features, all :math:`O(n^3)`)
        level (str): ``"node"``, ``"edge"`` or ``"both"``. (default: ``"both"``)
        subset (str): ``"all"`` or ``"ppgn++"`` (only the elements beyond PPGN).
            (default: ``"all"``)
        pairs (bool): also store every non-zero pair (``poly_pair_*``). (default: ``False``)
        cat (bool): concatenate the node features to ``x`` (created if missing) instead of
            storing ``poly_x``. (default: ``False``)
        log (bool): store :math:`\operatorname{sign}(p) \log(1 + |p|)` instead of the raw values
            (walk counts grow exponentially with the degree). (default: ``False``)
        weight_attr (str, optional): name of a ``(E,)`` attribute used as the adjacency values
            (weighted polynomials); ``None`` uses 1 per edge and ignores ``edge_attr``.
        self_loops (str): ``"remove"`` drops self-loops first (the counts above are for simple
            graphs), ``"keep"`` keeps them as diagonal entries of ``A``, ``"error"`` raises.
            (default: ``"remove"``)
        directed (str): ``"error"`` raises on a directed ``edge_index`` (apply
            :class:`~torch_geometric.transforms.ToUndirected` first), ``"allow"`` evaluates the
            same contractions on the non-symmetric ``A`` (still equivariant; the counting
            meanings above then no longer hold). (default: ``"error"``)
        max_nodes (int): graphs with more nodes raise a :class:`ValueError` (the dense path
            stores :math:`n^2` entries per feature and, for degree 5/6, :math:`n^3`
            intermediates). (default: ``512``)
        dtype: dtype of the stored features; evaluation runs in float64 (in float32 when the
            adjacency is integer and every value is provably below :math:`2^{24}`, i.e. the
            largest row sum :math:`S` has :math:`S^6 \le 2^{24}`), so counts stay exact.
            (default: ``torch.float``)
        prefix (str): prefix of the stored attribute names (``poly`` gives ``poly_x``, ...),
            so that two instances can featurise the same ``Data``. (default: ``"poly"``)

    Shapes:
        - **input:** ``Data`` with ``edge_index`` ``(2, E)`` and ``num_nodes`` ``N``
        - **output:** the same plus ``poly_x`` ``(N, F_node)``, ``poly_edge_attr``
          ``(E, F_edge)`` and, with ``pairs``, ``poly_pair_index`` ``(2, P)``,
          ``poly_pair_attr`` ``(P, F_edge)``
    """

    def __init__(self, degree: int = 4, level: str = "both", subset: str = "all",
                 pairs: bool = False, cat: bool = False, log: bool = False,
                 weight_attr: Optional[str] = None, self_loops: str = "remove",
                 directed: str = "error", max_nodes: int = DEFAULT_MAX_NODES,
                 dtype: torch.dtype = torch.float, prefix: str = "poly") -> None:
        _check_options(degree, level, subset)
        if self_loops not in ("remove", "keep", "error"):
            raise ValueError(f"self_loops must be 'remove', 'keep' or 'error', got {self_loops!r}")
        if directed not in ("error", "allow"):
            raise ValueError(f"directed must be 'error' or 'allow', got {directed!r}")
        if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
            raise ValueError(f"max_nodes must be a positive int, got {max_nodes!r}")
        if not isinstance(prefix, str) or not prefix.isidentifier():
            raise ValueError(f"prefix must be a Python identifier, got {prefix!r}")
        if pairs and level == "node":
            raise ValueError("pairs=True needs edge-level features (level 'edge' or 'both')")
        self.degree, self.level, self.subset = degree, level, subset
        self.pairs, self.cat, self.log = pairs, cat, log
        self.weight_attr, self.self_loops, self.directed = weight_attr, self_loops, directed
        self.max_nodes, self.dtype, self.prefix = max_nodes, dtype, prefix
        self.node_names: List[str] = (basis_names(degree, "node", subset)
                                      if level != "edge" else [])
        self.edge_names: List[str] = (basis_names(degree, "edge", subset)
                                      if level != "node" else [])

    @property
    def num_node_features(self) -> int:
        return len(self.node_names)

    @property
    def num_edge_features(self) -> int:
        return len(self.edge_names)

    def _scale(self, t: Tensor) -> Tensor:
        if self.log:
            t = torch.sign(t) * torch.log1p(t.abs())
        return t.to(self.dtype)

    def forward(self, data: Data) -> Data:
        from torch_geometric.utils import is_undirected

        if getattr(data, "edge_index", None) is None:
            raise ValueError("EquivariantPolynomials: data has no edge_index")
        data = data.clone()
        edge_index = data.edge_index
        num_nodes = data.num_nodes
        if num_nodes is None:
            raise ValueError("EquivariantPolynomials: data has no num_nodes / x")
        weight = None
        if self.weight_attr is not None:
            weight = getattr(data, self.weight_attr, None)
            if weight is None:
                raise ValueError(f"EquivariantPolynomials: data has no attribute "
                                 f"{self.weight_attr!r} (weight_attr)")
            if weight.dim() == 2 and weight.size(1) == 1:
                weight = weight.view(-1)
            if weight.dim() != 1 or weight.numel() != edge_index.size(1):
                raise ValueError(f"EquivariantPolynomials: {self.weight_attr} must have shape "
                                 f"({edge_index.size(1)},), got {tuple(weight.shape)}")
        loops = edge_index[0] == edge_index[1] if edge_index.numel() else None
        keep = None
        if loops is not None and bool(loops.any()):
            if self.self_loops == "error":
                node = int(edge_index[0, loops][0])
                raise ValueError(f"EquivariantPolynomials: self-loop at node {node} "
                                 f"(self_loops='error'; use 'remove' or 'keep')")
            if self.self_loops == "remove":
                keep = ~loops
        ei = edge_index if keep is None else edge_index[:, keep]
        w = weight if (keep is None or weight is None) else weight[keep]
        if self.directed == "error" and ei.numel() and not is_undirected(ei, w, num_nodes):
            raise ValueError("EquivariantPolynomials: edge_index is directed (some edge i -> j "
                             "has no j -> i with the same weight); apply ToUndirected() first "
                             "or pass directed='allow'")
        batch = getattr(data, "batch", None)
        node, edge_dense, mask = equivariant_polynomials(
            ei, batch, w, num_nodes, self.degree, self.level, self.subset, self.max_nodes)
        if self.node_names:
            node = self._scale(node)
            if self.cat:
                x = getattr(data, "x", None)
                data.x = node if x is None else torch.cat(
                    [x.view(num_nodes, -1).to(node.dtype), node], -1)
            else:
                data[f"{self.prefix}_x"] = node
        if self.edge_names:
            counts = mask.sum(1)
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
            gid = (batch if batch is not None
                   else torch.zeros(num_nodes, dtype=torch.long, device=edge_index.device))
            local = torch.arange(num_nodes, device=edge_index.device) - ptr[gid]
            src, dst = edge_index
            data[f"{self.prefix}_edge_attr"] = self._scale(edge_dense[gid[src], local[src], local[dst]])
            if self.pairs:
                nz = (edge_dense != 0).any(-1) & pair_mask(mask)
                g, i, j = nz.nonzero(as_tuple=True)
                data[f"{self.prefix}_pair_index"] = torch.stack([ptr[g] + i, ptr[g] + j])
                data[f"{self.prefix}_pair_attr"] = self._scale(edge_dense[g, i, j])
        return data

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(degree={self.degree}, level={self.level!r}, "
                f"subset={self.subset!r}, node={self.num_node_features}, "
                f"edge={self.num_edge_features})")
