"""Image encoders built from MetaFormer blocks: PoolFormer and EfficientMod, native (no timm)."""
from __future__ import annotations

from typing import List, Optional, Sequence

from torch import Tensor
from torch.nn import Conv2d, Linear, Module, ModuleList, Sequential

from graphkit.backbones._utils import ChannelNorm, check_features
from graphkit.backbones.metaformer import MetaFormerBlock, trunc_normal_init
from graphkit.backbones.mixers import ModulationMixer, PoolMixer, SelfAttentionMixer


def _positive_ints(name: str, key: str, values: Sequence[int]) -> List[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
                         for v in values):
        raise ValueError(f"{name}: {key} must be a non-empty list of positive ints (got {values!r})")
    return values


class _ConvEmbed(Module):
    """Strided convolution (+ optional channel LayerNorm): stems and downsampling layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int, norm: bool = False) -> None:
        super().__init__()
        self.proj = Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.norm = ChannelNorm(out_channels, "layer") if norm else None

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        return self.norm(x) if self.norm is not None else x


class _Encoder(Module):
    """Stages of blocks between a stem and a norm → global average pool → linear head."""

    in_channels: int
    num_classes: int

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features ``(B, C_last)`` (the node-encoder output)."""
        check_features(type(self).__name__, x, self.in_channels, dims=(4,))
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            for block in stage:
                x = block(x)
        x = self.norm(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)
        return self.head(x) if self.head is not None else x

    def reset_parameters(self) -> None:
        self.stem.reset_parameters()
        for down in self.downsamples:
            down.reset_parameters()
        for stage in self.stages:
            for block in stage:
                block.reset_parameters()
        self.norm.reset_parameters()
        if self.head is not None:
            trunc_normal_init(self.head)


