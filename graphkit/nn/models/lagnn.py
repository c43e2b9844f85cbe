"""Local augmentation for graph neural networks (LA-GNN): models that feed generated neighbour
features (from :class:`~graphkit.nn.models.LocalAugmentationCVAE`) beside the original ones, and
the consistency loss. :class:`LAGCN` and :class:`LAGAT` are :class:`LAGNN` with a fixed backbone,
as PyG's ``GCN`` / ``GAT`` are presets of one basic model."""
from __future__ import annotations

from typing import Any, Dict, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, ModuleList
from torch_geometric.nn import GATConv, GCNConv

from graphkit.nn.models.lagnn_cvae import (  # noqa: F401  (re-exported: old import path)
    LocalAugmentationCVAE,
    _check_features,
    row_normalize,
)
from graphkit.utils.dropout import fast_dropout


def consistency_loss(logits: Sequence[Tensor], temperature: float = 0.5) -> Tensor:
    r"""The consistency regulariser used by LA-GNN (from GRAND): the mean squared distance
    between each sample's class distribution and the sharpened average distribution

    .. math::
        \bar{\mathbf{p}} = \frac{1}{S}\sum_{s} \mathbf{p}_s, \qquad
        \tilde{p}_{c} = \frac{\bar{p}_c^{1/T}}{\sum_{c'} \bar{p}_{c'}^{1/T}}, \qquad
        \mathcal{L}_{\mathrm{con}} = \frac{1}{S} \sum_{s} \frac{1}{N} \sum_{i}
        \|\mathbf{p}_{s,i} - \tilde{\mathbf{p}}_i\|_2^2

    (:math:`\tilde{\mathbf{p}}` is not back-propagated through). ``logits`` is a list of
    :math:`S \ge 1` tensors :math:`(N, C)`."""
    if len(logits) == 0:
        raise ValueError("consistency_loss: needs at least one tensor of logits")
    if not temperature > 0:
        raise ValueError(f"consistency_loss: 'temperature' must be > 0 (got {temperature})")
    ps = torch.stack([torch.softmax(lg, dim=-1) for lg in logits], dim=0)
    avg = ps.mean(dim=0)
    sharp = avg.pow(1.0 / temperature)
    sharp = (sharp / sharp.sum(dim=-1, keepdim=True)).detach()
    return (ps - sharp).pow(2).sum(dim=-1).mean()


