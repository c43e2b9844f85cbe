r"""TGN (Rossi et al., 2020, https://arxiv.org/abs/2006.10637) assembled from PyG's parts, with
the stateful ``forward`` / ``update_state`` / ``reset_state`` interface of
:mod:`graphkit.temporal.train`, as the baseline NAT is compared with.

It is the configuration of PyG's TGN example: :class:`~torch_geometric.nn.models.TGNMemory`
(identity messages, last aggregator), one :class:`~torch_geometric.nn.conv.TransformerConv`
(2 heads) over each node's most recent neighbours from PyG's ``LastNeighborLoader``, with edge attributes
:math:`[\phi(t_{\text{last}}(j) - t_e) \,\|\, e]`, and a link predictor
:math:`w^\top \mathrm{ReLU}(W_s z_u + W_d z_v)`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from graphkit.temporal.data import check_event_batch

__all__ = ["TGNLinkPredictor"]


class TGNLinkPredictor(torch.nn.Module):
    r"""PyG's TGN (memory + graph attention embedding + link predictor) as one stateful module.

    Args:
        num_nodes (int): number of nodes.
        msg_dim (int): event feature width (``0`` for none).
        memory_dim (int): memory width. (default: ``100``)
        time_dim (int): time-encoding width. (default: ``100``)
        embedding_dim (int): output width of the attention layer. (default: ``100``)
        num_neighbors (int): most recent neighbours kept per node. (default: ``10``)

    Without event features (``msg_dim=0``) the messages are one zero column, since PyG's
    message store drops zero-width messages. Batches are validated as NAT's
    (:func:`~graphkit.temporal.data.check_event_batch`): ids in ``[0, num_nodes)``, finite
    non-negative times in order, never earlier than an event already fed (``reset_state``
    starts over), ``msg`` of width ``msg_dim`` and finite.

    Shapes:
        - :meth:`forward`: ``src, dst, t`` :math:`(B,)` (``t`` in integer time units) →
          logits :math:`(B,)`.
    """

    def __init__(self, num_nodes: int, msg_dim: int = 0, memory_dim: int = 100,
                 time_dim: int = 100, embedding_dim: int = 100, num_neighbors: int = 10):
        super().__init__()
        from torch_geometric.nn import TransformerConv
        from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator, TGNMemory
        try:
            from torch_geometric.nn.models.tgn import LastNeighborLoader
        except ImportError:  # other PyG releases keep it in torch_geometric.loader
            from torch_geometric.loader import LastNeighborLoader

        self.num_nodes, self.msg_dim = num_nodes, msg_dim
        width = max(msg_dim, 1)  # PyG's message store drops zero-width messages: pad to one zero
        self.memory = TGNMemory(num_nodes, width, memory_dim, time_dim,
                                message_module=IdentityMessage(width, memory_dim, time_dim),
                                aggregator_module=LastAggregator())
        self.conv = TransformerConv(memory_dim, embedding_dim // 2, heads=2, dropout=0.1,
                                    edge_dim=width + time_dim)
        self.lin_src = torch.nn.Linear(embedding_dim, embedding_dim)
        self.lin_dst = torch.nn.Linear(embedding_dim, embedding_dim)
        self.lin_out = torch.nn.Linear(embedding_dim, 1)
        self.neighbors = LastNeighborLoader(num_nodes, size=num_neighbors)
        self.register_buffer("assoc", torch.zeros(num_nodes, dtype=torch.long), persistent=False)
        self.register_buffer("ev_t", torch.zeros(1024, dtype=torch.long), persistent=False)
        self.register_buffer("ev_msg", torch.zeros(1024, width), persistent=False)
        # time of the latest event fed to update_state (-inf: none)
        self.register_buffer("last_time", torch.tensor(float("-inf")), persistent=False)
        self.num_events = 0

    def reset_parameters(self) -> None:
        self.memory.reset_parameters()
        self.conv.reset_parameters()
        for lin in (self.lin_src, self.lin_dst, self.lin_out):
            lin.reset_parameters()
        self.reset_state()

    def reset_state(self) -> None:
        self.memory.reset_state()
        if self.neighbors.e_id.device != self.assoc.device:  # follow the module's device
            self.neighbors = type(self.neighbors)(self.num_nodes, self.neighbors.size,
                                                  device=self.assoc.device)
        self.neighbors.reset_state()
        self.last_time.fill_(float("-inf"))
        self.num_events = 0

    def forward(self, src: Tensor, dst: Tensor, t: Tensor) -> Tensor:
        check_event_batch(src, dst, t, self.num_nodes, "TGNLinkPredictor.forward", self.last_time)
        n_id = torch.unique(torch.cat([src, dst]))
        n_id, edge_index, e_id = self.neighbors(n_id)
        self.assoc[n_id] = torch.arange(n_id.numel(), device=n_id.device)
        z, last_update = self.memory(n_id)
        rel_t = (last_update[edge_index[0]] - self.ev_t[e_id]).to(z.dtype)
        edge_attr = torch.cat([self.memory.time_enc(rel_t), self.ev_msg[e_id].to(z.dtype)], -1)
        z = self.conv(z, edge_index, edge_attr)
        h = self.lin_src(z[self.assoc[src]]) + self.lin_dst(z[self.assoc[dst]])
        return self.lin_out(h.relu()).view(-1)

    def update_state(self, src: Tensor, dst: Tensor, t: Tensor, msg: Tensor) -> None:
        where = "TGNLinkPredictor.update_state"
        check_event_batch(src, dst, t, self.num_nodes, where, self.last_time, ordered=True)
        if msg.dim() != 2 or msg.size(0) != src.numel() or msg.size(1) != self.msg_dim:
            raise ValueError(f"{where}: msg must have width {self.msg_dim} and one row per "
                             f"event, got shape {tuple(msg.shape)}")
        if msg.numel() and not bool(torch.isfinite(msg).all()):
            raise ValueError(f"{where}: msg holds NaN or infinite values")
        if not src.numel():
            return
        self.last_time.copy_(torch.maximum(self.last_time, t.max().to(self.last_time.dtype)))
        t = t.round().long()
        end = self.num_events + src.numel()
        if end > self.ev_t.numel():  # grow the event store (doubling)
            cap = max(end, 2 * self.ev_t.numel())
            self.ev_t = torch.cat([self.ev_t, self.ev_t.new_zeros(cap - self.ev_t.numel())])
            self.ev_msg = torch.cat([self.ev_msg, self.ev_msg.new_zeros(cap - self.ev_msg.size(0),
                                                                        self.ev_msg.size(1))])
        if self.msg_dim == 0:
            msg = msg.new_zeros(src.numel(), 1)
        self.ev_t[self.num_events:end] = t
        self.ev_msg[self.num_events:end] = msg.to(self.ev_msg.dtype)
        self.num_events = end
        self.memory.update_state(src, dst, t, msg.to(self.memory.memory.dtype))
        self.neighbors.insert(src, dst)
        self.memory.detach()
