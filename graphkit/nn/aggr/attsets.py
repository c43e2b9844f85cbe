"""AttSets: attentional aggregation of deep feature sets."""
from typing import Optional

from torch import Tensor
from torch.nn import Linear
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.utils import scatter, softmax

from graphkit.nn.aggr._utils import check_inputs


class AttSetsAggregation(Aggregation):
    r"""The attentional set aggregation from the `"Robust Attentional
    Aggregation of Deep Feature Sets for Multi-view 3D Reconstruction"
    <https://arxiv.org/abs/1808.00758>`_ paper (Yang et al., IJCV 2020),
    usable as a neighbourhood aggregation and as a global readout.

    A shared fully connected layer (no activation, the reference code's
    default) produces :math:`K` attention activations per feature; they are
    normalised by a softmax over the elements of each set *separately for
    every feature*:

    .. math::
        \mathbf{c}_j = \mathbf{W}\mathbf{x}_j + \mathbf{b} \in \mathbb{R}^{K \cdot D},
        \qquad
        s^{k,d}_{j} = \frac{\exp c^{k,d}_j}{\sum_{l \in \mathcal{N}(i)} \exp c^{k,d}_l},
        \qquad
        \mathbf{h}^{k,d}_i = \sum_{j \in \mathcal{N}(i)} s^{k,d}_j\, x^{d}_j .

    With :math:`K=1` this equals
    :class:`torch_geometric.nn.aggr.AttentionalAggregation` with
    ``gate_nn=Linear(D, D)``; :math:`K>1` concatenates :math:`K` independent
    attention maps. With :math:`\mathbf{W}=0, \mathbf{b}=0` it is the mean.
    Empty sets give zeros. The output is permutation invariant.

    Args:
        channels (int): Feature size :math:`D`.
        heads (int, optional): Number of attention maps :math:`K`. (default: :obj:`1`)

    Shapes:
        - **input:** :math:`(|\mathcal{E}|, D)`, index :math:`(|\mathcal{E}|)`
        - **output:** :math:`(N, K \cdot D)`
    """

    def __init__(self, channels: int, heads: int = 1) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"AttSetsAggregation: 'channels' must be a positive int (got {channels!r})")
        if not isinstance(heads, int) or heads <= 0:
            raise ValueError(f"AttSetsAggregation: 'heads' must be a positive int (got {heads!r})")
        self.channels = channels
        self.heads = heads
        self.lin = Linear(channels, heads * channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: Tensor, index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                dim_size: Optional[int] = None, dim: int = -2,
                max_num_elements: Optional[int] = None) -> Tensor:
        index, dim_size = check_inputs("AttSetsAggregation", x, index, ptr, dim_size, dim)
        if x.size(-1) != self.channels:
            raise ValueError(f"AttSetsAggregation: expected {self.channels} channels "
                             f"(got {x.size(-1)})")
        score = self.lin(x).view(-1, self.heads, self.channels)
        attn = softmax(score, index, num_nodes=dim_size, dim=0)
        out = scatter(attn * x.unsqueeze(1), index, 0, dim_size, reduce="sum")
        return out.view(dim_size, self.heads * self.channels)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"
