r"""GIN whose inputs are extended by equivariant polynomial features."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, ModuleList, ReLU, Sequential
from torch_geometric.nn import GINConv, GINEConv, global_add_pool, global_mean_pool

__all__ = ["GINPoly"]


class GINPoly(torch.nn.Module):
    r"""GIN from `"How Powerful are Graph Neural Networks?" <https://arxiv.org/abs/1810.00826>`_
    with the polynomial features of `"Equivariant Polynomials for Graph Neural Networks"
    <https://arxiv.org/abs/2302.11556>`_ (Puny et al., ICML 2023) added to its inputs.

    Node-level polynomials :math:`\mathbf{p}_i` (``poly_x`` of
    :class:`~graphkit.transforms.equivariant_polynomials.EquivariantPolynomials`) are batch
    normalised and concatenated to the node features; edge-level polynomials
    :math:`\mathbf{q}_{ij}` (``poly_edge_attr``), when ``edge_poly_channels > 0``, enter every
    layer as edge features of :class:`~torch_geometric.nn.conv.GINEConv`:

    .. math::
        \mathbf{h}_i^{(0)} = [\mathbf{x}_i \,\|\, \mathrm{BN}(\mathbf{p}_i)], \qquad
        \mathbf{h}_i^{(l+1)} = \mathrm{MLP}^{(l)}\Big((1 + \epsilon^{(l)})\mathbf{h}_i^{(l)}
        + \sum_{j \in \mathcal{N}(i)} \mathrm{ReLU}\big(\mathbf{h}_j^{(l)}
        + \mathbf{W}^{(l)} \mathrm{BN}(\mathbf{q}_{ji})\big)\Big),

    and the graph embedding concatenates the pooled :math:`\mathbf{h}^{(l)}` of every layer
    (jumping knowledge), followed by a two-layer MLP. With ``poly_channels = 0`` and
    ``edge_poly_channels = 0`` this is plain GIN, the baseline of the same size.

    Input conventions: messages flow along ``edge_index`` from source to target, so directed
    graphs are taken as given (the transform itself refuses them unless ``directed="allow"``);
    a self-loop sends a node's own state once more (the transform leaves it in ``edge_index``,
    with the diagonal polynomial value as its edge feature, and drops it from the counts). Graphs
    without edges and single nodes give finite outputs; in training mode the batch norms need at
    least two nodes in the batch (PyTorch raises a :class:`ValueError` otherwise).

    Args:
        in_channels (int): node feature size (``0``: none; then ``poly_channels`` must be > 0).
        poly_channels (int): node polynomial feature size.
        hidden_channels (int): hidden size.
        out_channels (int): output size.
        num_layers (int): number of GIN layers. (default: ``4``)
        edge_poly_channels (int): edge polynomial feature size (``0``: GINConv). (default: ``0``)
        pool (str): ``"sum"`` or ``"mean"``. (default: ``"sum"``)
        dropout (float): dropout in the head. (default: ``0.5``)

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, edge indices :math:`(2, E)`, batch
          vector :math:`(N)`, ``poly_x`` :math:`(N, F_p)`, ``poly_edge_attr`` :math:`(E, F_q)`
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, poly_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int = 4, edge_poly_channels: int = 0,
                 pool: str = "sum", dropout: float = 0.5) -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 0),
                                 ("poly_channels", poly_channels, 0),
                                 ("hidden_channels", hidden_channels, 1),
                                 ("out_channels", out_channels, 1),
                                 ("num_layers", num_layers, 1),
                                 ("edge_poly_channels", edge_poly_channels, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"GINPoly: {name} must be an int >= {low}, got {value!r}")
        if in_channels + poly_channels == 0:
            raise ValueError("GINPoly: in_channels + poly_channels must be positive")
        if pool not in ("sum", "mean"):
            raise ValueError(f"GINPoly: pool must be 'sum' or 'mean', got {pool!r}")
        self.in_channels, self.poly_channels = in_channels, poly_channels
        self.hidden_channels, self.out_channels = hidden_channels, out_channels
        self.num_layers, self.edge_poly_channels = num_layers, edge_poly_channels
        self.pool, self.dropout = pool, dropout
        self.poly_norm = BatchNorm1d(poly_channels) if poly_channels else None
        self.edge_norm = BatchNorm1d(edge_poly_channels) if edge_poly_channels else None
        self.convs = ModuleList()
        for k in range(num_layers):
            c = in_channels + poly_channels if k == 0 else hidden_channels
            mlp = Sequential(Linear(c, hidden_channels), BatchNorm1d(hidden_channels), ReLU(),
                             Linear(hidden_channels, hidden_channels), ReLU())
            if edge_poly_channels:
                self.convs.append(GINEConv(mlp, train_eps=True, edge_dim=edge_poly_channels))
            else:
                self.convs.append(GINConv(mlp, train_eps=True))
        self.head1 = Linear(hidden_channels * num_layers, hidden_channels)
        self.head2 = Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for norm in (self.poly_norm, self.edge_norm):
            if norm is not None:
                norm.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.head1.reset_parameters()
        self.head2.reset_parameters()

    def forward(self, x: Optional[Tensor], edge_index: Tensor, batch: Optional[Tensor] = None,
                poly_x: Optional[Tensor] = None, poly_edge_attr: Optional[Tensor] = None,
                num_graphs: Optional[int] = None) -> Tensor:
        parts = []
        if self.in_channels:
            if x is None or x.dim() != 2 or x.size(1) != self.in_channels:
                raise ValueError(f"GINPoly: expected x of shape (N, {self.in_channels}), got "
                                 f"{None if x is None else tuple(x.shape)}")
            parts.append(x.float() if not x.is_floating_point() else x)
        if self.poly_norm is not None:
            if poly_x is None or poly_x.dim() != 2 or poly_x.size(1) != self.poly_channels:
                raise ValueError(f"GINPoly: expected poly_x of shape (N, {self.poly_channels}), "
                                 f"got {None if poly_x is None else tuple(poly_x.shape)}")
            parts.append(self.poly_norm(poly_x.to(parts[0].dtype if parts else torch.float)))
        h = torch.cat(parts, -1)
        e = None
        if self.edge_norm is not None:
            if poly_edge_attr is None or poly_edge_attr.shape != (edge_index.size(1),
                                                                  self.edge_poly_channels):
                raise ValueError(f"GINPoly: expected poly_edge_attr of shape "
                                 f"({edge_index.size(1)}, {self.edge_poly_channels}), got "
                                 f"{None if poly_edge_attr is None else tuple(poly_edge_attr.shape)}")
            e = self.edge_norm(poly_edge_attr.to(h.dtype))
        if batch is None:
            batch = torch.zeros(h.size(0), dtype=torch.long, device=h.device)
        pool = global_add_pool if self.pool == "sum" else global_mean_pool
        pooled = []
        for conv in self.convs:
            h = conv(h, edge_index, e) if e is not None else conv(h, edge_index)
            pooled.append(pool(h, batch, num_graphs))
        z = torch.relu(self.head1(torch.cat(pooled, -1)))
        z = torch.nn.functional.dropout(z, self.dropout, self.training)
        return self.head2(z)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, poly={self.poly_channels}, "
                f"edge_poly={self.edge_poly_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers})")
