"""Private parts of :class:`graphkit.nn.models.nat.NAT`: time encoding and GRU node memory."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from graphkit.temporal.ncache import last_of_each


class LogTimeEncoder(torch.nn.Module):
    r""":math:`\cos(w \log(1 + \Delta t) + b)` with learned :math:`w, b \in \mathbb{R}^d`."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.lin = torch.nn.Linear(1, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, dt: Tensor) -> Tensor:
        # the Linear(1, d) as a broadcast product: no matrix product with one inner column
        x = torch.log1p(dt.clamp(min=0)).unsqueeze(-1)
        return torch.cos(torch.addcmul(self.lin.bias, x, self.lin.weight.view(-1)))


class GRUMemory(torch.nn.Module):
    r"""Per-node memory :math:`s_u \in \mathbb{R}^D` updated by a GRU cell from the node's last
    pending message :math:`[s_u, s_w, e, \phi(t - t_u)]` (the other endpoint's memory, the
    event's features, the encoded time since the node's last update), as in TGN's memory with
    a "last" message aggregator, but with the message store in tensors.

    :meth:`forward` returns the memory of nodes with their pending message applied (with
    gradients to the GRU); :meth:`update_state` commits those updates (detached) for the nodes
    of a batch and then stores the batch's events as their new pending messages (when a node
    has several events in a batch, the last one is kept).
    """

    def __init__(self, num_nodes: int, memory_dim: int, msg_dim: int, time_dim: int):
        super().__init__()
        self.num_nodes, self.memory_dim, self.msg_dim = num_nodes, memory_dim, msg_dim
        self.time_enc = LogTimeEncoder(time_dim)
        self.gru = torch.nn.GRUCell(2 * memory_dim + msg_dim + time_dim, memory_dim)
        self.register_buffer("memory", torch.zeros(num_nodes, memory_dim))
        self.register_buffer("last_update", torch.zeros(num_nodes))
        self.register_buffer("pending", torch.zeros(num_nodes, dtype=torch.bool))
        self.register_buffer("pend_other", torch.zeros(num_nodes, dtype=torch.long))
        self.register_buffer("pend_t", torch.zeros(num_nodes))
        self.register_buffer("pend_msg", torch.zeros(num_nodes, msg_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.time_enc.reset_parameters()
        self.gru.reset_parameters()
        self.reset_state()

    def reset_state(self) -> None:
        self.memory.zero_()
        self.last_update.zero_()
        self.pending.zero_()
        self.pend_other.zero_()
        self.pend_t.zero_()
        self.pend_msg.zero_()

    def forward(self, n_id: Tensor) -> Tensor:
        # every row goes through the GRU and rows without a pending message keep their
        # memory (no data-dependent shapes, no host synchronisation)
        mem = self.memory[n_id]
        inp = torch.cat([mem, self.memory[self.pend_other[n_id]], self.pend_msg[n_id],
                         self.time_enc(self.pend_t[n_id] - self.last_update[n_id])], dim=-1)
        return torch.where(self.pending[n_id].unsqueeze(-1), self.gru(inp, mem), mem)

    @torch.no_grad()
    def update_state(self, src: Tensor, dst: Tensor, t: Tensor, msg: Tensor) -> None:
        nodes = torch.unique(torch.cat([src, dst]))
        self.memory[nodes] = self(nodes)
        pend = self.pending[nodes]
        self.last_update[nodes] = torch.where(pend, self.pend_t[nodes], self.last_update[nodes])
        self.pending[nodes] = False
        # new pending messages; event i gives src[i] a message from dst[i] and vice versa
        a = torch.stack([src, dst], 1).view(-1)
        b = torch.stack([dst, src], 1).view(-1)
        win = last_of_each(a)
        node = a[win]
        self.pend_other[node] = b[win]
        self.pend_t[node] = t.repeat_interleave(2)[win].to(self.pend_t.dtype)
        self.pend_msg[node] = msg.repeat_interleave(2, 0)[win].to(self.pend_msg.dtype)
        self.pending[node] = True


def _attention_weights(entry: Tensor, qk: Tensor, mask: Tensor) -> Tensor:
    score = torch.bmm(entry, qk.transpose(1, 2))                            # (R, M, H)
    score = score.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    return torch.nan_to_num(torch.softmax(score, dim=1), nan=0.0)  # rows without entries: 0


class _AttentionPool(torch.autograd.Function):
    """``pooled = softmax_M(entry qk^T)^T entry`` with a backward written as broadcast
    products over the few heads: autograd's backward of the batched products contracts over
    the head dimension (``(M, H) x (H, E)`` per row), which runs far below the speed of the
    forward on CPU. The backward is made of differentiable operations (recomputing the
    attention weights when a graph of the backward is asked for), so second derivatives
    work."""

    @staticmethod
    def forward(ctx, entry: Tensor, qk: Tensor, mask: Tensor) -> Tensor:
        attn = _attention_weights(entry, qk, mask)
        ctx.mask = mask
        ctx.save_for_backward(entry, qk, attn)
        return torch.bmm(attn.transpose(1, 2), entry)                       # (R, H, E)

    @staticmethod
    def backward(ctx, grad: Tensor):
        entry, qk, attn = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: weights as a function of the inputs
            attn = _attention_weights(entry, qk, ctx.mask)
        d_attn = torch.bmm(entry, grad.transpose(1, 2))                     # (R, M, H)
        d_score = attn * (d_attn - (d_attn * attn).sum(1, keepdim=True))
        d_entry = d_qk = None
        if ctx.needs_input_grad[0]:  # both terms in one batched product
            d_entry = torch.bmm(torch.cat([attn, d_score], 2), torch.cat([grad, qk], 1))
        if ctx.needs_input_grad[1]:
            d_qk = torch.bmm(d_score.transpose(1, 2), entry)                # (R, H, E)
        return d_entry, d_qk, None


def attention_pool(entry: Tensor, qk: Tensor, mask: Tensor) -> Tensor:
    r"""``(R, H, E)`` attention pooling :math:`\sum_m a_{rmh} e_{rm}` with
    :math:`a_{r\cdot h} = \mathrm{softmax}_m(e_{rm}^\top k_{rh})` over the entries with
    ``mask`` (rows without any: 0); ``entry (R, M, E)``, ``qk (R, H, E)``, ``mask (R, M)``."""
    if entry.dim() != 3 or qk.dim() != 3 or qk.size(0) != entry.size(0) or qk.size(2) != entry.size(2):
        raise ValueError(f"attention_pool: entry (R, M, E) and qk (R, H, E) expected, got "
                         f"{tuple(entry.shape)} and {tuple(qk.shape)}")
    if mask.shape != entry.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"attention_pool: mask must be a bool tensor of shape "
                         f"{tuple(entry.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
    return _AttentionPool.apply(entry, qk, mask)


def _table_attention_weights(entry_t: Tensor, qk: Tensor, pt: Tensor, code_h: Tensor,
                             mask_h: Tensor) -> Tensor:
    score = torch.bmm(qk, entry_t) + pt.gather(2, code_h)                   # (R, H, M)
    score = score.masked_fill(~mask_h, float("-inf"))
    return torch.nan_to_num(torch.softmax(score, dim=2), nan=0.0)  # rows without entries: 0


class _TableAttentionPool(torch.autograd.Function):
    """:func:`attention_pool` over entries ``[entry_m, table[code_m]]`` without forming the
    gathered table rows: their scores are one product of the table with the queries'
    table part (``(R, H, T)``) and a gather; their pooled part is the attention mass of each
    code (a scatter-add into ``(R, H, T)``) times the table. Scores and weights are laid out
    ``(R, H, M)`` (entries last: the softmax and the batched products run on contiguous
    rows). The backward is written in the same terms from differentiable operations
    (recomputing the weights when a graph of the backward is asked for), so second
    derivatives work."""

    @staticmethod
    def forward(ctx, entry: Tensor, qk: Tensor, table: Tensor, qkt: Tensor, code: Tensor,
                mask: Tensor):
        r, m, _ = entry.shape
        entry_t = entry.transpose(1, 2)                                     # (R, E, M)
        code_h = code.unsqueeze(1).expand(r, qk.size(1), m)                 # (R, H, M)
        mask_h = mask.unsqueeze(1)
        pt = torch.matmul(qkt, table.t())                                   # (R, H, T)
        attn = _table_attention_weights(entry_t, qk, pt, code_h, mask_h)    # (R, H, M)
        mass = torch.zeros_like(pt).scatter_add_(2, code_h, attn)           # (R, H, T)
        ctx.save_for_backward(entry, qk, table, qkt, code_h, mask_h, attn, mass)
        return torch.bmm(attn, entry), torch.matmul(mass, table)

    @staticmethod
    def backward(ctx, grad_e: Tensor, grad_t: Tensor):
        entry, qk, table, qkt, code_h, mask_h, attn, mass = ctx.saved_tensors
        entry_t = entry.transpose(1, 2)
        r, h, t = code_h.size(0), code_h.size(1), table.size(0)
        if torch.is_grad_enabled():  # create_graph=True: weights as a function of the inputs
            pt = torch.matmul(qkt, table.t())
            attn = _table_attention_weights(entry_t, qk, pt, code_h, mask_h)
            mass = torch.zeros_like(pt).scatter_add(2, code_h, attn)
        gt = torch.matmul(grad_t, table.t())                                # (R, H, T)
        d_attn = torch.bmm(grad_e, entry_t) + gt.gather(2, code_h)          # (R, H, M)
        d_score = attn * (d_attn - (d_attn * attn).sum(2, keepdim=True))   # (R, H, M)
        d_entry = d_qk = d_table = d_qkt = None
        if ctx.needs_input_grad[0]:  # both terms in one batched product, (R, E, M)
            d_entry = torch.bmm(torch.cat([grad_e, qk], 1).transpose(1, 2),
                                torch.cat([attn, d_score], 1)).transpose(1, 2)
        if ctx.needs_input_grad[1]:
            d_qk = torch.bmm(d_score, entry)                                # (R, H, E)
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            d_mass = torch.zeros(r, h, t, dtype=d_score.dtype, device=d_score.device).scatter_add(
                2, code_h, d_score)                                         # (R, H, T)
            if ctx.needs_input_grad[2]:
                d_table = (mass.reshape(r * h, t).t() @ grad_t.reshape(r * h, -1)
                           + d_mass.reshape(r * h, t).t() @ qkt.reshape(r * h, -1))
            if ctx.needs_input_grad[3]:
                d_qkt = torch.matmul(d_mass, table)
        return d_entry, d_qk, d_table, d_qkt, None, None


def table_attention_pool(entry: Tensor, qk: Tensor, table: Tensor, qkt: Tensor, code: Tensor,
                         mask: Tensor):
    r""":func:`attention_pool` of the entries :math:`[e_{rm} \,\|\, T_{c_{rm}}]` (each entry's
    own features and the row of a shared table picked by its code) with queries
    :math:`[k_{rh} \,\|\, k^T_{rh}]`, returned as the two parts ``(R, H, E)`` and
    ``(R, H, P)``, without forming the ``(R, M, P)`` gathered rows (see
    :class:`_TableAttentionPool`); ``entry (R, M, E)``, ``qk (R, H, E)``, ``table (T, P)``,
    ``qkt (R, H, P)``, ``code (R, M)`` integers in ``[0, T)``, ``mask (R, M)``. Fastest when
    ``entry`` is the transposed view of a contiguous ``(R, E, M)`` tensor."""
    if entry.dim() != 3 or qk.dim() != 3 or qk.size(0) != entry.size(0) or qk.size(2) != entry.size(2):
        raise ValueError(f"table_attention_pool: entry (R, M, E) and qk (R, H, E) expected, got "
                         f"{tuple(entry.shape)} and {tuple(qk.shape)}")
    if table.dim() != 2 or qkt.shape != (*qk.shape[:2], table.size(1)):
        raise ValueError(f"table_attention_pool: table (T, P) and qkt (R, H, P) expected, got "
                         f"{tuple(table.shape)} and {tuple(qkt.shape)}")
    if mask.shape != entry.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"table_attention_pool: mask must be a bool tensor of shape "
                         f"{tuple(entry.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
    if code.shape != entry.shape[:2] or code.dtype != torch.long:
        raise ValueError(f"table_attention_pool: code must be a long tensor of shape "
                         f"{tuple(entry.shape[:2])}, got {code.dtype} {tuple(code.shape)}")
    return _TableAttentionPool.apply(entry, qk, table, qkt, code, mask)


def masked_attention(q: Tensor, entry: Tensor, mask: Tensor, key: torch.nn.Linear,
                     value: torch.nn.Linear, table: Optional[Tensor] = None,
                     code: Optional[Tensor] = None, table_at: int = 0) -> Tensor:
    r"""Multi-head attention of one query per row over ``M`` entries, with keys
    :math:`W_k e_m + b_k` and values :math:`W_v e_m + b_v`: ``q (R, H, C)``, ``entry (R, M, E)``,
    ``mask (R, M)`` (``False`` = ignored) → ``(R, H * C)``; rows without a valid entry give 0.

    The projections are applied on the query side and after pooling
    (:math:`q^\top(W_k e) = (W_k^\top q)^\top e`; the key bias is constant over entries and
    cancels in the softmax; :math:`\sum_m a_m (W_v e_m + b_v) = W_v \sum_m a_m e_m + b_v
    \sum_m a_m` with :math:`\sum_m a_m` 1, or 0 for a row without entries), so no
    ``(R, M, H * C)`` tensor is formed; the pooling is :func:`attention_pool`.

    With ``table (T, P)`` and ``code (R, M)``, the entries are
    ``cat([entry[..., :table_at], table[code], entry[..., table_at:]], -1)`` (width ``E + P``,
    the width of ``key`` and ``value``), pooled by :func:`table_attention_pool` without
    forming ``table[code]``."""
    r, h, c = q.shape
    wk = key.weight.view(h, c, -1)
    qk = torch.einsum("rhc,hce->rhe", q, wk) / c ** 0.5                  # (R, H, E)
    if table is None:
        pooled = attention_pool(entry, qk, mask)                         # (R, H, E)
    else:
        p = table.size(1)
        lo, hi = table_at, table_at + p
        if code is None or not 0 <= table_at <= entry.size(2) or qk.size(2) != entry.size(2) + p:
            raise ValueError(f"masked_attention: a table of width {p} inserted at column "
                             f"{table_at} of entries of width {entry.size(2)} needs key/value "
                             f"inputs of width {entry.size(2) + p} and a code, got {qk.size(2)}")
        pe, pt = table_attention_pool(entry, torch.cat([qk[..., :lo], qk[..., hi:]], -1), table,
                                      qk[..., lo:hi], code, mask)
        pooled = torch.cat([pe[..., :lo], pt, pe[..., lo:]], -1)
    out = torch.einsum("rhe,hce->rhc", pooled, value.weight.view(h, c, -1))
    out = out + value.bias.view(h, c) * mask.any(1).to(out.dtype).view(-1, 1, 1)
    return out.reshape(r, h * c)


def joint_codes(keys: Tensor, partner: Tensor, ncache) -> Tensor:
    r"""The joint structural feature of every entry, as a bit code.

    ``keys (R, M)`` holds, per row, the row's own node in column 0 and then the row's N-cache
    keys laid out as :meth:`NCache.lookup` returns them (``-1`` = empty); ``partner (R,)`` is
    the row of the other endpoint of the pair. For entry ``w`` of row ``r``, bit ``j`` (for
    ``j = 0..H``) says whether ``w`` occurs in hop ``j`` of row ``r``'s own entries and bit
    ``H + 1 + j`` whether it occurs in hop ``j`` of the partner's (hop 0 = the node itself).
    Empty entries get code 0.

    A key occurs at most once per hop of an N-cache, in its hashed slot, so these bits *are*
    the occurrence counts of :class:`~graphkit.nn.models.nat.NAT` and each is found by one
    gather (``O(R M H)``) instead of comparing all pairs of entries (``O(R M^2)``)."""
    hops = ncache.num_hops
    pkeys = keys[partner]
    safe = keys.clamp(min=0)  # empty entries hash like node 0; their code is cleared below
    code = (keys == keys[:, :1]).long() | ((keys == pkeys[:, :1]).long() << (hops + 1))
    for h in range(hops):
        lo, hi = 1 + ncache.offsets[h], 1 + ncache.offsets[h + 1]
        slot = ncache._slot(safe, h + 1)
        code |= (keys[:, lo:hi].gather(1, slot) == keys).long() << (h + 1)
        code |= (pkeys[:, lo:hi].gather(1, slot) == keys).long() << (hops + 2 + h)
    return code.masked_fill(keys < 0, 0)


def code_bits(codes: Tensor, num_bits: int, dtype: torch.dtype) -> Tensor:
    r"""``(C,)`` integer codes → ``(C, num_bits)`` 0/1 matrix of their bits (bit 0 first)."""
    shift = torch.arange(num_bits, device=codes.device)
    return ((codes.view(-1, 1) >> shift) & 1).to(dtype)


def relu_mlp(sizes) -> torch.nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def reset_mlp(mlp: torch.nn.Sequential) -> None:
    for m in mlp:
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


__all__ = ["LogTimeEncoder", "GRUMemory", "masked_attention", "attention_pool",
           "table_attention_pool", "joint_codes", "code_bits", "relu_mlp", "reset_mlp"]
