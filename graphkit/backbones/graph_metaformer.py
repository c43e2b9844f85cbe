"""A MetaFormer over graphs: input map, MetaFormer blocks with a graph mixer, optional readout."""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module, ModuleList

from graphkit.backbones._utils import ChannelNorm, check_features, check_index
from graphkit.backbones.metaformer import MetaFormerBlock
from graphkit.backbones.mixers import ModulationMixer, PoNetMixer, PoolMixer

MIXERS = ("pool", "max", "ponet", "mod")
READOUTS = ("mean", "sum", "max", "ggem", "attsets", "ponet", "spp")


def make_graph_mixer(kind: str, channels: int, heads: int = 1, mod_ratio: int = 1) -> Module:
    """``"pool"`` (neighbourhood mean − self), ``"max"`` (neighbourhood max), ``"ponet"``,
    ``"mod"`` (modulation with the graph context)."""
    if kind == "pool":
        return PoolMixer("mean")
    if kind == "max":
        return PoolMixer("max")
    if kind == "ponet":
        return PoNetMixer(channels, heads)
    if kind == "mod":
        return ModulationMixer(channels, mod_ratio, context="graph")
    raise ValueError(f"unknown graph mixer {kind!r}; choose from {', '.join(MIXERS)}")


def make_readout(kind: str, channels: int):
    """A readout from :mod:`graphkit.nn.aggr` or PyG and its output width."""
    import torch_geometric.nn.aggr as pyg

    from graphkit.nn.aggr import AttSetsAggregation, GGeMAggregation, PoNetAggregation, SPPAggregation
    if kind == "mean":
        return pyg.MeanAggregation(), channels
    if kind == "sum":
        return pyg.SumAggregation(), channels
    if kind == "max":
        return pyg.MaxAggregation(), channels
    if kind == "ggem":
        return GGeMAggregation(channels, groups=1), channels
    if kind == "attsets":
        return AttSetsAggregation(channels), channels
    if kind == "ponet":
        return PoNetAggregation(channels, channels), channels
    if kind == "spp":
        agg = SPPAggregation(levels=(1, 2, 4))
        return agg, channels * agg.num_bins
    raise ValueError(f"unknown readout {kind!r}; choose from {', '.join(READOUTS)}")


class GraphMetaFormer(Module):
    r"""A MetaFormer (`"MetaFormer Is Actually What You Need for Vision"
    <https://arxiv.org/abs/2111.11418>`_, Yu et al., CVPR 2022) whose token mixer is a graph
    operator: a linear input map, ``num_layers``
    :class:`~graphkit.backbones.MetaFormerBlock` s with a graph mixer, a final norm, and either
    a per-node linear head (node tasks) or a readout from :mod:`graphkit.nn.aggr` / PyG and a
    linear head (graph tasks):

    .. math::
        \mathbf{H}^{(0)} = \mathbf{X}\mathbf{W}_{in}, \quad
        \mathbf{H}^{(l)} = \mathrm{MetaFormerBlock}_l(\mathbf{H}^{(l-1)}, \mathcal{E}), \quad
        \mathbf{Y} = \mathrm{Head}\big(\mathrm{Readout}(\mathrm{Norm}(\mathbf{H}^{(L)}))\big)

    With ``mixer="pool"`` every block is :math:`\mathbf{H} + \gamma\odot(-(\mathbf{I} -
    \tilde{\mathbf{D}}^{-1}\tilde{\mathbf{A}}))\mathrm{Norm}(\mathbf{H})` followed by the MLP:
    a parameter-free propagation with learned channel maps.

    Args:
        in_channels (int): Input features.
        hidden_channels (int): Width :math:`C` of the blocks.
        out_channels (int): Outputs (classes).
        num_layers (int, optional): Blocks. (default: :obj:`2`)
        mixer (str, optional): ``"pool"``, ``"max"``, ``"ponet"`` or ``"mod"``.
            (default: :obj:`"pool"`)
        mlp_ratio (float, optional): MLP expansion. (default: :obj:`4.0`)
        dropout (float, optional): Dropout on the input, inside the MLPs and before the head.
            (default: :obj:`0.0`)
        layer_scale_init_value (float, optional): LayerScale init; ``None`` for none.
            (default: :obj:`None`)
        readout (str, optional): ``None`` for node outputs, or one of ``"mean"``, ``"sum"``,
            ``"max"``, ``"ggem"``, ``"attsets"``, ``"ponet"``, ``"spp"`` for graph outputs.
            (default: :obj:`None`)
        heads (int, optional): PoNet heads. (default: :obj:`1`)

    Shapes:
        - **input:** ``x`` :math:`(N, F_{in})`, ``edge_index`` :math:`(2, |\mathcal{E}|)` or
          sparse, ``batch`` :math:`(N)` (graph outputs)
        - **output:** :math:`(N, F_{out})`, or :math:`(B, F_{out})` with a readout
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, mixer: str = "pool", mlp_ratio: float = 4.0,
                 dropout: float = 0.0, layer_scale_init_value: Optional[float] = None,
                 readout: Optional[str] = None, heads: int = 1) -> None:
        super().__init__()
        for key, val in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                         ("out_channels", out_channels), ("num_layers", num_layers)):
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"GraphMetaFormer: {key} must be a positive int (got {val!r})")
        if mixer not in MIXERS:
            raise ValueError(f"GraphMetaFormer: unknown mixer {mixer!r}; choose from "
                             f"{', '.join(MIXERS)}")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.out_channels, self.num_layers = out_channels, num_layers
        self.mixer, self.readout_kind, self.dropout = mixer, readout, float(dropout)
        self.lin_in = Linear(in_channels, hidden_channels)
        self.blocks = ModuleList(
            MetaFormerBlock(hidden_channels, make_graph_mixer(mixer, hidden_channels, heads),
                            mlp_ratio, "layer", layer_scale_init_value, 0.0, dropout)
            for _ in range(num_layers))
        self.norm = ChannelNorm(hidden_channels, "layer")
        if readout is None:
            self.readout, width = None, hidden_channels
        else:
            self.readout, width = make_readout(readout, hidden_channels)
        self.head = Linear(width, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()
        if self.readout is not None:
            self.readout.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, edge_index, batch: Optional[Tensor] = None) -> Tensor:
        check_features(type(self).__name__, x, self.in_channels, dims=(2,))
        h = self.lin_in(F.dropout(x, self.dropout, self.training))
        for block in self.blocks:
            h = block(h, edge_index, batch=batch)
        h = self.norm(h)
        if self.readout is not None:
            batch, num_graphs = check_index(type(self).__name__, "batch", batch, h.size(0),
                                            h.device)
            h = self.readout(h, batch, dim_size=num_graphs)
        return self.head(F.dropout(h, self.dropout, self.training))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, mixer={self.mixer!r}, "
                f"readout={self.readout_kind!r})")


__all__ = ["GraphMetaFormer", "make_graph_mixer", "make_readout"]
