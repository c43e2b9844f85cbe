"""Private parts of :class:`graphkit.nn.models.nat.NAT`: time encoding and GRU node memory."""
from __future__ import annotations

import torch
from torch import Tensor


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
        return torch.cos(self.lin(torch.log1p(dt.clamp(min=0)).unsqueeze(-1)))


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
        mem = self.memory[n_id]
        pend = self.pending[n_id]
        if not bool(pend.any()):
            return mem
        idx = n_id[pend]
        inp = torch.cat([self.memory[idx], self.memory[self.pend_other[idx]], self.pend_msg[idx],
                         self.time_enc(self.pend_t[idx] - self.last_update[idx])], dim=-1)
        new = self.gru(inp, self.memory[idx])
        pos = pend.nonzero().view(-1)
        return mem.index_put((pos,), new)

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
        order = torch.arange(a.numel(), device=a.device)
        best = torch.full((self.num_nodes,), -1, dtype=torch.long, device=a.device)
        best.scatter_reduce_(0, a, order, reduce="amax")
        win = best[a] == order
        node = a[win]
        self.pend_other[node] = b[win]
        self.pend_t[node] = t.repeat_interleave(2)[win].to(self.pend_t.dtype)
        self.pend_msg[node] = msg.repeat_interleave(2, 0)[win].to(self.pend_msg.dtype)
        self.pending[node] = True


def masked_attention(q: Tensor, entry: Tensor, mask: Tensor, key: torch.nn.Linear,
                     value: torch.nn.Linear) -> Tensor:
    r"""Multi-head attention of one query per row over ``M`` entries, with keys
    :math:`W_k e_m + b_k` and values :math:`W_v e_m + b_v`: ``q (R, H, C)``, ``entry (R, M, E)``,
    ``mask (R, M)`` (``False`` = ignored) → ``(R, H * C)``; rows without a valid entry give 0.

    The projections are applied on the query side and after pooling
    (:math:`q^\top(W_k e) = (W_k^\top q)^\top e`; the key bias is constant over entries and
    cancels in the softmax; :math:`\sum_m a_m (W_v e_m + b_v) = W_v \sum_m a_m e_m + b_v
    \sum_m a_m`), so no ``(R, M, H * C)`` tensor is formed."""
    r, h, c = q.shape
    wk = key.weight.view(h, c, -1)
    qk = torch.einsum("rhc,hce->rhe", q, wk)                            # (R, H, E)
    score = torch.einsum("rme,rhe->rmh", entry, qk) / c ** 0.5          # (R, M, H)
    score = score.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    attn = torch.softmax(score, dim=1)
    attn = torch.nan_to_num(attn, nan=0.0)  # rows without any entry: all -inf
    pooled = torch.einsum("rmh,rme->rhe", attn, entry)                  # (R, H, E)
    out = torch.einsum("rhe,hce->rhc", pooled, value.weight.view(h, c, -1))
    out = out + value.bias.view(h, c) * attn.sum(1).unsqueeze(-1)
    return out.reshape(r, h * c)


def pair_counts(keys_a: Tensor, keys_b: Tensor, hop_onehot: Tensor) -> Tensor:
    r"""For every entry ``w`` of ``keys_a (B, M)``: how often ``w`` occurs in each hop of
    ``keys_b (B, M)`` (``-1`` entries match nothing), as ``(B, M, H + 1)``."""
    return torch.matmul(match(keys_a, keys_b, hop_onehot.dtype), hop_onehot)


def match(keys_a: Tensor, keys_b: Tensor, dtype: torch.dtype) -> Tensor:
    r"""``(B, M, M)`` indicator ``keys_a[:, i] == keys_b[:, j]`` with empty (``-1``) entries
    matching nothing (the empty slots of ``keys_b`` are renamed ``-2``)."""
    keys_b = keys_b.masked_fill(keys_b < 0, -2)
    return (keys_a.unsqueeze(2) == keys_b.unsqueeze(1)).to(dtype)


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


__all__ = ["LogTimeEncoder", "GRUMemory", "masked_attention", "pair_counts", "match", "relu_mlp", "reset_mlp"]
