"""The MetaFormer block: norm → token mixer → residual, norm → MLP → residual."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module, Parameter

from graphkit.backbones._utils import ChannelNorm, check_features, drop_path, pointwise, scale_channels


def trunc_normal_init(lin: Linear, std: float = 0.02) -> None:
    """PoolFormer / EfficientMod initialisation of point-wise maps: weights from a normal
    truncated at two standard deviations, zero bias."""
    torch.nn.init.trunc_normal_(lin.weight, std=std, a=-2 * std, b=2 * std)
    if lin.bias is not None:
        torch.nn.init.zeros_(lin.bias)


class ChannelMLP(Module):
    r"""Point-wise two-layer MLP :math:`\mathbf{W}_2\,\sigma(\mathbf{W}_1\mathbf{x} +
    \mathbf{b}_1) + \mathbf{b}_2` over the channels of nodes ``(N, C)``, sequences
    ``(B, L, C)`` or images ``(B, C, H, W)`` (there a pair of 1x1 convolutions),
    :math:`2C\,C_h + C_h + C` parameters.

    Args:
        channels (int): Input and output channels :math:`C`.
        hidden_channels (int): Hidden channels :math:`C_h`.
        dropout (float, optional): Dropout after the activation and after the output map.
            (default: :obj:`0.0`)
    """

    def __init__(self, channels: int, hidden_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.channels, self.hidden_channels, self.dropout = channels, hidden_channels, dropout
        self.fc1 = Linear(channels, hidden_channels)
        self.fc2 = Linear(hidden_channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_init(self.fc1)
        trunc_normal_init(self.fc2)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(pointwise(x, self.fc1.weight, self.fc1.bias))
        x = F.dropout(x, self.dropout, self.training)
        x = pointwise(x, self.fc2.weight, self.fc2.bias)
        return F.dropout(x, self.dropout, self.training)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, {self.hidden_channels})"


class MetaFormerBlock(Module):
    r"""The MetaFormer block from the `"MetaFormer Is Actually What You Need for Vision"
    <https://arxiv.org/abs/2111.11418>`_ paper (Yu et al., CVPR 2022), with a pluggable token
    mixer:

    .. math::
        \mathbf{X}' &= \mathbf{X} + \mathrm{DropPath}\big(\boldsymbol{\gamma}_1 \odot
            \mathrm{TokenMixer}(\mathrm{Norm}_1(\mathbf{X}))\big) \\
        \mathbf{Y} &= \mathbf{X}' + \mathrm{DropPath}\big(\boldsymbol{\gamma}_2 \odot
            \mathrm{MLP}(\mathrm{Norm}_2(\mathbf{X}'))\big)

    with per-channel LayerScale vectors :math:`\boldsymbol{\gamma}` and
    :math:`\mathrm{MLP} = \mathrm{Linear}(C, rC) \to \mathrm{GELU} \to \mathrm{Linear}(rC, C)`.
    The block works on images ``(B, C, H, W)`` (1x1 convolutions, as PoolFormer), on sequences
    ``(B, L, C)`` and on node features ``(N, C)``; any extra positional or keyword argument of
    :meth:`forward` (``edge_index``, ``batch``, ...) goes to the mixer, so a graph mixer makes it
    a graph block: ``block(x, edge_index, batch=batch)``.

    With :class:`~graphkit.backbones.PoolMixer` and the defaults it is PoolFormer's block and has
    :math:`8C^2 + 11C` parameters (33,472 at :math:`C = 64`). ``mlp_ratio=0`` drops the MLP
    sub-block (EfficientMod's modulation block is one residual branch around its mixer).

    Args:
        channels (int): Channels :math:`C`.
        mixer (torch.nn.Module): The token mixer; called as ``mixer(Norm_1(x), *args,
            **kwargs)`` and returning a tensor shaped like ``x``.
        mlp_ratio (float, optional): Hidden width of the MLP as a multiple of :math:`C`; ``0``
            for no MLP sub-block. (default: :obj:`4.0`)
        norm (str, optional): ``"group"`` (GroupNorm with one group: over :math:`(C, H, W)` on
            images, PoolFormer) or ``"layer"`` (over the channels of every token, EfficientMod);
            the same on node features. (default: :obj:`"group"`)
        layer_scale_init_value (float, optional): Initial value of :math:`\boldsymbol{\gamma}`;
            ``None`` for no LayerScale. (default: :obj:`1e-5`)
        drop_path (float, optional): Stochastic-depth rate of both branches (per row of dim 0:
            per image, or per node on node features). (default: :obj:`0.0`)
        dropout (float, optional): Dropout inside the MLP. (default: :obj:`0.0`)

    Shapes:
        - **input:** ``x`` :math:`(N, C)`, :math:`(B, L, C)` or :math:`(B, C, H, W)`, plus the
          mixer's arguments
        - **output:** same shape as ``x``
    """

    def __init__(self, channels: int, mixer: Module, mlp_ratio: float = 4.0,
                 norm: str = "group", layer_scale_init_value: Optional[float] = 1e-5,
                 drop_path: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"MetaFormerBlock: channels must be a positive int (got {channels!r})")
        if not isinstance(mixer, Module):
            raise TypeError(f"MetaFormerBlock: mixer must be a torch.nn.Module "
                            f"(got {type(mixer).__name__})")
        if not mlp_ratio >= 0:
            raise ValueError(f"MetaFormerBlock: mlp_ratio must be >= 0 (got {mlp_ratio!r})")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"MetaFormerBlock: drop_path must lie in [0, 1) (got {drop_path!r})")
        self.channels = channels
        self.mlp_ratio = float(mlp_ratio)
        self.layer_scale_init_value = layer_scale_init_value
        self.drop_path = float(drop_path)
        self.norm1 = ChannelNorm(channels, norm)
        self.mixer = mixer
        hidden = int(channels * mlp_ratio)
        if hidden > 0:
            self.norm2: Optional[ChannelNorm] = ChannelNorm(channels, norm)
            self.mlp: Optional[ChannelMLP] = ChannelMLP(channels, hidden, dropout)
        else:
            self.norm2, self.mlp = None, None
        if layer_scale_init_value is not None:
            self.layer_scale_1: Optional[Parameter] = Parameter(torch.empty(channels))
            self.layer_scale_2: Optional[Parameter] = (Parameter(torch.empty(channels))
                                                       if self.mlp is not None else None)
        else:
            self.layer_scale_1 = self.layer_scale_2 = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm1.reset_parameters()
        if hasattr(self.mixer, "reset_parameters"):
            self.mixer.reset_parameters()
        if self.mlp is not None:
            self.norm2.reset_parameters()
            self.mlp.reset_parameters()
        for ls in (self.layer_scale_1, self.layer_scale_2):
            if ls is not None:
                torch.nn.init.constant_(ls, self.layer_scale_init_value)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        check_features(type(self).__name__, x, self.channels)
        h = self.mixer(self.norm1(x), *args, **kwargs)
        if self.layer_scale_1 is not None:
            h = scale_channels(h, self.layer_scale_1)
        x = x + drop_path(h, self.drop_path, self.training)
        if self.mlp is not None:
            h = self.mlp(self.norm2(x))
            if self.layer_scale_2 is not None:
                h = scale_channels(h, self.layer_scale_2)
            x = x + drop_path(h, self.drop_path, self.training)
        return x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, mixer={self.mixer}, "
                f"mlp_ratio={self.mlp_ratio:g})")


def num_parameters(module: Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["MetaFormerBlock", "ChannelMLP", "num_parameters"]
