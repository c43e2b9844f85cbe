r"""PPGN: the edge-based 2-IGN with matrix-multiplication blocks, and PPGN++ (PPGN fed with the
polynomial features it cannot compute)."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor
from torch.nn import Linear, ModuleList, ReLU, Sequential

from graphkit.utils.dense_batch import DEFAULT_MAX_NODES, dense_adjacency, pair_mask

__all__ = ["PPGN"]


def _mlp(in_channels: int, out_channels: int, layers: int) -> Sequential:
    mods: List[torch.nn.Module] = []
    for k in range(layers):
        mods.append(Linear(in_channels if k == 0 else out_channels, out_channels))
        mods.append(ReLU())
    return Sequential(*mods)


class PPGN(torch.nn.Module):
    r"""The Provably Powerful Graph Network from `"Provably Powerful Graph Networks"
    <https://arxiv.org/abs/1905.11136>`_ (Maron et al., NeurIPS 2019), and PPGN++ from
    `"Equivariant Polynomials for Graph Neural Networks" <https://arxiv.org/abs/2302.11556>`_
    (Puny et al., ICML 2023) when given extra pair features.

    Every graph of the batch becomes a dense pair tensor
    :math:`\mathbf{X}^{(0)} \in \mathbb{R}^{n \times n \times C_0}` whose channels are the
    adjacency, the edge attributes (on the edges), the node features (on the diagonal) and the
    optional pair features (PPGN++: the equivariant polynomials PPGN's products cannot build,
    from :class:`~graphkit.transforms.equivariant_polynomials.EquivariantPolynomials` with
    ``subset="ppgn++", pairs=True``). Each block multiplies two pair-wise MLPs channel by
    channel as matrices and mixes the result with its input:

    .. math::
        \mathbf{M}_{:,:,c} = \frac{1}{s}\, m_1(\mathbf{X}^{(l)})_{:,:,c}\;
        m_2(\mathbf{X}^{(l)})_{:,:,c}, \qquad
        \mathbf{X}^{(l+1)} = m_3\big([\mathbf{X}^{(l)} \,\|\, \mathbf{M}]\big),

    with :math:`s = n` (the graph's node count) when ``normalize`` else 1. The graph embedding
    concatenates, over blocks, the sum (or mean) of the diagonal and of the off-diagonal
    entries, and an MLP maps it to ``out_channels``. Padding never leaks: padded pairs are
    zeroed after every block. Cost per block: :math:`O(n^3)` time and :math:`O(n^2)` memory per
    channel and graph; graphs above ``max_nodes`` nodes raise a :class:`ValueError`.

    Input conventions: the adjacency channel holds :math:`A_{ij}` = the number of edges
    :math:`i \to j` (``edge_index[0]`` is the source; parallel edges add up), so directed graphs
    give a non-symmetric :math:`\mathbf{A}` (the model stays permutation invariant) and a
    self-loop at :math:`i` sets :math:`A_{ii}` (remove loops first to ignore them). There is no
    ``edge_weight`` argument: pass weights as a 1-channel ``edge_attr`` (``edge_channels=1``).
    A graph without edges, or with a single node, gives a finite embedding (a single node has
    no off-diagonal pair: that mean is 0).

    PPGN++:

    .. code-block:: python

        poly = EquivariantPolynomials(degree=6, level="edge", subset="ppgn++", pairs=True,
                                      log=True)
        model = PPGN(in_channels, 64, out_channels, pair_channels=poly.num_edge_features)
        data = poly(data)  # or dataset.transform = poly
        out = model(data.x, data.edge_index, data.batch, pair_index=data.poly_pair_index,
                    pair_attr=data.poly_pair_attr)

    Args:
        in_channels (int): node feature size (``0``: no node features).
        hidden_channels (int): channels of every block.
        out_channels (int): output size (classes or regression targets).
        num_layers (int): number of blocks. (default: ``4``)
        edge_channels (int): edge attribute size (``0``: none). (default: ``0``)
        pair_channels (int): size of extra pair features (PPGN++; ``0``: plain PPGN).
            (default: ``0``)
        mlp_layers (int): depth of :math:`m_1, m_2`. (default: ``2``)
        readout (str): ``"sum"`` or ``"mean"`` over the diagonal / off-diagonal entries.
            (default: ``"mean"``, as in the PPGN++ code)
        normalize (bool): divide each matrix product by the graph's node count (bounds the
            activations of large graphs; on MUTAG it slowed training down markedly with the
            mean readout). (default: ``False``, as in PPGN)
        dropout (float): dropout before the last linear layer. (default: ``0.0``)
        max_nodes (int): largest graph accepted. (default: ``512``)

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, edge indices :math:`(2, E)`, batch
          vector :math:`(N)` (optional), edge features :math:`(E, F_{e})` (optional), pair
          indices :math:`(2, P)` and pair features :math:`(P, F_{p})` (PPGN++)
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 4, edge_channels: int = 0, pair_channels: int = 0,
                 mlp_layers: int = 2, readout: str = "mean", normalize: bool = False,
                 dropout: float = 0.0, max_nodes: int = DEFAULT_MAX_NODES) -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 0), ("hidden_channels",
                                 hidden_channels, 1), ("out_channels", out_channels, 1),
                                 ("num_layers", num_layers, 1), ("edge_channels", edge_channels,
                                 0), ("pair_channels", pair_channels, 0),
                                 ("mlp_layers", mlp_layers, 1), ("max_nodes", max_nodes, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PPGN: {name} must be an int >= {low}, got {value!r}")
        if readout not in ("sum", "mean"):
            raise ValueError(f"PPGN: readout must be 'sum' or 'mean', got {readout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"PPGN: dropout must lie in [0, 1), got {dropout!r}")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.out_channels, self.num_layers = out_channels, num_layers
        self.edge_channels, self.pair_channels = edge_channels, pair_channels
        self.mlp_layers, self.readout, self.normalize = mlp_layers, readout, normalize
        self.dropout, self.max_nodes = dropout, max_nodes
        c = 1 + in_channels + edge_channels + pair_channels
        self.m1, self.m2, self.m3 = ModuleList(), ModuleList(), ModuleList()
        for _ in range(num_layers):
            self.m1.append(_mlp(c, hidden_channels, mlp_layers))
            self.m2.append(_mlp(c, hidden_channels, mlp_layers))
            self.m3.append(_mlp(c + hidden_channels, hidden_channels, 1))
            c = hidden_channels
        self.head1 = Linear(2 * hidden_channels * num_layers, hidden_channels)
        self.head2 = Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if isinstance(mod, Linear):
                mod.reset_parameters()

    def dense_input(self, x: Optional[Tensor], edge_index: Tensor,
                    batch: Optional[Tensor] = None, edge_attr: Optional[Tensor] = None,
                    pair_index: Optional[Tensor] = None, pair_attr: Optional[Tensor] = None):
        """The padded input tensor ``(B, n, n, C_0)`` and the node mask ``(B, n)``."""
        from torch_geometric.utils import to_dense_adj, to_dense_batch

        num_nodes = x.size(0) if x is not None else (batch.numel() if batch is not None
                                                      else None)
        dtype = self.head2.weight.dtype  # follows .double() / .half()
        if self.in_channels and (x is None or x.dim() != 2 or x.size(1) != self.in_channels):
            raise ValueError(f"PPGN: expected node features of shape (N, {self.in_channels}), "
                             f"got {None if x is None else tuple(x.shape)}")
        adj, mask = dense_adjacency(edge_index, batch, None, num_nodes, self.max_nodes, dtype)
        b, n = mask.shape
        if batch is None:
            batch = torch.zeros(mask.sum(), dtype=torch.long, device=edge_index.device)
        parts = [adj.unsqueeze(-1)]
        for name, index, attr, size in (("edge_attr", edge_index, edge_attr, self.edge_channels),
                                        ("pair_attr", pair_index, pair_attr, self.pair_channels)):
            if size == 0:
                continue
            if index is None or attr is None:
                raise ValueError(f"PPGN: {name} of size {size} is required "
                                 f"({name.split('_')[0]}_channels={size})")
            attr = attr.view(-1, 1) if attr.dim() == 1 else attr
            if attr.size(0) != index.size(1) or attr.size(1) != size:
                raise ValueError(f"PPGN: {name} must have shape ({index.size(1)}, {size}), got "
                                 f"{tuple(attr.shape)}")
            if index.numel():
                parts.append(to_dense_adj(index, batch, attr.to(dtype), max_num_nodes=n,
                                          batch_size=b))
            else:
                parts.append(adj.new_zeros(b, n, n, size))
        if self.in_channels:
            xd, _ = to_dense_batch(x.to(dtype), batch, max_num_nodes=n, batch_size=b)
            parts.append(torch.diag_embed(xd.transpose(1, 2)).permute(0, 2, 3, 1))
        return torch.cat(parts, -1), mask

    def forward(self, x: Optional[Tensor], edge_index: Tensor, batch: Optional[Tensor] = None,
                edge_attr: Optional[Tensor] = None, pair_index: Optional[Tensor] = None,
                pair_attr: Optional[Tensor] = None) -> Tensor:
        h, mask = self.dense_input(x, edge_index, batch, edge_attr, pair_index, pair_attr)
        pmask = pair_mask(mask).unsqueeze(-1).to(h.dtype)           # (B, n, n, 1)
        counts = mask.sum(1).clamp(min=1).to(h.dtype)                # (B,)
        eye = torch.eye(mask.size(1), dtype=h.dtype, device=h.device).unsqueeze(-1)
        diag_mask, off_mask = pmask * eye, pmask * (1 - eye)
        scale = counts.view(-1, 1, 1, 1) if self.normalize else None
        pooled = []
        for m1, m2, m3 in zip(self.m1, self.m2, self.m3):
            a = (m1(h) * pmask).permute(0, 3, 1, 2)                 # (B, C, n, n)
            c = (m2(h) * pmask).permute(0, 3, 1, 2)
            prod = torch.matmul(a, c).permute(0, 2, 3, 1)          # (B, n, n, C)
            if scale is not None:
                prod = prod / scale
            h = m3(torch.cat([h, prod], -1)) * pmask
            d = (h * diag_mask).sum((1, 2))
            o = (h * off_mask).sum((1, 2))
            if self.readout == "mean":
                d = d / counts.unsqueeze(1)
                o = o / (counts * (counts - 1)).clamp(min=1).unsqueeze(1)
            pooled += [d, o]
        z = torch.relu(self.head1(torch.cat(pooled, -1)))
        z = torch.nn.functional.dropout(z, self.dropout, self.training)
        return self.head2(z)

    def __repr__(self) -> str:
        extra = f", pair_channels={self.pair_channels}" if self.pair_channels else ""
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}{extra})")