class LAGNN(Module):
    r"""Plug-and-play local augmentation (`"Local Augmentation for Graph Neural Networks"
    <https://arxiv.org/abs/2109.03856>`_, Liu et al., ICML 2022): the original features and
    :math:`c` generated feature matrices each go through their own first layer, the results are
    concatenated and passed to the rest of the backbone.

    .. math::
        \mathbf{H} = \Big\Vert_{j=0}^{c} \, \mathrm{act}\left(f^{(j)}_1\left(
        \mathrm{dropout}(\mathbf{X}_j), \mathbf{A}\right)\right), \qquad
        \mathbf{Y} = f_{\mathrm{head}}(\mathrm{dropout}(\mathbf{H}), \mathbf{A})

    with :math:`\mathbf{X}_0 = \mathbf{X}` and :math:`\mathbf{X}_{1..c}` drawn from a
    :class:`LocalAugmentationCVAE`. Wrapping a backbone takes its first layer (one copy per
    input) and the rest; with no generated input (:math:`c = 0`) it is the plain backbone.

    .. code-block:: python

        gen = LocalAugmentationCVAE(F)       # or LocalAugmentationCVAE.load(path)
        gen.fit(x_raw, edge_index)           # (centre, neighbour) pairs of the edges
        model = LAGNN([GCNConv(F, 8) for _ in range(2)], GCNConv(16, C))
        x_aug = gen.generate(x_raw)          # [N, 1, F], row-normalised
        out = model(x, edge_index, x_aug=x_aug)

    Args:
        branches (Sequence[torch.nn.Module]): :math:`c + 1` first layers called as
            ``layer(x, edge_index)``; ``branches[0]`` takes the original features.
        head (torch.nn.Module): The rest of the backbone, called as
            ``head(h, edge_index)``.
        dropout (float, optional): Dropout on every input and on :math:`\mathbf{H}`.
            (default: :obj:`0.5`)
        act (str, optional): ``"relu"`` or ``"elu"``. (default: :obj:`"relu"`)

    Shapes:
        - **input:** node features :math:`(N, F)`, edge indices :math:`(2, E)` (or any
          adjacency the layers take), ``x_aug``: :math:`c` tensors :math:`(N, F)` or one
          node-first :math:`(N, c, F)` tensor (as :meth:`LocalAugmentationCVAE.generate` and
          :class:`~graphkit.transforms.LocalAugmentation` produce)
        - **output:** :math:`(N, C)` (whatever ``head`` returns)
    """

    def __init__(self, branches: Sequence[Module], head: Module, dropout: float = 0.5,
                 act: str = "relu") -> None:
        super().__init__()
        if len(branches) < 1:
            raise ValueError("LAGNN: needs at least one branch (the original features)")
        if act not in ("relu", "elu"):
            raise ValueError(f"LAGNN: 'act' must be 'relu' or 'elu' (got {act!r})")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"LAGNN: 'dropout' must be in [0, 1) (got {dropout!r})")
        self.branches = ModuleList(branches)
        self.head = head
        self.dropout = float(dropout)
        self.act = act
        self.concat = len(branches) - 1

    def reset_parameters(self) -> None:
        for m in list(self.branches) + [self.head]:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: Tensor, edge_index, x_aug: Union[Sequence[Tensor], Tensor, None] = None
                ) -> Tensor:
        if isinstance(x_aug, Tensor):
            if x_aug.dim() != 3 or x_aug.size(0) != x.size(0):
                raise ValueError(f"LAGNN: a tensor 'x_aug' must be node-first [num_nodes, "
                                 f"num_generated, num_features] = [{x.size(0)}, {self.concat}, "
                                 f"{x.size(-1)}] (got shape {tuple(x_aug.shape)})")
            x_aug = x_aug.unbind(1)
        xs = [x] + (list(x_aug) if x_aug is not None else [])
        if len(xs) != len(self.branches):
            raise ValueError(f"LAGNN: expected {self.concat} generated feature matrices in "
                             f"'x_aug' (concat={self.concat}), got {len(xs) - 1}")
        for j, xj in enumerate(xs):
            if xj.dim() != 2 or xj.shape != x.shape:
                raise ValueError(f"LAGNN: 'x_aug[{j - 1}]' has shape {tuple(xj.shape)}, "
                                 f"expected {tuple(x.shape)} like 'x'")
        act = F.relu if self.act == "relu" else F.elu
        hs = [act(branch(fast_dropout(xj, self.dropout, self.training), edge_index))
              for branch, xj in zip(self.branches, xs)]
        h = torch.cat(hs, dim=-1) if len(hs) > 1 else hs[0]
        return self.head(fast_dropout(h, self.dropout, self.training), edge_index)


