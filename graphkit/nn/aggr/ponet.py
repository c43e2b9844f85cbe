"""PoNet-style multi-granularity pooling aggregation."""
import math
from typing import Optional

from torch import Tensor
from torch.nn import Linear
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.utils import scatter, softmax

from graphkit.nn.aggr._utils import check_inputs


class PoNetAggregation(Aggregation):
    r"""Multi-granularity pooling from the `"PoNet: Pooling Network for
    Efficient Token Mixing in Long Sequences" <https://arxiv.org/abs/2110.02442>`_
    paper (Tan et al., ICLR 2022), as a set aggregation / graph readout.

    PoNet mixes tokens with three pooling granularities fused as
    :math:`\mathbf{y}_j = (\mathbf{g} + \mathbf{s}_j) \odot \mathbf{O}_j + \boldsymbol{\ell}_j`:
    a global attention pool :math:`\mathbf{g}` whose query is the mean of
    :math:`\mathbf{Q}` and whose values are :math:`\mathbf{K}`, a segment
    max-pool :math:`\mathbf{s}` and a local max-pool :math:`\boldsymbol{\ell}`.
    Here a set (a neighbourhood, or a graph given by ``batch``) is one
    segment, sets have no order, so the local window is the element itself,
    and the per-element outputs are mean-pooled into one vector per set:

    .. math::
        \mathbf{q}_i = \tfrac{1}{|\mathcal{N}(i)|}\textstyle\sum_{j} \mathbf{W}_Q \mathbf{x}_j,
        \quad
        \alpha_{ij} = \mathrm{softmax}_j\big(\mathbf{q}_i^{\top} \mathbf{W}_K \mathbf{x}_j / \sqrt{d_h}\big),
        \quad
        \mathbf{g}_i = \textstyle\sum_j \alpha_{ij} \mathbf{W}_K \mathbf{x}_j,

    .. math::
        \mathbf{s}_i = \max_j \mathbf{W}_S \mathbf{x}_j,
        \qquad
        \mathbf{h}_i = (\mathbf{g}_i + \mathbf{s}_i) \odot
        \tfrac{1}{|\mathcal{N}(i)|}\textstyle\sum_j \mathbf{W}_O \mathbf{x}_j
        + \tfrac{1}{|\mathcal{N}(i)|}\textstyle\sum_j \mathbf{W}_L \mathbf{x}_j ,

    per head (:math:`d_h = F_{out}/H`; all maps have biases). It has the
    reference mixer's :math:`5(F_{in}F_{out} + F_{out})` parameters, costs
    :math:`\mathcal{O}(|\mathcal{E}|)`, is permutation invariant and gives
    zeros for empty sets.

    Args:
        in_channels (int): Size of each input element.
        out_channels (int): Size of each output.
        heads (int, optional): Number of attention heads; must divide
            :obj:`out_channels`. (default: :obj:`1`)

    Shapes:
        - **input:** :math:`(|\mathcal{E}|, F_{in})`, index :math:`(|\mathcal{E}|)`
        - **output:** :math:`(N, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels),
                          ("heads", heads)):
            if not isinstance(val, int) or val <= 0:
                raise ValueError(f"PoNetAggregation: '{name}' must be a positive int (got {val!r})")
        if out_channels % heads != 0:
            raise ValueError(f"PoNetAggregation: heads ({heads}) must divide out_channels "
                             f"({out_channels})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        # Q, K, O, S, L stacked in one projection.
        self.lin = Linear(in_channels, 5 * out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: Tensor, index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                dim_size: Optional[int] = None, dim: int = -2,
                max_num_elements: Optional[int] = None) -> Tensor:
        index, dim_size = check_inputs("PoNetAggregation", x, index, ptr, dim_size, dim)
        if x.size(-1) != self.in_channels:
            raise ValueError(f"PoNetAggregation: expected {self.in_channels} input channels "
                             f"(got {x.size(-1)})")
        h, d = self.heads, self.out_channels // self.heads
        q, k, o, s, loc = self.lin(x).chunk(5, dim=-1)
        q_mean = scatter(q, index, 0, dim_size, reduce="mean").view(-1, h, d)
        k = k.view(-1, h, d)
        logits = (q_mean[index] * k).sum(-1) / math.sqrt(d)          # [E, H]
        alpha = softmax(logits, index, num_nodes=dim_size, dim=0)
        g = scatter(alpha.unsqueeze(-1) * k, index, 0, dim_size, reduce="sum")
        g = g.view(dim_size, self.out_channels)
        seg = scatter(s, index, 0, dim_size, reduce="max")
        o_mean = scatter(o, index, 0, dim_size, reduce="mean")
        loc_mean = scatter(loc, index, 0, dim_size, reduce="mean")
        return (g + seg) * o_mean + loc_mean

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads})")
