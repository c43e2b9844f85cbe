"""Grouped generalised-mean (GGeM) aggregation."""
from typing import Optional

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.utils import scatter

from graphkit.nn.aggr._utils import check_inputs


class GGeMAggregation(Aggregation):
    r"""The grouped generalised-mean aggregation from the `"Group Generalized
    Mean Pooling for Vision Transformer" <https://arxiv.org/abs/2212.04114>`_
    paper (Ko et al., 2022), usable as a neighbourhood aggregation and as a
    global readout (``index = batch``).

    The :math:`C` channels are split into :obj:`groups` contiguous groups of
    :math:`C/G` channels; group :math:`g` has one learnable exponent
    :math:`p_g` shared by its channels (GeM of Radenović et al. for
    :math:`G=1`, per-channel GeM for :math:`G=C`):

    .. math::
        \mathbf{h}_{i,c} = \Big(\frac{1}{|\mathcal{N}(i)|}
        \sum_{j \in \mathcal{N}(i)} \max(x_{j,c}, \epsilon)^{p_{g(c)}}\Big)^{1/p_{g(c)}}

    It is evaluated in log space (a shifted log-sum-exp per channel), so large
    :math:`p` does not overflow. Inputs are clamped from below at
    :math:`\epsilon` as in the reference GeM code (no upper clamp, unlike
    :class:`torch_geometric.nn.aggr.PowerMeanAggregation`, which clamps to
    :math:`[10^{-4}, 100]`). Empty groups give zeros; a NaN input makes the
    output of its group and channel NaN (as in PyG), a :math:`+\infty` input
    makes it :math:`+\infty` (never a zero that would look like an empty
    group). :math:`p` is clamped from below at :obj:`p_min` in the forward pass.

    Args:
        channels (int): Number of channels :math:`C`.
        groups (int, optional): Number of channel groups :math:`G`; must divide
            :obj:`channels`. (default: :obj:`1`)
        p (float, optional): Initial exponent. (default: :obj:`3.0`)
        eps (float, optional): Lower clamp of the inputs. (default: :obj:`1e-6`)
        learn (bool, optional): Learn the exponents. (default: :obj:`True`)
        p_min (float, optional): Lower clamp of the exponents. (default: :obj:`1e-2`)

    Shapes:
        - **input:** :math:`(|\mathcal{E}|, C)`, index :math:`(|\mathcal{E}|)`
        - **output:** :math:`(N, C)`
    """

    def __init__(self, channels: int, groups: int = 1, p: float = 3.0, eps: float = 1e-6,
                 learn: bool = True, p_min: float = 1e-2) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"GGeMAggregation: 'channels' must be a positive int (got {channels!r})")
        if not isinstance(groups, int) or groups <= 0 or channels % groups != 0:
            raise ValueError(f"GGeMAggregation: 'groups' ({groups!r}) must be a positive int "
                             f"dividing channels ({channels})")
        if p < p_min:
            raise ValueError(f"GGeMAggregation: initial p ({p}) must be >= p_min ({p_min})")
        self.channels = channels
        self.groups = groups
        self.init_p = float(p)
        self.eps = float(eps)
        self.learn = learn
        self.p_min = float(p_min)
        if learn:
            self.p = Parameter(torch.empty(groups))
        else:
            self.register_buffer("p", torch.empty(groups))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.p.fill_(self.init_p)

    def forward(self, x: Tensor, index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                dim_size: Optional[int] = None, dim: int = -2,
                max_num_elements: Optional[int] = None) -> Tensor:
        index, dim_size = check_inputs("GGeMAggregation", x, index, ptr, dim_size, dim)
        if x.size(-1) != self.channels:
            raise ValueError(f"GGeMAggregation: expected {self.channels} channels (got {x.size(-1)})")
        p = self.p.clamp(min=self.p_min).repeat_interleave(self.channels // self.groups)
        y = p * x.clamp(min=self.eps).log()                           # [E, C]
        shift = scatter(y.detach(), index, 0, dim_size, reduce="max")  # [N, C]
        s = scatter((y - shift[index]).exp(), index, 0, dim_size, reduce="sum")
        count = torch.bincount(index, minlength=dim_size)
        # Emptiness comes from the counts, not from the sums: a NaN in a channel makes that
        # channel's sum NaN, and it must stay NaN instead of reading as an empty group.
        nonempty = (count > 0).unsqueeze(-1)
        log_count = count.to(x.dtype).clamp(min=1).log().unsqueeze(-1)
        log_mean = shift + s.clamp(min=1e-30).log() - log_count
        out = (log_mean / p).exp()
        # A +inf element makes the shifted sum inf - inf = NaN; its mean is +inf.
        out = torch.where(torch.isposinf(shift), shift, out)
        return torch.where(nonempty, out, torch.zeros_like(out))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, groups={self.groups})"