class LAGCN(LAGNN):
    r"""LA-GCN: a two-layer GCN (`Kipf and Welling <https://arxiv.org/abs/1609.02907>`_) with
    local augmentation (`Liu et al., ICML 2022 <https://arxiv.org/abs/2109.03856>`_); see
    :class:`LAGNN`. With :obj:`concat=0` it is the plain GCN.

    .. math::
        \mathbf{Y} = \mathbf{\hat{A}}\left(\Big\Vert_{j=0}^{c} \mathrm{ReLU}(\mathbf{\hat{A}}
        \mathbf{X}_j \mathbf{W}^{(j)}_1)\right) \mathbf{W}_2

    Args:
        in_channels (int): Number of node features.
        hidden_channels (int): Hidden size of every branch (paper: 8).
        out_channels (int): Number of classes.
        concat (int, optional): Number :math:`c` of generated feature matrices.
            (default: :obj:`1`)
        dropout (float, optional): Dropout probability. (default: :obj:`0.5`)
        cached (bool, optional): Cache the normalised adjacency (transductive).
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(N, F)`, :math:`(2, E)`, ``x_aug`` :math:`c \times (N, F)` or
          :math:`(N, c, F)`
        - **output:** logits :math:`(N, C)`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 concat: int = 1, dropout: float = 0.5, cached: bool = False) -> None:
        if not isinstance(concat, int) or concat < 0:
            raise ValueError(f"LAGCN: 'concat' must be a non-negative int (got {concat!r})")
        branches = [GCNConv(in_channels, hidden_channels, cached=cached)
                    for _ in range(concat + 1)]
        head = GCNConv((concat + 1) * hidden_channels, out_channels, cached=cached)
        super().__init__(branches, head, dropout=dropout, act="relu")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.cached = cached
        self.reset_parameters()

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, hidden_channels=self.hidden_channels,
                    out_channels=self.out_channels, concat=self.concat, dropout=self.dropout,
                    cached=self.cached)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, concat={self.concat})")


class LAGAT(LAGNN):
    r"""LA-GAT: a two-layer GAT (`Veličković et al. <https://arxiv.org/abs/1710.10903>`_) with
    local augmentation (`Liu et al., ICML 2022 <https://arxiv.org/abs/2109.03856>`_); see
    :class:`LAGNN`. With :obj:`concat=0` it is the plain GAT.

    .. math::
        \mathbf{Y} = \mathrm{GAT}_{2}\left(\Big\Vert_{j=0}^{c} \mathrm{ELU}\left(
        \mathrm{GAT}^{(j)}_1(\mathbf{X}_j)\right)\right)

    Args:
        in_channels (int): Number of node features.
        hidden_channels (int): Hidden size per head in every branch (paper: 8).
        out_channels (int): Number of classes.
        heads (int, optional): Attention heads of each first layer. (default: :obj:`4`)
        out_heads (int, optional): Heads of the output layer (averaged). (default: :obj:`1`)
        concat (int, optional): Number :math:`c` of generated feature matrices.
            (default: :obj:`1`)
        dropout (float, optional): Dropout on the inputs, hidden features and attention
            coefficients. (default: :obj:`0.6`)
        negative_slope (float, optional): LeakyReLU slope of the attention. (default: :obj:`0.2`)

    Shapes:
        - **input:** :math:`(N, F)`, :math:`(2, E)`, ``x_aug`` :math:`c \times (N, F)` or
          :math:`(N, c, F)`
        - **output:** logits :math:`(N, C)`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 heads: int = 4, out_heads: int = 1, concat: int = 1, dropout: float = 0.6,
                 negative_slope: float = 0.2) -> None:
        if not isinstance(concat, int) or concat < 0:
            raise ValueError(f"LAGAT: 'concat' must be a non-negative int (got {concat!r})")
        branches = [GATConv(in_channels, hidden_channels, heads=heads, dropout=dropout,
                            negative_slope=negative_slope) for _ in range(concat + 1)]
        head = GATConv((concat + 1) * hidden_channels * heads, out_channels, heads=out_heads,
                       concat=False, dropout=dropout, negative_slope=negative_slope)
        super().__init__(branches, head, dropout=dropout, act="elu")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.heads = heads
        self.out_heads = out_heads
        self.negative_slope = negative_slope
        self.reset_parameters()

    def config(self) -> Dict[str, Any]:
        return dict(in_channels=self.in_channels, hidden_channels=self.hidden_channels,
                    out_channels=self.out_channels, heads=self.heads, out_heads=self.out_heads,
                    concat=self.concat, dropout=self.dropout,
                    negative_slope=self.negative_slope)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, heads={self.heads}, concat={self.concat})")
