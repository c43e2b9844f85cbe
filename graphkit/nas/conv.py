r"""The searchable message-passing layer of the Auto-GNN search space."""
from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import add_remaining_self_loops, degree, softmax

__all__ = ["AutoGNNConv", "ATTENTIONS"]

#: attention functions of :class:`AutoGNNConv`
ATTENTIONS = ("const", "gcn", "gat", "sym-gat", "cos", "linear", "generalized_linear")
_SOFTMAX = {"gat", "sym-gat", "cos", "linear", "generalized_linear"}


class AutoGNNConv(MessagePassing):
    r"""The layer whose attention function, number of heads and aggregation are searched in
    `"Auto-GNN: Neural Architecture Search of Graph Neural Networks"
    <https://arxiv.org/abs/1909.03184>`_ (Zhou, Song, Huang and Hu, 2019), the same layer
    family as GraphNAS.

    This is *not* :class:`torch_geometric.nn.conv.AGNNConv`, the attention-based graph neural
    network of Thekumparampil et al. (2018); "AGNN" in the Auto-GNN paper names the search
    method, not a layer.

    With :math:`\mathbf{h}_i = \mathbf{W}\mathbf{x}_i` split into :math:`H` heads of
    :math:`C` channels, every head computes edge coefficients :math:`\alpha_{ij}` with the
    chosen attention function, and nodes aggregate the weighted messages:

    .. math::
        \mathbf{x}^{\prime}_i = \mathop{\Big\Vert}_{k=1}^{H}
        \operatorname{AGG}_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^{k}_{ij} \mathbf{h}^{k}_j

    (the mean over heads instead of the concatenation with :obj:`concat=False`), where for
    :math:`e_{ij}` below, :math:`\alpha_{ij} = \operatorname{softmax}_j(e_{ij})` except for
    ``const`` and ``gcn``:

    * ``const``: :math:`\alpha_{ij} = 1`;
    * ``gcn``: :math:`\alpha_{ij} = 1/\sqrt{d_i d_j}` (degrees with self-loops);
    * ``gat``: :math:`e_{ij} = \mathrm{LeakyReLU}(\mathbf{a}_l^\top \mathbf{h}_i +
      \mathbf{a}_r^\top \mathbf{h}_j)`;
    * ``sym-gat``: :math:`e_{ij} + e_{ji}` of ``gat``;
    * ``cos``: :math:`e_{ij} = (\mathbf{a}_l \odot \mathbf{h}_i)^\top
      (\mathbf{a}_r \odot \mathbf{h}_j)`;
    * ``linear``: :math:`e_{ij} = \tanh(\mathbf{a}_r^\top \mathbf{h}_j)`;
    * ``generalized_linear``: :math:`e_{ij} = \mathbf{w}^\top \tanh(\mathbf{a}_l \odot
      \mathbf{h}_i + \mathbf{a}_r \odot \mathbf{h}_j)`.

    Args:
        in_channels (int): input features :math:`F`.
        out_channels (int): channels :math:`C` per head.
        heads (int): number of heads :math:`H`. (default: :obj:`1`)
        attention (str): one of :data:`ATTENTIONS`. (default: :obj:`"gat"`)
        aggr (str or Aggregation): ``"sum"``, ``"mean"``, ``"max"`` or an
            :class:`~torch_geometric.nn.aggr.Aggregation` over :math:`H C` channels
            (e.g. :class:`graphkit.nn.aggr.LCMAggregation`). (default: :obj:`"sum"`)
        concat (bool): concatenate the heads (output :math:`H C`) or average them
            (output :math:`C`). (default: :obj:`True`)
        bias (bool): add a learned bias. (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)` (self-loops are added)
        - **output:** :math:`(|\mathcal{V}|, H C)` or :math:`(|\mathcal{V}|, C)`
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1,
                 attention: str = "gat", aggr: Union[str, Aggregation] = "sum",
                 concat: bool = True, bias: bool = True) -> None:
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels),
                          ("heads", heads)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"AutoGNNConv: '{name}' must be a positive int (got {val!r})")
        if attention not in ATTENTIONS:
            raise ValueError(f"AutoGNNConv: unknown attention {attention!r}; choose from "
                             f"{', '.join(ATTENTIONS)}")
        if isinstance(aggr, str) and aggr not in ("sum", "add", "mean", "max"):
            raise ValueError(f"AutoGNNConv: aggr must be 'sum', 'mean', 'max' or an "
                             f"Aggregation module (got {aggr!r})")
        super().__init__(aggr=aggr, node_dim=0)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.attention, self.concat = attention, concat
        self.lin = Linear(in_channels, heads * out_channels, bias=False,
                          weight_initializer="glorot")
        if attention in ("const", "gcn"):
            self.register_parameter("att_l", None)
            self.register_parameter("att_r", None)
        else:
            self.att_l = Parameter(torch.empty(1, heads, out_channels))
            self.att_r = Parameter(torch.empty(1, heads, out_channels))
        if attention == "generalized_linear":
            self.att_w = Parameter(torch.empty(1, heads, out_channels))
        else:
            self.register_parameter("att_w", None)
        self.bias = Parameter(torch.empty(heads * out_channels if concat else out_channels)) \
            if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin.reset_parameters()
        bound = math.sqrt(6.0 / (self.heads + self.out_channels))
        for p in (self.att_l, self.att_r, self.att_w):
            if p is not None:
                torch.nn.init.uniform_(p, -bound, bound)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"AutoGNNConv: 'x' must have shape [num_nodes, {self.in_channels}] "
                             f"(got {tuple(x.shape)})")
        n, H, C = x.size(0), self.heads, self.out_channels
        edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=n)
        h = self.lin(x).view(n, H, C)
        src, dst = edge_index[0], edge_index[1]
        alpha = self._coefficients(h, src, dst, n)
        msg = (alpha.unsqueeze(-1) * h[src]).reshape(-1, H * C)
        out = self.aggr_module(msg, dst, dim_size=n, dim=0)
        out = out.view(n, H, C)
        out = out.reshape(n, H * C) if self.concat else out.mean(dim=1)
        return out if self.bias is None else out + self.bias

    def _coefficients(self, h: Tensor, src: Tensor, dst: Tensor, n: int) -> Tensor:
        att = self.attention
        if att == "const":
            return h.new_ones(src.numel(), self.heads)
        if att == "gcn":
            deg = degree(dst, n, dtype=h.dtype)
            norm = deg.pow(-0.5)
            return (norm[src] * norm[dst]).unsqueeze(-1).expand(-1, self.heads)
        al = (h * self.att_l).sum(-1)  # [N, H]
        ar = (h * self.att_r).sum(-1)
        if att == "gat":
            e = F.leaky_relu(al[dst] + ar[src], 0.2)
        elif att == "sym-gat":
            e = F.leaky_relu(al[dst] + ar[src], 0.2) + F.leaky_relu(al[src] + ar[dst], 0.2)
        elif att == "cos":
            e = ((h[dst] * self.att_l) * (h[src] * self.att_r)).sum(-1)
        elif att == "linear":
            e = torch.tanh(ar[src])
        else:  # generalized_linear
            e = (torch.tanh(h[dst] * self.att_l + h[src] * self.att_r) * self.att_w).sum(-1)
        return softmax(e, dst, num_nodes=n)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads}, attention={self.attention!r}, aggr={self.aggr!r})")
