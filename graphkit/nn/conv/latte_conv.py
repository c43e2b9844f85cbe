r"""LATTE's layer: attention over neighbours within each relation, then over relation types."""
from __future__ import annotations

import warnings
from typing import Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.dense import Linear
from torch_geometric.utils import softmax

__all__ = ["LATTEConv"]

EdgeType = Tuple[str, str, str]
Metadata = Tuple[List[str], List[EdgeType]]


def _key(et: EdgeType) -> str:
    return "__".join(et)


def _by_destination(adj, et: EdgeType, num_src: int,
                    num_dst: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``(src, dst, ptr)`` of the edges sorted by destination, ``ptr`` ``[num_dst + 1]`` the
    CSR row pointers over destinations, from a ``[2, E]`` COO tensor / ``EdgeIndex`` or a
    ``torch.sparse`` ``adj_t`` of shape ``[num_dst, num_src]`` (PyG's transposed convention).

    A CSR ``adj_t`` or a COO ``edge_index`` already sorted by destination is used as it is
    (nothing is sorted per call); otherwise the edges are sorted once here."""
    if not isinstance(adj, Tensor):
        if hasattr(adj, "coo") and hasattr(adj, "sparse_sizes"):  # torch_sparse.SparseTensor
            row, col, _ = adj.coo()
            adj = torch.stack([col, row])
        else:
            raise ValueError(f"LATTEConv: edge type {et}: unsupported adjacency "
                             f"{type(adj).__name__}")
    if adj.layout != torch.strided:
        if tuple(adj.shape) != (num_dst, num_src):
            raise ValueError(f"LATTEConv: edge type {et}: sparse adj_t has shape "
                             f"{tuple(adj.shape)}, expected ({num_dst}, {num_src})")
        if adj.layout != torch.sparse_csr:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                adj = adj.to_sparse_coo().coalesce().to_sparse_csr()
        ptr, src = adj.crow_indices().long(), adj.col_indices().long()
        dst = torch.repeat_interleave(torch.arange(num_dst, device=ptr.device), ptr.diff())
        return src, dst, ptr
    if adj.dim() != 2 or adj.size(0) != 2:
        raise ValueError(f"LATTEConv: edge type {et}: edge_index must have shape [2, E], got "
                         f"{tuple(adj.shape)}")
    ei = adj.as_subclass(Tensor).long()
    src, dst = ei[0], ei[1]
    if ei.numel():
        for ids, n, side in ((src, num_src, "source"), (dst, num_dst, "destination")):
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= n:
                raise ValueError(f"LATTEConv: edge type {et}: {side} id "
                                 f"{lo if lo < 0 else hi} outside [0, {n})")
        if not bool((dst[1:] >= dst[:-1]).all()):
            order = torch.argsort(dst, stable=True)
            src, dst = src[order], dst[order]
    ptr = torch.zeros(num_dst + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(torch.bincount(dst, minlength=num_dst), 0, out=ptr[1:])
    return src, dst, ptr


def _weighted_sum(h: Tensor, src: Tensor, ptr: Tensor, weight: Tensor) -> Tensor:
    """``out[i, k] = sum_{e: dst(e) = i} weight[e, k] * h[src[e], k]`` for ``h`` ``[N, H, D]``
    and destination-sorted edges, per head as one weighted ``embedding_bag`` (the forward pass
    forms no ``[E, H, D]`` message tensor)."""
    outs = [F.embedding_bag(src, h[:, k].contiguous(), ptr, mode="sum",
                            per_sample_weights=weight[:, k].contiguous(),
                            include_last_offset=True)
            for k in range(h.size(1))]
    return torch.stack(outs, dim=1)


class LATTEConv(nn.Module):
    r"""The layer of LATTE from "Layer-stacked Attention for Heterogeneous Network
    Embedding" (Tran & Gao, 2020, https://arxiv.org/abs/2009.08072).

    Every node type :math:`m` has a projection :math:`W_m`. For a relation
    :math:`r = (s, \cdot, m)`, a node :math:`i` of type :math:`m` attends over its
    :math:`r`-neighbours with per-head scores, and then over the relation types reaching it
    (plus itself) with a relation-type attention:

    .. math::
        \alpha^{r}_{ij} = \operatorname{softmax}_{j \in \mathcal{N}_r(i)}\big(
            \sigma(\mathbf{a}_r^{\top}[W_m x_i \,\Vert\, W_s x_j])\big), \qquad
        h_{i,r} = \sum_{j \in \mathcal{N}_r(i)} \alpha^{r}_{ij} W_s x_j,

    .. math::
        \beta_{i,r} = \operatorname{softmax}_{r \in \mathcal{R}(i) \cup \{\mathrm{self}\}}
            \big(\mathbf{q}_{m,r}^{\top} W_m x_i\big), \qquad
        h_i' = \sum_{r} \beta_{i,r}\, h_{i,r}, \quad h_{i,\mathrm{self}} = W_m x_i,

    with :math:`\sigma` LeakyReLU, heads concatenated, and :math:`\mathcal{R}(i)` the
    relations in which :math:`i` has at least one neighbour. Stacking :math:`T` layers lets
    layer :math:`t` decompose the meta relations of order :math:`t`
    (:class:`graphkit.nn.models.latte.LATTE` keeps every layer's output). Compared with PyG's
    :class:`~torch_geometric.nn.conv.HGTConv`, there is no relation-specific message matrix:
    relations are weighed by the relation-type attention :math:`\beta`, which the model
    exposes (``return_attention_weights=True``).

    Args:
        in_channels (int or Dict[str, int]): input width per node type, or one for all;
            ``-1`` for lazy initialisation.
        out_channels (int): output width (divisible by ``heads``).
        metadata (Tuple[List[str], List[Tuple[str, str, str]]]): node and edge types,
            as ``HeteroData.metadata()``.
        heads (int): attention heads. (default: ``2``)
        dropout (float): dropout on the output. (default: ``0.2``)
        attn_dropout (float): dropout on the neighbour attention. (default: ``0.2``)
        negative_slope (float): LeakyReLU slope of the scores. (default: ``0.2``)

    Shapes:
        - **input:** ``x_dict`` ``{type: [N_type, F_type]}`` (dense, or sparse CSR for wide
          sparse features such as bag-of-words: the projection then costs the non-zeros),
          ``edge_index_dict`` ``{edge type: [2, E]}`` (COO / ``EdgeIndex``) or
          ``torch.sparse`` ``adj_t`` ``[N_dst, N_src]``; edge types absent from the dict are
          treated as empty.
        - **output:** ``{type: [N_type, out_channels]}`` for every node type of ``x_dict``
          (or of ``out_types``).

    Scores are split into per-node halves (:math:`\mathbf{a}_r^{\top}[u \Vert v]` =
    :math:`\mathbf{a}_{r,1}^{\top} u + \mathbf{a}_{r,2}^{\top} v`) gathered per edge, and
    the weighted sums run as one weighted ``embedding_bag`` per head over the edges sorted by
    destination, so the forward pass forms no ``[E, heads, channels]`` tensor. A COO
    ``edge_index`` already sorted by destination (or a CSR ``adj_t``) is used without sorting; sort it once
    (``torch_geometric.utils.sort_edge_index(..., sort_by_row=False)``) when training
    full-batch.
    """

    def __init__(self, in_channels: Union[int, Dict[str, int]], out_channels: int,
                 metadata: Metadata, heads: int = 2, dropout: float = 0.2,
                 attn_dropout: float = 0.2, negative_slope: float = 0.2) -> None:
        super().__init__()
        node_types, edge_types = list(metadata[0]), [tuple(e) for e in metadata[1]]
        if not node_types:
            raise ValueError("LATTEConv: metadata has no node types")
        for et in edge_types:
            if len(et) != 3 or et[0] not in node_types or et[2] not in node_types:
                raise ValueError(f"LATTEConv: edge type {et} names a node type missing from "
                                 f"metadata node types {node_types}")
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
            raise ValueError(f"LATTEConv: heads must be a positive int, got {heads!r}")
        if out_channels % heads:
            raise ValueError(f"LATTEConv: out_channels={out_channels} is not divisible by "
                             f"heads={heads}")
        if not isinstance(in_channels, dict):
            in_channels = {n: in_channels for n in node_types}
        missing = [n for n in node_types if n not in in_channels]
        if missing:
            raise ValueError(f"LATTEConv: in_channels has no width for node types {missing}")
        self.in_channels = dict(in_channels)
        self.out_channels, self.heads = out_channels, heads
        self.node_types, self.edge_types = node_types, edge_types
        self.dropout, self.attn_dropout, self.negative_slope = dropout, attn_dropout, negative_slope
        d = out_channels // heads
        self.lin = nn.ModuleDict({n: Linear(self.in_channels[n], out_channels,
                                            weight_initializer="glorot")
                                  for n in node_types})
        self.att_src = nn.ParameterDict({_key(e): nn.Parameter(torch.empty(heads, d))
                                         for e in edge_types})
        self.att_dst = nn.ParameterDict({_key(e): nn.Parameter(torch.empty(heads, d))
                                         for e in edge_types})
        # relation-type queries: one per incoming relation of a type, plus "self"
        self.incoming = {n: [e for e in edge_types if e[2] == n] for n in node_types}
        self.rel_query = nn.ParameterDict({
            n: nn.Parameter(torch.empty(len(self.incoming[n]) + 1, heads, d))
            for n in node_types})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.lin.values():
            lin.reset_parameters()
        for p in list(self.att_src.values()) + list(self.att_dst.values()):
            nn.init.xavier_uniform_(p)
        for p in self.rel_query.values():
            nn.init.xavier_uniform_(p.view(p.size(0), -1))

    def forward(self, x_dict: Dict[str, Tensor], edge_index_dict: Dict[EdgeType, object],
                return_attention_weights: bool = False,
                out_types: Optional[Iterable[str]] = None):
        r"""Args:
            x_dict: ``{node type: [N_type, F_type]}`` features.
            edge_index_dict: ``{edge type: adjacency}`` (see the class notes).
            return_attention_weights (bool): also return the relation-type attention
                :math:`\beta` per node type, ``[N_type, R_type + 1, heads]`` (index 0 is
                "self"). (default: ``False``)
            out_types (Iterable[str], optional): compute only these node types' outputs
                (only their relations and the node types feeding them are touched); a model
                stacking layers needs no more than its target type in the last layer.
                (default: every type of ``x_dict``)
        """
        H, D = self.heads, self.out_channels // self.heads
        for n in x_dict:
            if n not in self.lin:
                raise ValueError(f"LATTEConv: unknown node type {n!r} (metadata: "
                                 f"{self.node_types})")
        for et in edge_index_dict:
            if not isinstance(et, tuple) or tuple(et) not in self.edge_types:
                raise ValueError(f"LATTEConv: unknown edge type {et} (not in metadata)")
        if out_types is None:
            outs = list(x_dict)
        else:
            outs = list(out_types)
            for n in outs:
                if n not in x_dict:
                    raise ValueError(f"LATTEConv: out_types names node type {n!r}, which has "
                                     f"no features in x_dict")
        needed = set(outs) | {et[0] for n in outs for et in self.incoming[n]
                              if et in edge_index_dict and et[0] in x_dict}
        h: Dict[str, Tensor] = {}
        for n, x in x_dict.items():
            want = self.in_channels[n]
            if x.dim() != 2 or (want != -1 and x.size(1) != want):
                raise ValueError(f"LATTEConv: node type {n!r} has features of shape "
                                 f"{tuple(x.shape)}, expected [N, {want}]")
            if n in needed:
                h[n] = self.lin[n](x).view(-1, H, D)
            elif isinstance(self.lin[n].weight, nn.parameter.UninitializedParameter):
                self.lin[n](x[:1])  # lazy widths are fixed by the first call, used or not
        out, betas = {}, {}
        for n in outs:
            hn = h[n]
            num = hn.size(0)
            msgs, present = [hn], [torch.ones(num, dtype=torch.bool, device=hn.device)]
            for et in self.incoming[n]:
                src_t = et[0]
                adj = edge_index_dict.get(et)
                if src_t not in h:
                    if adj is not None:
                        raise ValueError(f"LATTEConv: edge type {et} needs features of node "
                                         f"type {src_t!r}")
                    adj = None
                src = dst = ptr = None
                if adj is not None:
                    src, dst, ptr = _by_destination(adj, et, h[src_t].size(0), num)
                if src is None or src.numel() == 0:
                    msgs.append(hn.new_zeros(num, H, D))
                    present.append(torch.zeros(num, dtype=torch.bool, device=hn.device))
                    continue
                hs = h[src_t]
                k = _key(et)
                # per-node halves of the scores, gathered per edge: [E, H], never [E, H, D]
                e = (hs * self.att_src[k]).sum(-1)[src] + (hn * self.att_dst[k]).sum(-1)[dst]
                a = softmax(F.leaky_relu(e, self.negative_slope), dst, num_nodes=num)
                a = F.dropout(a, self.attn_dropout, self.training)
                msgs.append(_weighted_sum(hs, src, ptr, a))
                present.append(ptr.diff() > 0)
            stack = torch.stack(msgs, dim=1)                          # [N, R+1, H, D]
            q = self.rel_query[n]                                      # [R+1, H, D]
            scores = torch.einsum("nhd,rhd->nrh", hn, q)               # [N, R+1, H]
            mask = torch.stack(present, dim=1).unsqueeze(-1)
            beta = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
            o = torch.einsum("nrh,nrhd->nhd", beta, stack).reshape(num, H * D)
            out[n] = F.dropout(o, self.dropout, self.training)
            betas[n] = beta
        if return_attention_weights:
            return out, betas
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(-1, {self.out_channels}, heads={self.heads})"
                if all(v == -1 for v in self.in_channels.values()) else
                f"{self.__class__.__name__}({self.out_channels}, heads={self.heads}, "
                f"node_types={len(self.node_types)}, edge_types={len(self.edge_types)})")
