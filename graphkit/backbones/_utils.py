"""Shared machinery of :mod:`graphkit.backbones`: layouts, channel norms, point-wise linear maps,
stochastic depth, and the closed-neighbourhood reductions behind the graph mixers."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, Parameter

try:  # PyG >= 2.5
    from torch_geometric import EdgeIndex
except ImportError:  # pragma: no cover
    EdgeIndex = None
try:  # optional
    from torch_sparse import SparseTensor
except ImportError:  # pragma: no cover
    SparseTensor = None


def channel_dim(x: Tensor) -> int:
    """Channels sit at dim 1 of a 4-D image batch ``(B, C, H, W)`` and last otherwise
    (nodes ``(N, C)``, sequences ``(B, L, C)``)."""
    return 1 if x.dim() == 4 else -1


def check_features(name: str, x: Tensor, channels: Optional[int] = None,
                   dims: Tuple[int, ...] = (2, 3, 4)) -> None:
    """Raise a clear error unless ``x`` is a floating tensor of an accepted rank and width."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: 'x' must be a Tensor (got {type(x).__name__})")
    if x.dim() not in dims:
        kinds = {2: "(N, C) nodes", 3: "(B, L, C) sequences", 4: "(B, C, H, W) images"}
        raise ValueError(f"{name}: 'x' must be one of {', '.join(kinds[d] for d in dims)} "
                         f"(got shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise TypeError(f"{name}: 'x' must be a floating-point tensor (got {x.dtype})")
    if channels is not None and x.size(channel_dim(x)) != channels:
        raise ValueError(f"{name}: 'x' has {x.size(channel_dim(x))} channels at dim "
                         f"{channel_dim(x)} but the module was built with {channels}")


def pointwise(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """A :class:`~torch.nn.Linear` map over the channel dimension of any layout: a 1x1
    convolution on ``(B, C, H, W)``, a plain linear map on channel-last tensors."""
    if x.dim() == 4:
        return F.conv2d(x, weight[:, :, None, None], bias)
    return F.linear(x, weight, bias)


def scale_channels(x: Tensor, scale: Tensor) -> Tensor:
    """``x * scale`` with the per-channel vector broadcast along the channel dimension."""
    if x.dim() == 4:
        return x * scale.view(1, -1, 1, 1)
    return x * scale


class ChannelNorm(Module):
    r"""Normalisation over the channels, for nodes, sequences and images alike.

    ``kind="group"`` is :class:`~torch.nn.GroupNorm` with one group (PoolFormer's norm): on an
    image it normalises each sample over :math:`(C, H, W)`; ``kind="layer"`` normalises every
    token / pixel over its :math:`C` channels (LayerNorm, EfficientMod's norm). On ``(N, C)``
    node features both are a LayerNorm over the channels. :math:`2C` parameters.
    """

    def __init__(self, channels: int, kind: str = "group", eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in ("group", "layer"):
            raise ValueError(f"ChannelNorm: kind must be 'group' or 'layer' (got {kind!r})")
        self.channels, self.kind, self.eps = channels, kind, eps
        self.weight = Parameter(torch.empty(channels))
        self.bias = Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.ones_(self.weight)
        torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            if self.kind == "group":
                return F.group_norm(x, 1, self.weight, self.bias, self.eps)
            x = x.permute(0, 2, 3, 1)
            x = F.layer_norm(x, (self.channels,), self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)
        return F.layer_norm(x, (self.channels,), self.weight, self.bias, self.eps)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, kind={self.kind!r})"


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero the whole residual branch of a random subset of the rows of dim 0
    (images / sequences of a batch; nodes for ``(N, C)`` inputs) and rescale the rest."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.size(0),) + (1,) * (x.dim() - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask / keep


# ------------------------------------------------------------------------------------ graphs
def edge_pairs(name: str, edge_index, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``(source, target)`` node ids of a graph given as COO ``[2, E]`` (source, target), PyG
    ``EdgeIndex``, a ``torch.sparse`` COO/CSR adjacency or a ``SparseTensor`` (row = target,
    column = source, as PyG's ``adj_t``); ids are checked against ``num_nodes``."""
    if SparseTensor is not None and isinstance(edge_index, SparseTensor):
        if tuple(edge_index.sizes()) != (num_nodes, num_nodes):
            raise ValueError(f"{name}: sparse adjacency of shape {tuple(edge_index.sizes())} "
                             f"does not match the {num_nodes} nodes of 'x'")
        row, col, _ = edge_index.coo()
        return col, row
    if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        if tuple(edge_index.shape) != (num_nodes, num_nodes):
            raise ValueError(f"{name}: sparse adjacency of shape {tuple(edge_index.shape)} "
                             f"does not match the {num_nodes} nodes of 'x'")
        if edge_index.layout == torch.sparse_csr:
            crow = edge_index.crow_indices()
            row = torch.repeat_interleave(torch.arange(num_nodes, device=crow.device),
                                          crow[1:] - crow[:-1])
            return edge_index.col_indices().long(), row
        adj = edge_index.to_sparse_coo().coalesce()
        row, col = adj.indices()
        return col, row
    if EdgeIndex is not None and isinstance(edge_index, EdgeIndex):
        edge_index = edge_index.as_tensor()
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name}: 'edge_index' must be a Tensor, EdgeIndex or sparse matrix "
                        f"(got {type(edge_index).__name__})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name}: 'edge_index' must have shape [2, num_edges] "
                         f"(got {tuple(edge_index.shape)})")
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        raise TypeError(f"{name}: 'edge_index' must hold integer node ids (got {edge_index.dtype})")
    edge_index = edge_index.long()
    if edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            flat = ((edge_index < 0) | (edge_index >= num_nodes)).any(0).nonzero().view(-1)
            raise ValueError(f"{name}: 'edge_index' holds node id {lo if lo < 0 else hi} "
                             f"out of range [0, {num_nodes}) (first at edge {int(flat[0])})")
    return edge_index[0], edge_index[1]


def open_neighbourhood(name: str, edge_index, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``(source, target)`` without self-loops: the closed neighbourhood is then these edges
    plus the node itself, counted once whether or not the input graph had self-loops."""
    src, dst = edge_pairs(name, edge_index, num_nodes)
    keep = src != dst
    return src[keep], dst[keep]


def closed_mean(x: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    r""":math:`\frac{1}{d_i + 1}(\mathbf{x}_i + \sum_{j \to i} \mathbf{x}_j)` (no self-loops
    in ``src``/``dst``; parallel edges count with their multiplicity)."""
    n = x.size(0)
    total = x.index_add(0, dst, x.index_select(0, src))
    count = torch.bincount(dst, minlength=n).to(x.dtype) + 1.0
    return total / count.unsqueeze(-1)


def closed_max(x: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    r""":math:`\max(\mathbf{x}_i, \max_{j \to i} \mathbf{x}_j)` per channel; isolated nodes keep
    their own features (never a zero fill)."""
    index = dst.view(-1, 1).expand(-1, x.size(-1))
    return x.scatter_reduce(0, index, x.index_select(0, src), reduce="amax", include_self=True)


def check_index(name: str, what: str, index: Optional[Tensor], num_nodes: int,
                device: torch.device) -> Tuple[Tensor, int]:
    """A node-to-group vector (``batch``, a segment id): ``(index, num_groups)``; ``None``
    means one group."""
    if index is None:
        return torch.zeros(num_nodes, dtype=torch.long, device=device), 1
    if not isinstance(index, Tensor) or index.dim() != 1 or index.numel() != num_nodes:
        raise ValueError(f"{name}: '{what}' must be a 1-D tensor with one entry per node "
                         f"({num_nodes}), got {tuple(getattr(index, 'shape', ()))}")
    if index.is_floating_point():
        raise TypeError(f"{name}: '{what}' must hold integer ids (got {index.dtype})")
    index = index.long()
    if num_nodes == 0:
        return index, 0
    lo = int(index.min())
    if lo < 0:
        raise ValueError(f"{name}: '{what}' has a negative id {lo} at node "
                         f"{int((index < 0).nonzero()[0])}")
    return index, int(index.max()) + 1
