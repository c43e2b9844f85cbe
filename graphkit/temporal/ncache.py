r"""Neighbourhood caches (N-caches) of NAT, Luo & Li, "Neighborhood-aware Scalable Temporal
Network Representation Learning", LoG 2022 (https://arxiv.org/abs/2209.01084).

Every node keeps, for each hop :math:`h = 1..H`, a fixed number :math:`k_h` of slots. A slot
holds the id of a down-sampled :math:`h`-hop neighbour (its *key*), a small representation of
that neighbour (its *value*, :math:`d` floats) and the time the entry was written. A neighbour
``w`` can only live in slot :math:`\mathrm{slot}_h(w) = ((a_h w + b_h) \bmod p) \bmod k_h` of
a cache, so a batch of events updates all caches at once with scatter operations and a lookup
is a row gather.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["NCache"]

_PRIME = 2_147_483_647  # 2**31 - 1; ids below 2**31 keep a_h * id + b_h inside int64


def last_of_each(ids: Tensor) -> Tensor:
    """Positions of the last occurrence of every distinct value of ``ids`` (one stable sort)."""
    sids, perm = torch.sort(ids, stable=True)
    last = torch.ones_like(sids, dtype=torch.bool)
    last[:-1] = sids[1:] != sids[:-1]
    return perm[last]


class NCache(torch.nn.Module):
    r"""Per-node, per-hop hashed caches of down-sampled neighbours (the N-caches of
    `NAT <https://arxiv.org/abs/2209.01084>`_).

    **Update rule.** :meth:`update` takes a batch of directed insertions ``src[i] <- dst[i]`` at
    time ``t[i]`` with value ``value[i]``, row ``i`` being newer than every row ``j < i``.
    Every insertion produces candidates, all read from the state *before* the batch:

    * hop 1: key ``dst[i]``, value ``value[i]``, time ``t[i]`` for the cache of ``src[i]``;
    * hop :math:`h > 1`: every occupied entry ``(w, x, \tau)`` of the hop-:math:`(h-1)` cache of
      ``dst[i]`` becomes key ``w``, value ``x``, time ``t[i]`` for the hop-:math:`h` cache of
      ``src[i]`` (a neighbour of a neighbour is a neighbour one hop further).

    A candidate goes to slot :math:`\mathrm{slot}_h(w)` of its target. When several candidates
    of one batch aim at the same slot, only the **last** one counts (largest ``i``; within one
    insertion, the largest source slot). That candidate is written when the slot is empty or
    holds the same key (value and time are then refreshed), and otherwise replaces the
    occupant with probability :math:`\alpha` (``replace_prob``): it is written when its uniform
    draw is below :math:`\alpha`. The draws come from ``rand`` (for reproducing a run
    exactly) or from ``generator`` / torch's global generator.

    Since a key can only be written to its own slot, **a key occurs at most once in each
    hop's cache of a node**, always in slot :math:`\mathrm{slot}_h(w)`: whether ``w`` is in
    hop :math:`h` of node ``u`` is one gather, ``keys_h[u, slot_h(w)] == w`` (NAT's joint
    features rely on it).

    All state lives in registered buffers (it follows ``.to()``, ``.cuda()``, ``.double()``);
    nothing loops over events or nodes in Python.

    Args:
        num_nodes (int): number of nodes :math:`N`; ids must lie in ``[0, N)``.
        sizes (Sequence[int]): slots per hop :math:`(k_1, \dots, k_H)`. (default: ``(32, 16)``)
        dim (int): width :math:`d` of the stored values. (default: ``4``)
        replace_prob (float): :math:`\alpha`, probability that a new neighbour overwrites an
            occupied slot. (default: ``0.9``)
        hash_seed (int): seed of the hash constants :math:`a_h, b_h`. (default: ``0``)

    Shapes:
        - :meth:`update`: ``src, dst, t`` :math:`(E,)`, ``value`` :math:`(E, d)`.
        - :meth:`lookup`: ``nodes`` :math:`(B,)` → keys :math:`(B, S)` (``-1`` = empty),
          values :math:`(B, S, d)`, times :math:`(B, S)`, with :math:`S = \sum_h k_h`, hop
          :math:`h` in columns ``offsets[h-1]:offsets[h]``.
    """

    def __init__(self, num_nodes: int, sizes: Sequence[int] = (32, 16), dim: int = 4,
                 replace_prob: float = 0.9, hash_seed: int = 0):
        super().__init__()
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"NCache: num_nodes must be a positive int, got {num_nodes!r}")
        if isinstance(sizes, int):
            sizes = (sizes,)
        sizes = tuple(int(k) for k in sizes)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"NCache: sizes must be one or more positive slot counts, got {sizes}")
        if num_nodes >= _PRIME:
            raise ValueError(f"NCache: num_nodes must be below {_PRIME}, got {num_nodes}")
        if not 0.0 <= float(replace_prob) <= 1.0:
            raise ValueError(f"NCache: replace_prob must lie in [0, 1], got {replace_prob}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise ValueError(f"NCache: dim must be a non-negative int, got {dim!r}")
        self.num_nodes, self.sizes, self.dim = num_nodes, sizes, dim
        self.replace_prob = float(replace_prob)
        self.hash_seed = int(hash_seed)
        gen = torch.Generator().manual_seed(self.hash_seed)
        a = torch.randint(1, _PRIME, (len(sizes),), generator=gen)
        b = torch.randint(0, _PRIME, (len(sizes),), generator=gen)
        self.register_buffer("hash_a", a, persistent=True)
        self.register_buffer("hash_b", b, persistent=True)
        offsets = [0]
        for k in sizes:
            offsets.append(offsets[-1] + k)
        self.offsets = tuple(offsets)
        # slot of every possible key per hop: a lookup table instead of multiplications and
        # two integer remainders per key and batch; rebuilt when a state dict brings other
        # hash constants
        self.register_buffer("slot_table", self._slot_table(), persistent=False)
        self.register_load_state_dict_post_hook(NCache._rebuild_slot_table)
        for h, k in enumerate(sizes):
            self.register_buffer(f"keys{h}", torch.full((num_nodes, k), -1, dtype=torch.long))
            self.register_buffer(f"values{h}", torch.zeros(num_nodes, k, dim))
            self.register_buffer(f"times{h}", torch.zeros(num_nodes, k))

    # ------------------------------------------------------------------------------------------
    @property
    def num_hops(self) -> int:
        return len(self.sizes)

    def _state(self, h: int) -> Tuple[Tensor, Tensor, Tensor]:
        return getattr(self, f"keys{h}"), getattr(self, f"values{h}"), getattr(self, f"times{h}")

    def reset_state(self) -> None:
        """Empty every cache."""
        for h in range(self.num_hops):
            keys, values, times = self._state(h)
            keys.fill_(-1)
            values.zero_()
            times.zero_()

    def reset_parameters(self) -> None:
        """The cache has no parameters; this empties it (for the PyG reset convention)."""
        self.reset_state()

    def slot(self, keys: Tensor, hop: int) -> Tensor:
        r"""Slot :math:`((a_h w + b_h) \bmod p) \bmod k_h` of neighbour ids ``keys`` in hop
        ``hop`` (1-based)."""
        h = hop - 1
        return (keys * self.hash_a[h] + self.hash_b[h]).remainder(_PRIME).remainder(self.sizes[h])

    def _slot_table(self) -> Tensor:
        ids = torch.arange(self.num_nodes, device=self.hash_a.device)
        return torch.stack([self.slot(ids, h + 1) for h in range(len(self.sizes))])

    @staticmethod
    def _rebuild_slot_table(module: "NCache", incompatible_keys) -> None:
        module.slot_table = module._slot_table()

    def _slot(self, keys: Tensor, hop: int) -> Tensor:
        """:meth:`slot` of valid ids (``0 <= keys < num_nodes``) from the table."""
        return self.slot_table[hop - 1][keys]

    def _check_ids(self, ids: Tensor, name: str, where: str) -> None:
        if ids.dtype not in (torch.long, torch.int, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"{where}: {name} must be an integer tensor, got {ids.dtype}")
        if ids.numel():
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.num_nodes:
                bad = int(torch.nonzero((ids < 0) | (ids >= self.num_nodes))[0, 0])
                raise ValueError(f"{where}: {name}[{bad}] = {int(ids.view(-1)[bad])} is outside "
                                 f"[0, {self.num_nodes})")

    # ------------------------------------------------------------------------------------------
    def lookup(self, nodes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Keys ``(B, S)`` (``-1`` for empty slots), values ``(B, S, d)`` and times ``(B, S)``
        of the caches of ``nodes``, hops side by side (see :attr:`offsets`)."""
        self._check_ids(nodes, "nodes", "NCache.lookup")
        return self._lookup(nodes.long())

    def _lookup(self, nodes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """:meth:`lookup` without the id check (``nodes``: valid ``long`` ids)."""
        if self.num_hops == 1:
            return self.keys0[nodes], self.values0[nodes], self.times0[nodes]
        keys, values, times = [], [], []
        for h in range(self.num_hops):
            k, v, t = self._state(h)
            keys.append(k[nodes])
            values.append(v[nodes])
            times.append(t[nodes])
        return torch.cat(keys, 1), torch.cat(values, 1), torch.cat(times, 1)

    def hop_index(self) -> Tensor:
        """``(S,)`` hop number (1-based) of every lookup column."""
        return torch.repeat_interleave(torch.arange(1, self.num_hops + 1, device=self.keys0.device),
                                       torch.tensor(self.sizes, device=self.keys0.device))

    @torch.no_grad()
    def update(self, src: Tensor, dst: Tensor, t: Tensor, value: Tensor, *,
               rand: Optional[List[Tensor]] = None,
               generator: Optional[torch.Generator] = None) -> None:
        r"""Insert ``dst[i]`` (and its cached neighbours, one hop further) into the caches of
        ``src[i]`` for every row ``i`` at once (see the class docstring for the rule).

        Args:
            src, dst (Tensor): :math:`(E,)` node ids; row ``i`` is newer than rows ``j < i``.
            t (Tensor): :math:`(E,)` times.
            value (Tensor): :math:`(E, d)` representation of ``dst[i]`` stored at hop 1.
            rand (list of Tensor, optional): uniform draws deciding replacements: ``rand[0]``
                of shape :math:`(E,)` for hop 1 and ``rand[h-1]`` of shape
                :math:`(E, k_{h-1})` for hop :math:`h > 1`. (default: drawn)
            generator (torch.Generator, optional): generator of the draws when ``rand`` is
                not given.
        """
        where = "NCache.update"
        self._check_ids(src, "src", where)
        self._check_ids(dst, "dst", where)
        e = src.numel()
        if dst.numel() != e or t.numel() != e:
            raise ValueError(f"{where}: src, dst and t must have the same length, got {e}, "
                             f"{dst.numel()} and {t.numel()}")
        if value.dim() != 2 or value.shape != (e, self.dim):
            raise ValueError(f"{where}: value must have shape ({e}, {self.dim}), got "
                             f"{tuple(value.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{where}: t holds NaN or infinite times")
        if e == 0:
            return
        if rand is not None:
            expect = [e] + [e * k for k in self.sizes[:-1]]
            if len(rand) != self.num_hops:
                raise ValueError(f"{where}: rand must hold {self.num_hops} tensors, got {len(rand)}")
            for h, (r, n) in enumerate(zip(rand, expect)):
                if r.numel() != n:
                    raise ValueError(f"{where}: rand[{h}] has {r.numel()} draws, expected {n}")
        self._update(src.long().view(-1), dst.long().view(-1), t, value, rand, generator)

    @torch.no_grad()
    def _update(self, src: Tensor, dst: Tensor, t: Tensor, value: Tensor,
                rand: Optional[List[Tensor]] = None,
                generator: Optional[torch.Generator] = None) -> None:
        """:meth:`update` without input checks (``src``, ``dst``: valid ``long`` ids, ``t``
        finite, at least one row)."""
        device = self.keys0.device
        t = t.to(device=device, dtype=self.times0.dtype).view(-1)
        value = value.to(device=device, dtype=self.values0.dtype)
        # Every hop's candidates, gathered from the state before the batch, in priority order
        # (row by row; within a row, by source slot), with the positions ``pos`` of the
        # occupied source slots among all ``count`` of the hop (for the draws).
        cands = []
        for h in range(self.num_hops):
            if h == 0:
                cands.append((src, dst, value, t, None, src.numel()))
            else:
                pk, pv, _ = self._state(h - 1)
                k_prev = self.sizes[h - 1]
                prev = pk[dst]                                             # (E, k_prev)
                pos = (prev >= 0).view(-1).nonzero().view(-1)
                row = pos.div(k_prev, rounding_mode="floor")
                cell = dst[row] * k_prev + pos.remainder(k_prev)
                cands.append((src[row], prev.view(-1)[pos], pv.view(-1, self.dim)[cell], t[row],
                              pos, prev.numel()))
        for h, (target, key, val, tim, pos, count) in enumerate(cands):
            if rand is not None:
                r = rand[h].to(device).reshape(-1)
            else:
                r = torch.rand(count, generator=generator,
                               device=generator.device if generator is not None else None).to(device)
            if pos is not None:
                r = r[pos]
            keys, values, times = self._state(h)
            k = self.sizes[h]
            flat = target * k + self._slot(key, h + 1)
            # The winner of a slot is its last candidate: sort by slot (stable) and keep the
            # last of each run; O(C log C) for C candidates, no O(N) scratch array.
            win = last_of_each(flat)
            flat, key, val, tim, r = flat[win], key[win], val[win], tim[win], r[win]
            old = keys.view(-1)[flat]
            write = (old < 0) | (old == key) | (r < self.replace_prob)
            flat = flat[write]
            keys.view(-1)[flat] = key[write]
            values.view(-1, self.dim)[flat] = val[write]
            times.view(-1)[flat] = tim[write]

    def extra_repr(self) -> str:
        return (f"num_nodes={self.num_nodes}, sizes={self.sizes}, dim={self.dim}, "
                f"replace_prob={self.replace_prob}")
