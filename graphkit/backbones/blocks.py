"""Stacking blocks: the parameter-free max bottleneck and VoVNet's one-shot aggregation, each for
images and for graphs."""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, BatchNorm2d, Conv2d, Linear, Module, ModuleList

from graphkit.backbones._utils import check_features, check_index, closed_max, open_neighbourhood


def _int(name: str, key: str, val) -> int:
    if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
        raise ValueError(f"{name}: {key} must be a positive int (got {val!r})")
    return val


def _bn(x: Tensor, bn: BatchNorm1d) -> Tensor:
    """Batch norm over the channel dim of ``(N, C)`` or ``(B, C, H, W)`` (as BatchNorm2d)."""
    if x.dim() == 4:
        b, c, h, w = x.shape
        return bn(x.reshape(b, c, h * w)).view(b, c, h, w)
    return bn(x)


def _pw(x: Tensor, weight: Tensor) -> Tensor:
    return F.conv2d(x, weight[:, :, None, None]) if x.dim() == 4 else F.linear(x, weight)


class MaxBottleneck(Module):
    r"""The parameter-free bottleneck of `"Learning Features with Parameter-Free Layers"
    <https://arxiv.org/abs/2202.02777>`_ (Han et al., ICLR 2022): a ResNet bottleneck whose
    :math:`3 \times 3` convolution is replaced by a max-pool, on images or graphs:

    .. math::
        \mathbf{y} = \mathrm{ReLU}\Big(\mathrm{BN}_3\big(\mathbf{W}_3\,
            \mathrm{MaxPool}\big(\mathrm{ReLU}(\mathrm{BN}_1(\mathbf{W}_1\mathbf{x}))\big)\big)
            + \mathrm{shortcut}(\mathbf{x})\Big)

    with :math:`\mathbf{W}_1: C_{in} \to w`, :math:`\mathbf{W}_3: w \to e\,w` (1x1, no bias);
    the max-pool is :math:`3 \times 3` with stride ``stride`` on images and the closed
    neighbourhood max (:class:`~graphkit.backbones.PoolMixer` ``aggr="max"``) on graphs. The
    shortcut is the identity, or a 1x1 projection + BN when the width or stride changes.
    ``MaxBottleneck(256, 64)`` has 33,408 parameters (ResNet's bottleneck: 70,400).

    Args:
        in_channels (int): Input channels :math:`C_{in}`.
        width (int): Bottleneck width :math:`w`.
        stride (int, optional): Pooling / shortcut stride (images only). (default: :obj:`1`)
        expansion (int, optional): Output channels :math:`e\,w`. (default: :obj:`4`)

    Shapes:
        - **input:** images :math:`(B, C_{in}, H, W)`, or nodes :math:`(N, C_{in})` with
          ``edge_index``
        - **output:** :math:`(B, e\,w, H/s, W/s)` or :math:`(N, e\,w)`
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1, expansion: int = 4) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_channels = _int(name, "in_channels", in_channels)
        self.width = _int(name, "width", width)
        self.stride = _int(name, "stride", stride)
        self.expansion = _int(name, "expansion", expansion)
        self.out_channels = width * expansion
        self.conv1 = Linear(in_channels, width, bias=False)
        self.bn1 = BatchNorm1d(width)
        self.conv3 = Linear(width, self.out_channels, bias=False)
        self.bn3 = BatchNorm1d(self.out_channels)
        if stride != 1 or in_channels != self.out_channels:
            self.down: Optional[Linear] = Linear(in_channels, self.out_channels, bias=False)
            self.down_bn: Optional[BatchNorm1d] = BatchNorm1d(self.out_channels)
        else:
            self.down = self.down_bn = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.conv1, self.conv3, self.down):
            if lin is not None:  # He init (fan-out) as ResNet's convolutions
                torch.nn.init.kaiming_normal_(lin.weight, mode="fan_out", nonlinearity="relu")
        for bn in (self.bn1, self.bn3, self.down_bn):
            if bn is not None:
                bn.reset_parameters()

    def forward(self, x: Tensor, edge_index=None, batch: Optional[Tensor] = None) -> Tensor:
        """Images ``(B, C, H, W)``, or nodes ``(N, C)`` with ``edge_index`` (``batch`` is
        accepted and not needed)."""
        name = type(self).__name__
        if edge_index is None:
            check_features(name, x, self.in_channels, dims=(4,))
        else:
            check_features(name, x, self.in_channels, dims=(2,))
            if self.stride != 1:
                raise ValueError(f"{name}: stride {self.stride} has no meaning on a graph")
        h = F.relu(_bn(_pw(x, self.conv1.weight), self.bn1))
        if edge_index is None:
            h = F.max_pool2d(h, 3, self.stride, 1)
        else:
            src, dst = open_neighbourhood(name, edge_index, x.size(0))
            h = closed_max(h, src, dst)
        h = _bn(_pw(h, self.conv3.weight), self.bn3)
        if self.down is not None:
            s = x[:, :, ::self.stride, ::self.stride] if x.dim() == 4 else x
            x = _bn(_pw(s, self.down.weight), self.down_bn)
        return F.relu(h + x)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.width}, "
                f"stride={self.stride}, expansion={self.expansion})")


def _hsigmoid(x: Tensor) -> Tensor:
    return F.relu6(x + 3.0) / 6.0


class OSABlock(Module):
    r"""One-shot aggregation (OSA) from `"An Energy and GPU-Computation Efficient Backbone
    Network for Real-Time Object Detection" <https://arxiv.org/abs/1904.09730>`_ (Lee et al.,
    CVPRW 2019; residual and eSE from VoVNetV2, `CenterMask <https://arxiv.org/abs/1911.06667>`_)
    as a GNN stacking pattern: :math:`n` graph layers run one after the other and their outputs
    are concatenated once, with the input, at the end:

    .. math::
        \mathbf{h}_0 = \mathbf{x}, \quad
        \mathbf{h}_t = \mathrm{ReLU}(\mathrm{BN}(\mathrm{Conv}_t(\mathbf{h}_{t-1},
            \mathcal{E}))), \quad
        \mathbf{y} = \mathrm{ReLU}\big(\mathrm{BN}(\mathbf{W}[\mathbf{h}_0 \,\|\, \mathbf{h}_1
            \,\|\, \cdots \,\|\, \mathbf{h}_n])\big)

    then optionally the effective squeeze-excitation per graph
    :math:`\mathbf{y} \odot \mathrm{hsigmoid}(\mathbf{W}_e \bar{\mathbf{y}}_{b} +
    \mathbf{b}_e)` (:math:`\bar{\mathbf{y}}_b`: mean over graph :math:`b`) and the identity
    residual :math:`+\,\mathbf{x}`. It is the "concatenation" jumping knowledge made into a
    stackable block (input included, projected, residual, eSE). :class:`OSABlock2d` is the grid
    form with :math:`3 \times 3` convolutions.

    Args:
        in_channels (int): Input channels :math:`C_{in}`.
        stage_channels (int): Width :math:`C_s` of every graph layer.
        out_channels (int): Output channels :math:`C_o`.
        num_layers (int): Graph layers :math:`n`.
        conv (Callable[[int, int], Module], optional): Builds a layer
            ``conv(in, out)`` called as ``layer(x, edge_index)``.
            (default: :class:`torch_geometric.nn.GCNConv`)
        residual (bool, optional): Add the input (needs :math:`C_{in} = C_o`).
            (default: :obj:`False`)
        ese (bool, optional): Apply the per-graph eSE gate. (default: :obj:`False`)

    Shapes:
        - **input:** ``x`` :math:`(N, C_{in})`, ``edge_index`` :math:`(2, |\mathcal{E}|)` or
          sparse, optional ``batch`` :math:`(N)`
        - **output:** :math:`(N, C_o)`
    """

    def __init__(self, in_channels: int, stage_channels: int, out_channels: int,
                 num_layers: int, conv: Optional[Callable[[int, int], Module]] = None,
                 residual: bool = False, ese: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_channels = _int(name, "in_channels", in_channels)
        self.stage_channels = _int(name, "stage_channels", stage_channels)
        self.out_channels = _int(name, "out_channels", out_channels)
        self.num_layers = _int(name, "num_layers", num_layers)
        if residual and in_channels != out_channels:
            raise ValueError(f"{name}: residual needs in_channels == out_channels "
                             f"(got {in_channels} and {out_channels})")
        self.residual, self.ese = bool(residual), bool(ese)
        if conv is None:
            from torch_geometric.nn import GCNConv

            conv = GCNConv
        self.convs = ModuleList(conv(in_channels if t == 0 else stage_channels, stage_channels)
                                for t in range(num_layers))
        self.norms = ModuleList(BatchNorm1d(stage_channels) for _ in range(num_layers))
        self.concat = Linear(in_channels + num_layers * stage_channels, out_channels, bias=False)
        self.concat_norm = BatchNorm1d(out_channels)
        self.ese_lin = Linear(out_channels, out_channels) if ese else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in list(self.convs) + list(self.norms) + [self.concat, self.concat_norm,
                                                            self.ese_lin]:
            if layer is not None:
                layer.reset_parameters()

    def forward(self, x: Tensor, edge_index, batch: Optional[Tensor] = None) -> Tensor:
        name = type(self).__name__
        check_features(name, x, self.in_channels, dims=(2,))
        open_neighbourhood(name, edge_index, x.size(0))  # validates the graph once
        outs: List[Tensor] = [x]
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h, edge_index)))
            outs.append(h)
        y = F.relu(self.concat_norm(self.concat(torch.cat(outs, dim=-1))))
        if self.ese_lin is not None:
            batch, num_graphs = check_index(name, "batch", batch, x.size(0), x.device)
            from torch_geometric.utils import scatter

            pooled = scatter(y, batch, 0, num_graphs, reduce="mean")
            y = y * _hsigmoid(self.ese_lin(pooled))[batch]
        return y + x if self.residual else y

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.stage_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, residual={self.residual}, "
                f"ese={self.ese})")


class OSABlock2d(Module):
    r"""The grid form of :class:`OSABlock` (VoVNet's OSA module): :math:`n` Conv-BN-ReLU
    :math:`3 \times 3` layers of :math:`C_s` channels, the input and all outputs concatenated
    once, a 1x1 Conv-BN-ReLU to :math:`C_o`, then optional eSE
    (:math:`\mathbf{y} \odot \mathrm{hsigmoid}(\mathbf{W}_e\,\mathrm{GAP}(\mathbf{y}) +
    \mathbf{b}_e)`) and identity residual. ``OSABlock2d(128, 128, 256, 5)`` has 935,680
    parameters.

    Args:
        in_channels (int): Input channels.
        stage_channels (int): Channels of every :math:`3 \times 3` layer.
        out_channels (int): Output channels.
        num_layers (int): Number of :math:`3 \times 3` layers.
        residual (bool, optional): Identity residual. (default: :obj:`False`)
        ese (bool, optional): eSE gate. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`
        - **output:** :math:`(B, C_o, H, W)`
    """

    def __init__(self, in_channels: int, stage_channels: int, out_channels: int,
                 num_layers: int, residual: bool = False, ese: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_channels = _int(name, "in_channels", in_channels)
        self.stage_channels = _int(name, "stage_channels", stage_channels)
        self.out_channels = _int(name, "out_channels", out_channels)
        self.num_layers = _int(name, "num_layers", num_layers)
        if residual and in_channels != out_channels:
            raise ValueError(f"{name}: residual needs in_channels == out_channels")
        self.residual, self.ese = bool(residual), bool(ese)
        self.convs = ModuleList(Conv2d(in_channels if t == 0 else stage_channels,
                                       stage_channels, 3, 1, 1, bias=False)
                                for t in range(num_layers))
        self.norms = ModuleList(BatchNorm2d(stage_channels) for _ in range(num_layers))
        self.concat = Conv2d(in_channels + num_layers * stage_channels, out_channels, 1,
                             bias=False)
        self.concat_norm = BatchNorm2d(out_channels)
        self.ese_conv = Conv2d(out_channels, out_channels, 1) if ese else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in list(self.convs) + list(self.norms) + [self.concat, self.concat_norm,
                                                            self.ese_conv]:
            if layer is not None:
                layer.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        check_features(type(self).__name__, x, self.in_channels, dims=(4,))
        outs, h = [x], x
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h)))
            outs.append(h)
        y = F.relu(self.concat_norm(self.concat(torch.cat(outs, dim=1))))
        if self.ese_conv is not None:
            y = y * _hsigmoid(self.ese_conv(y.mean(dim=(2, 3), keepdim=True)))
        return y + x if self.residual else y

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.stage_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers})")


__all__ = ["MaxBottleneck", "OSABlock", "OSABlock2d"]