class PoolFormerEncoder(_Encoder):
    r"""PoolFormer from `"MetaFormer Is Actually What You Need for Vision"
    <https://arxiv.org/abs/2111.11418>`_ (Yu et al., CVPR 2022), built natively: a
    :math:`7 \times 7` stride-4 stem, four stages of
    :class:`~graphkit.backbones.MetaFormerBlock` with the pooling mixer
    :math:`T(\mathbf{X}) = \mathrm{AvgPool}_{3\times3}(\mathbf{X}) - \mathbf{X}`, a
    :math:`3 \times 3` stride-2 convolution between stages, then GroupNorm, global average
    pooling and a linear classifier. The registered ``poolformer_s12`` … ``poolformer_m48``
    have the papers' parameter counts (S12: 11,915,176). Use it as an image node encoder with
    ``num_classes=0`` (then the output is the pooled feature vector).

    Args:
        layers (Sequence[int]): Blocks per stage.
        embed_dims (Sequence[int]): Channels per stage.
        mlp_ratio (float, optional): MLP expansion. (default: :obj:`4.0`)
        pool_size (int, optional): Pooling window. (default: :obj:`3`)
        in_channels (int, optional): Image channels. (default: :obj:`3`)
        num_classes (int, optional): Classifier outputs; ``0`` for none. (default: :obj:`1000`)
        layer_scale_init_value (float, optional): LayerScale init. (default: :obj:`1e-5`)
        drop_path_rate (float, optional): Largest stochastic-depth rate (linear in depth).
            (default: :obj:`0.0`)
        stem (Sequence[int], optional): Stem ``(kernel, stride, padding)``; small images (e.g.
            8x8 digits) want ``(3, 1, 1)``. (default: :obj:`(7, 4, 2)`)
        mixer (str, optional): ``"mean"`` (PoolFormer) or ``"max"`` (parameter-free max).
            (default: :obj:`"mean"`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, \text{num\_classes})`, or :math:`(B, C_{last})` when
          ``num_classes=0``
    """

    def __init__(self, layers: Sequence[int], embed_dims: Sequence[int], mlp_ratio: float = 4.0,
                 pool_size: int = 3, in_channels: int = 3, num_classes: int = 1000,
                 layer_scale_init_value: Optional[float] = 1e-5, drop_path_rate: float = 0.0,
                 stem: Sequence[int] = (7, 4, 2), mixer: str = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        self.layers = _positive_ints(name, "layers", layers)
        self.embed_dims = _positive_ints(name, "embed_dims", embed_dims)
        if len(self.layers) != len(self.embed_dims):
            raise ValueError(f"{name}: layers ({len(self.layers)}) and embed_dims "
                             f"({len(self.embed_dims)}) must have the same length")
        if num_classes < 0:
            raise ValueError(f"{name}: num_classes must be >= 0 (got {num_classes})")
        self.in_channels, self.num_classes = in_channels, num_classes
        dims, total = self.embed_dims, sum(self.layers)
        self.stem = _ConvEmbed(in_channels, dims[0], *stem)
        self.downsamples = ModuleList(_ConvEmbed(dims[i - 1], dims[i], 3, 2, 1)
                                      for i in range(1, len(dims)))
        self.stages = ModuleList()
        k = 0
        for depth, dim in zip(self.layers, dims):
            blocks = []
            for _ in range(depth):
                rate = drop_path_rate * k / max(total - 1, 1)
                blocks.append(MetaFormerBlock(dim, PoolMixer(mixer, pool_size=pool_size),
                                              mlp_ratio, "group", layer_scale_init_value, rate))
                k += 1
            self.stages.append(Sequential(*blocks))
        self.norm = ChannelNorm(dims[-1], "group")
        self.head = Linear(dims[-1], num_classes) if num_classes > 0 else None
        self.reset_parameters()

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(layers={self.layers}, embed_dims={self.embed_dims}, "
                f"num_classes={self.num_classes})")


class EfficientModEncoder(_Encoder):
    r"""EfficientMod from `"Efficient Modulation for Vision Networks"
    <https://arxiv.org/abs/2403.19963>`_ (Ma et al., ICLR 2024), built natively: a
    :math:`7 \times 7` stride-4 stem with LayerNorm, four stages of modulation blocks
    :math:`\mathbf{x} + \boldsymbol{\gamma} \odot \mathrm{Mod}(\mathrm{LN}(\mathbf{x}))`
    (:class:`~graphkit.backbones.ModulationMixer` in a
    :class:`~graphkit.backbones.MetaFormerBlock` without MLP sub-block) followed by
    ``attention_depths[i]`` plain attention blocks (no LayerScale), a :math:`3 \times 3`
    stride-2 convolution with LayerNorm between stages, then LayerNorm, global average pooling and
    a linear classifier. The registered ``efficientmod_xxs`` / ``_xs`` / ``_s`` have the
    papers' parameter counts (4,736,264 / 6,627,544 / 12,897,184). Tensors stay channel-first;
    the LayerNorms normalise every pixel over its channels, as the reference channel-last code.

    Args:
        depths (Sequence[int]): Modulation blocks per stage.
        embed_dims (Sequence[int]): Channels per stage.
        mlp_ratios (Sequence[Sequence[int]]): Expansion :math:`r` of every modulation block,
            per stage (alternating 1 and 6 in the released models).
        attention_depths (Sequence[int]): Attention blocks at the end of every stage.
        attention_mlp_ratios (Sequence[float]): MLP ratio of the attention blocks per stage.
        kernel_size (int, optional): Depthwise context kernel. (default: :obj:`7`)
        in_channels (int, optional): Image channels. (default: :obj:`3`)
        num_classes (int, optional): Classifier outputs; ``0`` for none. (default: :obj:`1000`)
        layer_scale_init_value (float, optional): LayerScale init of the modulation blocks.
            (default: :obj:`1e-4`)
        drop_path_rate (float, optional): Largest stochastic-depth rate. (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, \text{num\_classes})`, or :math:`(B, C_{last})` when
          ``num_classes=0``
    """

    def __init__(self, depths: Sequence[int], embed_dims: Sequence[int],
                 mlp_ratios: Sequence[Sequence[int]], attention_depths: Sequence[int],
                 attention_mlp_ratios: Sequence[float], kernel_size: int = 7,
                 in_channels: int = 3, num_classes: int = 1000,
                 layer_scale_init_value: float = 1e-4, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        name = type(self).__name__
        self.depths = _positive_ints(name, "depths", depths)
        self.embed_dims = _positive_ints(name, "embed_dims", embed_dims)
        self.attention_depths = [int(a) for a in attention_depths]
        n = len(self.depths)
        if not (len(self.embed_dims) == len(mlp_ratios) == len(self.attention_depths)
                == len(attention_mlp_ratios) == n):
            raise ValueError(f"{name}: depths, embed_dims, mlp_ratios, attention_depths and "
                             "attention_mlp_ratios must have one entry per stage")
        for i, (d, r) in enumerate(zip(self.depths, mlp_ratios)):
            if len(r) < d:
                raise ValueError(f"{name}: stage {i} has {d} blocks but {len(r)} mlp_ratios")
        self.in_channels, self.num_classes = in_channels, num_classes
        dims = self.embed_dims
        total = sum(self.depths) + sum(self.attention_depths)
        self.stem = _ConvEmbed(in_channels, dims[0], 7, 4, 3, norm=True)
        self.downsamples = ModuleList(_ConvEmbed(dims[i - 1], dims[i], 3, 2, 1, norm=True)
                                      for i in range(1, n))
        self.stages = ModuleList()
        k = 0
        for i in range(n):
            dim, blocks = dims[i], []
            for j in range(self.depths[i]):
                rate = drop_path_rate * k / max(total - 1, 1)
                mixer = ModulationMixer(dim, int(mlp_ratios[i][j]), "conv", kernel_size)
                blocks.append(MetaFormerBlock(dim, mixer, 0, "layer", layer_scale_init_value,
                                              rate))
                k += 1
            for _ in range(self.attention_depths[i]):
                rate = drop_path_rate * k / max(total - 1, 1)
                blocks.append(MetaFormerBlock(dim, SelfAttentionMixer(dim, 8),
                                              float(attention_mlp_ratios[i]), "layer", None, rate))
                k += 1
            self.stages.append(Sequential(*blocks))
        self.norm = ChannelNorm(dims[-1], "layer")
        self.head = Linear(dims[-1], num_classes) if num_classes > 0 else None
        self.reset_parameters()

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(depths={self.depths}, embed_dims={self.embed_dims}, "
                f"attention_depths={self.attention_depths}, num_classes={self.num_classes})")


__all__ = ["PoolFormerEncoder", "EfficientModEncoder"]
