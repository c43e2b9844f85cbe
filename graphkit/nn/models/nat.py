r"""NAT, the neighbourhood-aware temporal network model of Luo & Li, LoG 2022."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from graphkit.nn.models._nat import (
    GRUMemory,
    LogTimeEncoder,
    code_bits,
    joint_codes,
    masked_attention,
    relu_mlp,
    reset_mlp,
)
from graphkit.temporal.data import check_event_batch
from graphkit.temporal.ncache import NCache
from graphkit.utils import fast_dropout

__all__ = ["NAT"]


class NAT(torch.nn.Module):
    r"""The neighbourhood-aware temporal network model from `"Neighborhood-aware Scalable
    Temporal Network Representation Learning" <https://arxiv.org/abs/2209.01084>`_ (Luo & Li,
    LoG 2022), for temporal link prediction.

    Every node :math:`u` has a *self representation* :math:`s_u` (a GRU memory updated from its
    events, :math:`D` = ``self_dim``) and *N-caches* (:class:`~graphkit.temporal.NCache`) holding
    down-sampled 1..H-hop neighbours with small representations
    :math:`x_w = W_n s_w \in \mathbb{R}^{d}` (``ngh_dim``) written when the event happened.
    To score a pair :math:`(u, v)` at time :math:`t`, the joint neighbourhood of each endpoint
    is its own entry (hop 0, :math:`x_u = W_n s_u`) plus its cached entries. Every entry
    :math:`w` of :math:`u` gets a joint structural feature: how often :math:`w` occurs in each
    hop of :math:`u`'s own entries and of its partner :math:`v`'s entries (keys matched across
    the two caches; empty slots match nothing),

    .. math::
        c_w = \big[\,\#_{0..H}(w \in \mathcal{N}_u),\ \#_{0..H}(w \in \mathcal{N}_v)\big]
        \in \mathbb{N}^{2(H+1)},

    encoded as :math:`p_w = \mathrm{MLP}(\log(1 + c_w))` (``pos_dim``). A key occurs at most
    once per hop of an N-cache, so every count is 0 or 1: it is found by one gather at the
    key's hashed slot, and with :math:`2(H+1) \le 10` the encoder runs once per batch on all
    :math:`2^{2(H+1)}` possible vectors, entries picking their row. Entries
    :math:`e_w = [x_w \,\|\, p_w \,\|\, \phi(t - \tau_w)]` are pooled by multi-head attention
    with query :math:`s_u`, and

    .. math::
        \hat{y}_{uv} = \mathrm{MLP}\big([h_u \,\|\, s_u \,\|\, h_v \,\|\, s_v]\big),\qquad
        h_u = \mathrm{Attn}(s_u, \{e_w\}_{w \in \mathcal{N}_u}).

    The model is stateful: :meth:`forward` scores pairs from the state left by earlier events
    only; :meth:`update_state` must then be called with the scored batch's events (memory
    first, then N-caches, whose stored values are detached). Events must come in time order:
    a batch whose times decrease, or that is earlier than an event already fed, is a
    :class:`ValueError` (:meth:`reset_state` starts over); so are negative or non-finite
    times (the empty state counts from time 0) and ids outside ``[0, num_nodes)``. Gradients
    reach the GRU through the pending messages applied inside :meth:`forward` (as TGN) and
    :math:`W_n` through the hop-0 entries.

    Differences from the reference code: time gaps are encoded as
    :math:`\cos(w \log(1+\Delta t) + b)`; stored cache entries take the time of the event that
    wrote them; the memory keeps each node's last message (TGN's "last" aggregator).

    Args:
        num_nodes (int): number of nodes; ids lie in ``[0, num_nodes)``.
        msg_dim (int): width of event features (``0`` for none). (default: ``0``)
        self_dim (int): memory width :math:`D`. (default: ``72``)
        ngh_dim (int): width :math:`d` of cached neighbour representations. (default: ``4``)
        pos_dim (int): width of the joint-feature encoding. (default: ``16``)
        time_dim (int): width of the time encoding :math:`\phi`. (default: ``1``)
        num_neighbors (Sequence[int]): N-cache slots per hop. (default: ``(32, 16)``)
        heads (int): attention heads. (default: ``2``)
        dropout (float): dropout on the pooled representation. (default: ``0.1``)
        replace_prob (float): :math:`\alpha` of the N-caches. (default: ``0.9``)
        hash_seed (int): seed of the N-cache hash. (default: ``0``)

    Shapes:
        - :meth:`forward`: ``src, dst, t`` :math:`(B,)` → logits :math:`(B,)`.
        - :meth:`update_state`: ``src, dst, t`` :math:`(B,)`, ``msg`` :math:`(B, F)`.
    """

    _TABLE_BITS = 10

    def __init__(self, num_nodes: int, msg_dim: int = 0, self_dim: int = 72, ngh_dim: int = 4,
                 pos_dim: int = 16, time_dim: int = 1, num_neighbors: Sequence[int] = (32, 16),
                 heads: int = 2, dropout: float = 0.1, replace_prob: float = 0.9,
                 hash_seed: int = 0):
        super().__init__()
        for name, val, lo in (("num_nodes", num_nodes, 1), ("msg_dim", msg_dim, 0),
                              ("self_dim", self_dim, 1), ("ngh_dim", ngh_dim, 1),
                              ("pos_dim", pos_dim, 1), ("time_dim", time_dim, 1), ("heads", heads, 1)):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise ValueError(f"NAT: {name} must be an int >= {lo}, got {val!r}")
        self.num_nodes, self.msg_dim, self.self_dim = num_nodes, msg_dim, self_dim
        self.ngh_dim, self.pos_dim, self.time_dim = ngh_dim, pos_dim, time_dim
        self.num_neighbors = tuple(int(k) for k in num_neighbors)
        self.heads, self.dropout = heads, float(dropout)
        self.memory = GRUMemory(num_nodes, self_dim, msg_dim, time_dim)
        # time of the latest event fed to update_state (-inf: none); scoring or feeding an
        # earlier event is an error
        self.register_buffer("last_time", torch.tensor(float("-inf")), persistent=False)
        self.ncache = NCache(num_nodes, self.num_neighbors, ngh_dim, replace_prob, hash_seed)
        hops = len(self.num_neighbors)
        self.ngh_encoder = torch.nn.Linear(self_dim, ngh_dim)
        self.time_enc = LogTimeEncoder(time_dim)
        self.pos_encoder = relu_mlp([2 * (hops + 1), pos_dim, pos_dim])
        entry_dim = ngh_dim + pos_dim + time_dim
        self.head_dim = max(1, self_dim // heads)
        self.query = torch.nn.Linear(self_dim, heads * self.head_dim)
        self.key = torch.nn.Linear(entry_dim, heads * self.head_dim)
        self.value = torch.nn.Linear(entry_dim, heads * self.head_dim)
        rep = heads * self.head_dim + self_dim
        self.out = relu_mlp([2 * rep, self_dim, 1])
        # joint features are 0/1 per hop (a key occurs at most once per hop of a cache): with
        # few hops, the position encoder is evaluated once per batch on every possible code
        self.num_code_bits = 2 * (hops + 1)
        if self.num_code_bits <= self._TABLE_BITS:
            table = code_bits(torch.arange(2 ** self.num_code_bits), self.num_code_bits,
                              torch.float)
            self.register_buffer("code_table", torch.log1p(table), persistent=False)
        else:
            self.code_table = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every weight and empty the memory and the N-caches."""
        self.memory.reset_parameters()
        self.ncache.reset_state()
        self.ngh_encoder.reset_parameters()
        self.time_enc.reset_parameters()
        reset_mlp(self.pos_encoder)
        for lin in (self.query, self.key, self.value):
            lin.reset_parameters()
        reset_mlp(self.out)

    def reset_state(self) -> None:
        """Forget all events: empty memory, pending messages and N-caches."""
        self.memory.reset_state()
        self.ncache.reset_state()
        self.last_time.fill_(float("-inf"))

    # ------------------------------------------------------------------------------------------
    def _check(self, src: Tensor, dst: Tensor, t: Tensor, where: str,
               ordered: bool = False) -> None:
        check_event_batch(src, dst, t, self.num_nodes, where, self.last_time, ordered)

    def _position_table(self, code: Tensor, dtype: torch.dtype):
        """``(table, index)`` with ``table[index] = pos_encoder(log1p(counts))`` of every entry,
        from its bit code: the encoder runs on every possible code (or on the codes present),
        never once per entry."""
        if self.code_table is not None:
            return self.pos_encoder(self.code_table.to(dtype)), code
        uniq, index = torch.unique(code, return_inverse=True)
        return self.pos_encoder(torch.log1p(code_bits(uniq, self.num_code_bits, dtype))), index

    def forward(self, src: Tensor, dst: Tensor, t: Tensor) -> Tensor:
        self._check(src, dst, t, "NAT.forward")
        b = src.numel()
        nodes = torch.cat([src, dst]).long()
        uniq, inv = torch.unique(nodes, return_inverse=True)
        z = self.memory(uniq)[inv]                                          # (2B, D)
        keys, vals, times = self.ncache._lookup(nodes)
        tt = torch.cat([t, t]).to(times.dtype)
        keys = torch.cat([nodes.view(-1, 1), keys], 1)                      # (2B, M)
        vals = torch.cat([self.ngh_encoder(z).unsqueeze(1), vals.to(z.dtype)], 1)
        dt = torch.cat([torch.zeros_like(tt).view(-1, 1), tt.view(-1, 1) - times], 1)
        partner = torch.arange(2 * b, device=nodes.device).roll(b)         # src row <-> dst row
        table, code = self._position_table(joint_codes(keys, partner, self.ncache), z.dtype)
        # entries [x_w || p_w || phi(dt)]; p_w = table[code] is never formed per entry, the
        # others are stored entries-last and passed as a transposed view (see
        # table_attention_pool)
        entry = torch.cat([vals.transpose(1, 2), self.time_enc(dt.to(z.dtype)).transpose(1, 2)],
                          1).transpose(1, 2)                                 # (2B, M, d + time)
        h, c = self.heads, self.head_dim
        q = self.query(z).view(-1, h, c)
        pooled = masked_attention(q, entry, keys >= 0, self.key, self.value, table=table,
                                  code=code, table_at=self.ngh_dim)
        rep = fast_dropout(torch.cat([pooled, z], -1), self.dropout, self.training)
        return self.out(torch.cat([rep[:b], rep[b:]], -1)).view(-1)

    @torch.no_grad()
    def update_state(self, src: Tensor, dst: Tensor, t: Tensor, msg: Optional[Tensor] = None
                     ) -> None:
        """Feed a batch of events (already scored) to the memory and the N-caches."""
        self._check(src, dst, t, "NAT.update_state", ordered=True)
        src, dst = src.long(), dst.long()
        if msg is None:
            msg = torch.zeros(src.numel(), self.msg_dim, device=src.device)
        if msg.dim() != 2 or msg.size(0) != src.numel() or msg.size(1) != self.msg_dim:
            raise ValueError(f"NAT.update_state: msg must have shape ({src.numel()}, "
                             f"{self.msg_dim}) (msg_dim={self.msg_dim}), got {tuple(msg.shape)}")
        if msg.numel() and not bool(torch.isfinite(msg).all()):
            raise ValueError("NAT.update_state: msg holds NaN or infinite values")
        if not src.numel():
            return
        self.memory.update_state(src, dst, t, msg)
        a = torch.stack([src, dst], 1).view(-1)
        o = torch.stack([dst, src], 1).view(-1)
        value = self.ngh_encoder(self.memory.memory[o])
        self.ncache._update(a, o, t.repeat_interleave(2), value)  # ids and times checked above
        self.last_time.copy_(torch.maximum(self.last_time, t.max().to(self.last_time.dtype)))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_nodes}, msg_dim={self.msg_dim}, "
                f"self_dim={self.self_dim}, ngh_dim={self.ngh_dim}, pos_dim={self.pos_dim}, "
                f"num_neighbors={self.num_neighbors}, heads={self.heads})")
