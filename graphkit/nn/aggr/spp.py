"""Spatial pyramid pooling over variable-sized sets."""
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.utils import scatter

from graphkit.nn.aggr._utils import check_inputs, group_positions


class SPPAggregation(Aggregation):
    r"""Spatial pyramid pooling from the `"Spatial Pyramid Pooling in Deep
    Convolutional Networks for Visual Recognition"
    <https://arxiv.org/abs/1406.4729>`_ paper (He et al., ECCV 2014), over
    variable-sized sets: a fixed-length output whatever the set size.

    The :math:`L` elements of a set are arranged in a sequence (by the value
    of a sort channel, or in input order) and, for every pyramid level
    :math:`n`, max-pooled into :math:`n` bins with the adaptive rule
    (bin :math:`b` covers positions
    :math:`\lfloor bL/n \rfloor \le t < \lceil (b+1)L/n \rceil`, as
    :func:`torch.nn.functional.adaptive_max_pool1d`, so every bin is non-empty
    and the whole set is covered — the paper's window/stride rule can leave
    the border out). Bins are concatenated level by level:

    .. math::
        \mathbf{h}_i = \big\Vert_{n \in \mathcal{L}} \big\Vert_{b=0}^{n-1}
        \max_{t \in \mathrm{bin}_{n,b}(L_i)} \mathbf{x}_{\pi_i(t)} .

    With :obj:`order="sort"` (default) elements are ranked by channel
    :obj:`sort_channel` (descending, stable), as in sort pooling, so the
    output is permutation invariant up to ties; with :obj:`order="input"` the
    input order inside each set is used (e.g. tokens or pixels already in
    sequence). Level :math:`1` is global max pooling. Empty sets give zeros.

    Args:
        levels (Sequence[int], optional): Pyramid levels :math:`\mathcal{L}`.
            (default: :obj:`(1, 2, 4)`)
        order (str, optional): :obj:`"sort"` or :obj:`"input"`. (default: :obj:`"sort"`)
        sort_channel (int, optional): Channel used for sorting. (default: :obj:`-1`)

    Shapes:
        - **input:** :math:`(|\mathcal{E}|, C)`, index :math:`(|\mathcal{E}|)`
        - **output:** :math:`(N, C \cdot \sum_{n \in \mathcal{L}} n)`
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 4), order: str = "sort",
                 sort_channel: int = -1) -> None:
        super().__init__()
        levels = tuple(levels)
        if len(levels) == 0 or any((not isinstance(n, int)) or n <= 0 for n in levels):
            raise ValueError(f"SPPAggregation: 'levels' must be positive ints (got {levels!r})")
        if order not in ("sort", "input"):
            raise ValueError(f"SPPAggregation: 'order' must be 'sort' or 'input' (got {order!r})")
        self.levels = levels
        self.order = order
        self.sort_channel = int(sort_channel)
        self.num_bins = sum(levels)

    def reset_parameters(self) -> None:
        pass

    def forward(self, x: Tensor, index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                dim_size: Optional[int] = None, dim: int = -2,
                max_num_elements: Optional[int] = None) -> Tensor:
        index, dim_size = check_inputs("SPPAggregation", x, index, ptr, dim_size, dim)
        if self.order == "sort":
            if not -x.size(-1) <= self.sort_channel < x.size(-1):
                raise ValueError(f"SPPAggregation: sort_channel {self.sort_channel} out of range "
                                 f"for {x.size(-1)} channels")
            perm = torch.sort(x[:, self.sort_channel].detach(), descending=True, stable=True)[1]
        else:
            perm = torch.arange(x.size(0), device=x.device)
        perm = perm[torch.sort(index[perm], stable=True)[1]]
        x, index = x[perm], index[perm]
        count, _, pos = group_positions(index, dim_size)
        size = count[index]
        outs = []
        for n in self.levels:
            for b in range(n):
                start = torch.div(b * size, n, rounding_mode="floor")
                end = torch.div((b + 1) * size + n - 1, n, rounding_mode="floor")
                sel = ((pos >= start) & (pos < end)).nonzero().view(-1)
                outs.append(scatter(x[sel], index[sel], 0, dim_size, reduce="max"))
        return torch.cat(outs, dim=-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(levels={self.levels}, order={self.order!r})"
