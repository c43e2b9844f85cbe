"""Token mixers for :class:`~graphkit.backbones.MetaFormerBlock`, each with a grid form and a
graph form: pooling (PoolFormer / parameter-free max), PoNet's multi-granularity pooling,
EfficientMod's modulation, and plain self-attention (grids and sequences)."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module, Parameter
from torch_geometric.utils import scatter, softmax

from graphkit.backbones._utils import (
    check_features,
    check_index,
    closed_max,
    closed_mean,
    open_neighbourhood,
    pointwise,
)
from graphkit.backbones.metaformer import trunc_normal_init


class PoolMixer(Module):
    r"""Parameter-free pooling token mixer: PoolFormer's from `"MetaFormer Is Actually What You
    Need for Vision" <https://arxiv.org/abs/2111.11418>`_ (Yu et al., CVPR 2022) with
    ``aggr="mean"``, and the max-pool of `"Learning Features with Parameter-Free Layers"
    <https://arxiv.org/abs/2202.02777>`_ (Han et al., ICLR 2022) with ``aggr="max"``.

    On images it pools a :math:`k \times k` window (stride 1, padding :math:`k/2`; the average
    ignores the padding, ``count_include_pad=False``). On graphs the window is the closed
    neighbourhood :math:`\tilde{\mathcal{N}}(i) = \mathcal{N}(i) \cup \{i\}`:

    .. math::
        T(\mathbf{X})_i = \frac{1}{|\tilde{\mathcal{N}}(i)|}
            \sum_{j \in \tilde{\mathcal{N}}(i)} \mathbf{x}_j - \mathbf{x}_i
        \quad\text{i.e.}\quad T = -(\mathbf{I} - \tilde{\mathbf{D}}^{-1}\tilde{\mathbf{A}}),
        \qquad
        T_{\max}(\mathbf{X})_i = \max_{j \in \tilde{\mathcal{N}}(i)} \mathbf{x}_j .

    On the 8-neighbour grid ("king") graph this equals ``AvgPool2d(3, 1, 1,
    count_include_pad=False)(x) - x`` and ``MaxPool2d(3, 1, 1)(x)`` exactly. Self-loops in the
    input graph are ignored and every node counts itself once, so a graph with or without
    self-loops gives the same result; parallel edges count with their multiplicity (mean).
    The mean form is PyG's ``SimpleConv(aggr="mean", combine_root="self_loop")(x, edge_index)
    - x``.

    Args:
        aggr (str, optional): ``"mean"`` or ``"max"``. (default: :obj:`"mean"`)
        subtract_self (bool, optional): Subtract :math:`\mathbf{x}_i` (the block already has a
            residual). (default: :obj:`True` for ``"mean"``, :obj:`False` for ``"max"``,
            as in the papers)
        pool_size (int, optional): Odd window size :math:`k` on images. (default: :obj:`3`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)`, or node features :math:`(N, C)` with
          ``edge_index`` :math:`(2, |\mathcal{E}|)` (COO, ``EdgeIndex``) or an
          :math:`(N, N)` sparse adjacency (row = target)
        - **output:** same shape as the input
    """

    def __init__(self, aggr: str = "mean", subtract_self: Optional[bool] = None,
                 pool_size: int = 3) -> None:
        super().__init__()
        if aggr not in ("mean", "max"):
            raise ValueError(f"PoolMixer: aggr must be 'mean' or 'max' (got {aggr!r})")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1 \
                or pool_size % 2 == 0:
            raise ValueError(f"PoolMixer: pool_size must be an odd positive int (got {pool_size!r})")
        self.aggr = aggr
        self.subtract_self = (aggr == "mean") if subtract_self is None else bool(subtract_self)
        self.pool_size = pool_size

    def reset_parameters(self) -> None:
        pass

    def forward(self, x: Tensor, edge_index=None, batch: Optional[Tensor] = None) -> Tensor:
        """``x`` images ``(B, C, H, W)`` (no ``edge_index``) or nodes ``(N, C)`` with the graph.
        ``batch`` is accepted (and not needed) so that every graph mixer takes the same
        arguments."""
        name = type(self).__name__
        if edge_index is None:
            check_features(name, x, dims=(4,))
            k = self.pool_size
            if self.aggr == "mean":
                out = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
            else:
                out = F.max_pool2d(x, k, 1, k // 2)
        else:
            check_features(name, x, dims=(2,))
            src, dst = open_neighbourhood(name, edge_index, x.size(0))
            out = closed_mean(x, src, dst) if self.aggr == "mean" else closed_max(x, src, dst)
        return out - x if self.subtract_self else out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(aggr={self.aggr!r}, "
                f"subtract_self={self.subtract_self})")


class PoNetMixer(Module):
    r"""Multi-granularity pooling token mixer from `"PoNet: Pooling Network for Efficient Token
    Mixing in Long Sequences" <https://arxiv.org/abs/2110.02442>`_ (Tan et al., ICLR 2022),
    on sequences and on graphs. Linear maps (with bias) give
    :math:`\mathbf{Q}, \mathbf{K}, \mathbf{O}, \mathbf{S}, \mathbf{L}`; per head
    (:math:`d_h = C / H`):

    .. math::
        \mathbf{g}_b = \sum_{l \in b} \mathrm{softmax}_{l \in b}\Big(
            \frac{\bar{\mathbf{q}}_b^{\top}\mathbf{K}_l}{\sqrt{d_h}}\Big) \mathbf{K}_l,
        \quad
        \mathbf{s}_l = \max_{m \in \mathrm{seg}(l)} \mathbf{S}_m,
        \quad
        \boldsymbol{\ell}_l = \max_{m \in \tilde{\mathcal{N}}(l)} \mathbf{L}_m,
        \quad
        \mathbf{y}_l = (\mathbf{g}_{b(l)} + \mathbf{s}_l) \odot \mathbf{O}_l + \boldsymbol{\ell}_l

    with :math:`\bar{\mathbf{q}}_b` the mean of :math:`\mathbf{Q}` over sequence / graph
    :math:`b`. On sequences ``(B, L, C)`` the local window is the 3-token window
    (``MaxPool1d(3, 1, 1)``) and the segments are ``segments`` contiguous chunks of every
    sequence (the LRA code's ``segment_num``); on graphs the local window is the closed
    neighbourhood, the global pool runs per graph (``batch``) and the segment is a ``segment``
    id per node (default: the node's graph). :math:`5(C^2 + C)` parameters; cost
    :math:`\mathcal{O}((N + |\mathcal{E}|)\,C)` besides the maps. The readout form (pooled to
    one vector per set) is :class:`graphkit.nn.aggr.PoNetAggregation`.

    Args:
        channels (int): Channels :math:`C`.
        heads (int, optional): Heads :math:`H`, dividing :math:`C`. (default: :obj:`1`)
        segments (int, optional): Chunks per sequence for segment max-pooling (sequences only).
            (default: :obj:`1`)

    Shapes:
        - **input:** sequences :math:`(B, L, C)`, or nodes :math:`(N, C)` with ``edge_index``,
          optional ``batch`` :math:`(N)` and ``segment`` :math:`(N)`
        - **output:** same shape as the input
    """

    def __init__(self, channels: int, heads: int = 1, segments: int = 1) -> None:
        super().__init__()
        for key, val in (("channels", channels), ("heads", heads), ("segments", segments)):
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"PoNetMixer: {key} must be a positive int (got {val!r})")
        if channels % heads:
            raise ValueError(f"PoNetMixer: heads ({heads}) must divide channels ({channels})")
        self.channels, self.heads, self.segments = channels, heads, segments
        self.lin = Linear(channels, 5 * channels)  # Q, K, O, S, L
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: Tensor, edge_index=None, batch: Optional[Tensor] = None,
                segment: Optional[Tensor] = None) -> Tensor:
        name = type(self).__name__
        if edge_index is None:
            check_features(name, x, self.channels, dims=(3,))
            b, length, c = x.shape
            q, k, o, s, loc = self.lin(x).chunk(5, dim=-1)
            local = F.max_pool1d(loc.transpose(1, 2), 3, 1, 1).transpose(1, 2)
            g = self._global(q.reshape(b * length, c), k.reshape(b * length, c),
                             torch.arange(b, device=x.device).repeat_interleave(length), b)
            seg_id = (torch.arange(length, device=x.device) * self.segments) // length
            seg = torch.arange(b, device=x.device).view(-1, 1) * self.segments + seg_id
            seg = seg.view(-1)
            smax = scatter(s.reshape(b * length, c), seg, 0, b * self.segments, reduce="max")
            out = (g.repeat_interleave(length, 0) + smax[seg]) * o.reshape(b * length, c)
            return out.view(b, length, c) + local
        check_features(name, x, self.channels, dims=(2,))
        n = x.size(0)
        batch, num_graphs = check_index(name, "batch", batch, n, x.device)
        if segment is None:
            segment, num_segments = batch, num_graphs
        else:
            segment, num_segments = check_index(name, "segment", segment, n, x.device)
        src, dst = open_neighbourhood(name, edge_index, n)
        q, k, o, s, loc = self.lin(x).chunk(5, dim=-1)
        g = self._global(q, k, batch, num_graphs)
        smax = scatter(s, segment, 0, num_segments, reduce="max")
        return (g[batch] + smax[segment]) * o + closed_max(loc, src, dst)

    def _global(self, q: Tensor, k: Tensor, index: Tensor, num: int) -> Tensor:
        h, d = self.heads, self.channels // self.heads
        q_mean = scatter(q, index, 0, num, reduce="mean").view(-1, h, d)
        kh = k.view(-1, h, d)
        logits = (q_mean[index] * kh).sum(-1) / math.sqrt(d)
        alpha = softmax(logits, index, num_nodes=num, dim=0)
        return scatter(alpha.unsqueeze(-1) * kh, index, 0, num, reduce="sum").view(num, -1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"


class ModulationMixer(Module):
    r"""Efficient modulation from `"Efficient Modulation for Vision Networks"
    <https://arxiv.org/abs/2403.19963>`_ (Ma et al., ICLR 2024), on images and on graphs:

    .. math::
        \mathbf{v} = \sigma(\mathbf{W}_1 \mathbf{x} + \mathbf{b}_1), \quad
        \mathbf{c} = g\big(\sigma(\mathrm{Ctx}(f(\mathbf{x})))\big), \quad
        \mathrm{Mod}(\mathbf{x}) = \mathbf{W}_2\big(\mathbf{v} \odot
            \mathrm{tile}_r(\mathbf{c})\big) + \mathbf{b}_2

    with :math:`\mathbf{W}_1: C \to rC`, :math:`f, g` linear maps :math:`C \to C` and
    :math:`\sigma` = GELU (none on :math:`\mathbf{v}` when :math:`r = 1`); the context
    :math:`C` channels are tiled :math:`r` times to meet the :math:`rC` values. On images
    ``Ctx`` is a depthwise :math:`k \times k` convolution with bias (:math:`k = 7` in every
    released model); with ``context="graph"`` it is a per-channel weighted combination of the
    node and the mean of its neighbours,
    :math:`\mathrm{Ctx}(\mathbf{u})_i = \mathbf{a} \odot \mathbf{u}_i + \mathbf{m} \odot
    \frac{1}{|\mathcal{N}(i)|}\sum_{j \in \mathcal{N}(i)} \mathbf{u}_j + \mathbf{c}_0`
    (isolated nodes: the mean is 0). The graph context is an adaptation, not in the paper.

    Wrapped in :class:`~graphkit.backbones.MetaFormerBlock` with ``mlp_ratio=0``,
    ``norm="layer"`` and LayerScale 1e-4 it is EfficientMod's ``BasicBlock``: 61,312
    parameters at :math:`C = 64, r = 6, k = 7`, 20,032 at :math:`r = 1`.

    Args:
        channels (int): Channels :math:`C`.
        mlp_ratio (int, optional): Expansion :math:`r` of the value branch. (default: :obj:`1`)
        context (str, optional): ``"conv"`` (images) or ``"graph"``. (default: :obj:`"conv"`)
        kernel_size (int, optional): Odd depthwise kernel size :math:`k` (``"conv"``).
            (default: :obj:`7`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)` (``"conv"``), or nodes :math:`(N, C)` with
          ``edge_index`` (``"graph"``)
        - **output:** same shape as the input
    """

    def __init__(self, channels: int, mlp_ratio: int = 1, context: str = "conv",
                 kernel_size: int = 7) -> None:
        super().__init__()
        for key, val in (("channels", channels), ("mlp_ratio", mlp_ratio),
                         ("kernel_size", kernel_size)):
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"ModulationMixer: {key} must be a positive int (got {val!r})")
        if context not in ("conv", "graph"):
            raise ValueError(f"ModulationMixer: context must be 'conv' or 'graph' (got {context!r})")
        if kernel_size % 2 == 0:
            raise ValueError(f"ModulationMixer: kernel_size must be odd (got {kernel_size})")
        self.channels, self.mlp_ratio = channels, mlp_ratio
        self.context, self.kernel_size = context, kernel_size
        self.fc1 = Linear(channels, mlp_ratio * channels)
        self.f = Linear(channels, channels)
        if context == "conv":
            self.ctx_weight = Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        else:
            self.ctx_weight = Parameter(torch.empty(2, channels))  # self, neighbour-mean
        self.ctx_bias = Parameter(torch.empty(channels))
        self.g = Linear(channels, channels)
        self.fc2 = Linear(mlp_ratio * channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.fc1, self.f, self.g, self.fc2):
            trunc_normal_init(lin)
        if self.context == "conv":  # the default Conv2d initialisation
            torch.nn.init.kaiming_uniform_(self.ctx_weight, a=math.sqrt(5))
            bound = 1.0 / math.sqrt(self.kernel_size ** 2)
        else:
            torch.nn.init.uniform_(self.ctx_weight, -1.0 / math.sqrt(2), 1.0 / math.sqrt(2))
            bound = 1.0 / math.sqrt(2)
        torch.nn.init.uniform_(self.ctx_bias, -bound, bound)

    def forward(self, x: Tensor, edge_index=None, batch: Optional[Tensor] = None) -> Tensor:
        """``x`` images (``"conv"``) or nodes with ``edge_index`` (``"graph"``); ``batch`` is
        accepted (and not needed) so that every graph mixer takes the same arguments."""
        name = type(self).__name__
        u = pointwise(x, self.f.weight, self.f.bias)
        if self.context == "conv":
            if edge_index is not None:
                raise ValueError(f"{name}: built with context='conv' (images); use "
                                 "context='graph' for graphs")
            check_features(name, x, self.channels, dims=(4,))
            k = self.kernel_size
            ctx = F.conv2d(u, self.ctx_weight, self.ctx_bias, 1, k // 2, 1, self.channels)
        else:
            if edge_index is None:
                raise ValueError(f"{name}: context='graph' needs 'edge_index'")
            check_features(name, x, self.channels, dims=(2,))
            src, dst = open_neighbourhood(name, edge_index, x.size(0))
            total = u.new_zeros(u.shape).index_add(0, dst, u.index_select(0, src))
            deg = torch.bincount(dst, minlength=x.size(0)).clamp(min=1).to(u.dtype)
            ctx = (self.ctx_weight[0] * u + self.ctx_weight[1] * total / deg.unsqueeze(-1)
                   + self.ctx_bias)
        ctx = pointwise(F.gelu(ctx), self.g.weight, self.g.bias)
        v = pointwise(x, self.fc1.weight, self.fc1.bias)
        if self.mlp_ratio > 1:
            v = F.gelu(v)
            dims = [1] * x.dim()
            dims[1 if x.dim() == 4 else -1] = self.mlp_ratio
            ctx = ctx.repeat(*dims)
        return pointwise(v * ctx, self.fc2.weight, self.fc2.bias)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, mlp_ratio={self.mlp_ratio}, "
                f"context={self.context!r})")


class SelfAttentionMixer(Module):
    r"""Multi-head self-attention over the tokens of a sequence ``(B, L, C)`` or the pixels of
    an image ``(B, C, H, W)``, as in `"Attention Is All You Need"
    <https://arxiv.org/abs/1706.03762>`_ and EfficientMod's last stages:

    .. math::
        \mathrm{Attn}(\mathbf{X}) = \big[\mathrm{softmax}(\mathbf{Q}_h\mathbf{K}_h^{\top} /
            \sqrt{d_h})\mathbf{V}_h\big]_{h=1}^{H}\mathbf{W}_O + \mathbf{b}_O

    Args:
        channels (int): Channels :math:`C`.
        heads (int, optional): Heads :math:`H`. (default: :obj:`8`)
        head_dim (int, optional): Width :math:`d_h` of every head; default
            :math:`\max(C / H, 32)` (EfficientMod's rule).
        qkv_bias (bool, optional): Bias on the Q/K/V map. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(B, L, C)` or :math:`(B, C, H, W)`
        - **output:** same shape as the input
    """

    def __init__(self, channels: int, heads: int = 8, head_dim: Optional[int] = None,
                 qkv_bias: bool = False) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"SelfAttentionMixer: channels must be a positive int (got {channels!r})")
        self.channels, self.heads = channels, heads
        self.head_dim = head_dim or max(channels // heads, 32)
        self.qkv = Linear(channels, 3 * heads * self.head_dim, bias=qkv_bias)
        self.proj = Linear(heads * self.head_dim, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_init(self.qkv)
        trunc_normal_init(self.proj)

    def forward(self, x: Tensor) -> Tensor:
        check_features(type(self).__name__, x, self.channels, dims=(3, 4))
        image = x.dim() == 4
        if image:
            b, c, hh, ww = x.shape
            x = x.flatten(2).transpose(1, 2)
        b, length, _ = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        out = self.proj(out.transpose(1, 2).reshape(b, length, -1))
        if image:
            out = out.transpose(1, 2).reshape(b, c, hh, ww)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, heads={self.heads}, "
                f"head_dim={self.head_dim})")


__all__ = ["PoolMixer", "PoNetMixer", "ModulationMixer", "SelfAttentionMixer"]
