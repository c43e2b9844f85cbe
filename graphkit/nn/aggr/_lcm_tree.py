"""Private machinery of :class:`~graphkit.nn.aggr.LCMAggregation`: the balanced-tree
reduction schedule, the reusable storage of the backward factors, the blockwise tree level
with its hand-written backward and the optional compiled block kernels."""
import functools
import math
import warnings
import weakref
from typing import Optional

import torch
from torch import Tensor

from graphkit.nn.aggr._utils import group_positions, is_sorted


class _Level:
    """One level of the reduction tree: rows ``left`` and ``left + 1`` of the level's input are
    combined into row ``dest_pair`` of its output and rows ``carry`` are copied to rows
    ``dest_carry``; ``pair_rows`` interleaves ``left`` and ``left + 1`` (rows of pair ``k``
    at ``2k`` and ``2k + 1``)."""
    __slots__ = ("left", "pair_rows", "dest_pair", "carry", "dest_carry", "num_rows")

    def __init__(self, left: Tensor, dest_pair: Tensor, carry: Tensor, dest_carry: Tensor):
        self.left, self.dest_pair, self.carry, self.dest_carry = left, dest_pair, carry, dest_carry
        self.pair_rows = torch.stack([left, left + 1], 1).view(-1)
        self.num_rows = dest_pair.numel() + dest_carry.numel()


class _TreePlan:
    r"""The balanced-tree schedule of a reduction over ``index``: the stable sorting
    permutation (``None`` if ``index`` is sorted), the :class:`_Level` of every tree level,
    the total number of pairs and the group of every row left at the end (``index``). It
    depends on ``index`` and ``dim_size`` only, so one plan serves every forward pass over the
    same groups."""

    def __init__(self, index: Tensor, dim_size: int) -> None:
        self.perm = None
        if not is_sorted(index):
            index, self.perm = torch.sort(index, stable=True)
        count, _, pos = group_positions(index, dim_size)
        # Every pair reduces the element count by one and every non-empty group ends with
        # one element, so the tree has |E| - (#non-empty groups) pairs in all.
        self.num_pairs = index.numel() - int((count > 0).sum())
        max_count = int(count.max()) if count.numel() > 0 else 0
        depth = math.ceil(math.log2(max_count)) if max_count > 1 else 0
        self.levels = []
        for _ in range(depth):
            size = count[index]
            even_rows = (pos % 2 == 0).nonzero().view(-1)
            is_pair = pos[even_rows] + 1 < size[even_rows]
            self.levels.append(_Level(even_rows[is_pair], is_pair.nonzero().view(-1),
                                      even_rows[~is_pair], (~is_pair).nonzero().view(-1)))
            index, pos = index[even_rows], pos[even_rows] // 2
            count = (count + 1) // 2
        self.index = index


class _PlanCache:
    """The last :class:`_TreePlan` of a module and what it was built for: the index tensor
    (held weakly), its version counter and ``dim_size``. Not copied by
    :func:`copy.deepcopy` or pickling."""

    def __init__(self) -> None:
        self.entry = None

    def get(self, key: Tensor, dim_size: int):
        if self.entry is None or key.is_inference():
            return None
        ref, version, size, plan = self.entry
        if ref() is key and key._version == version and size == dim_size:
            return plan
        return None

    def put(self, key: Tensor, dim_size: int, plan: _TreePlan) -> None:
        # inference tensors have no version counter: their plans are not kept
        self.entry = None if key.is_inference() else (
            weakref.ref(key), key._version, dim_size, plan)

    def __deepcopy__(self, memo):
        return _PlanCache()

    def __getstate__(self):
        return {"entry": None}


class _Lease:
    """One forward pass's hold on a set of factor planes: busy until the backward of all its
    ``levels`` tree levels has run, or until the graph (which owns the lease) is freed."""
    __slots__ = ("planes", "pending", "version", "__weakref__")

    def __init__(self, planes: list, levels: int) -> None:
        self.planes = planes
        self.pending = levels
        self.version = None  # the planes' version counters once the forward pass has filled them

    def versions(self) -> tuple:
        return tuple(p._version for p in self.planes)

    def level_done(self) -> None:
        self.pending -= 1


class _BufferPool:
    """Factor planes of one :class:`LCMAggregation`, reused across forward passes (see its
    ``reuse_buffers``). An entry is eight separately allocated flat buffers (one per factor, so
    that a compiled kernel can write each with plain stores) and the lease holding them. Not
    copied by :func:`copy.deepcopy` or pickling."""

    def __init__(self) -> None:
        self.entries = []  # [list of 8 flat buffers, weakref to the lease holding it, or None]

    @staticmethod
    def _free(entry) -> bool:
        lease = entry[1]() if entry[1] is not None else None
        return lease is None or lease.pending <= 0

    def lease(self, rows: int, like: Tensor, levels: int) -> _Lease:
        size = rows * like.size(-1)
        fits = [e for e in self.entries if e[0][0].dtype == like.dtype
                and e[0][0].device == like.device and self._free(e)]
        big = [e for e in fits if e[0][0].numel() >= size]
        if big:
            entry = min(big, key=lambda e: e[0][0].numel())
        else:  # free buffers too small for this call are dropped, not kept beside them
            self.entries = [e for e in self.entries if not any(e is f for f in fits)]
            entry = [_new_planes(size, like), None]
            self.entries.append(entry)
        lease = _Lease([p[:size].view(rows, like.size(-1)) for p in entry[0]], levels)
        entry[1] = weakref.ref(lease)
        return lease

    def clear(self) -> None:
        self.entries = [e for e in self.entries if not self._free(e)]

    def __deepcopy__(self, memo):
        return _BufferPool()

    def __getstate__(self):
        return {"entries": []}


_NUM_FACTORS = 8


def _new_planes(size: int, like: Tensor) -> list:
    return [like.new_empty(size) for _ in range(_NUM_FACTORS)]


_CHUNK = 2048  # pairs per block: the block's temporaries (~[2048, 128] floats) stay in cache


def _gru_pair_gates(p2: Tensor, w_plus: Tensor, w_minus: Tensor, b_rz: Tensor, w_n: Tensor,
                    b_n: Tensor, tanh=torch.tanh):
    r"""Gates of :math:`\mathrm{GRU}(a, b)` (slot 0) and :math:`\mathrm{GRU}(b, a)` (slot 1)
    for a block of pairs ``p2 = [a, b]`` of shape ``[P, 2, C]``.

    The reset/update pre-activations of both orders share one product: with
    :math:`S = a + b` and :math:`D = a - b`, :math:`W_i a + W_h b = U + V` and
    :math:`W_i b + W_h a = U - V` for :math:`U = \tfrac12(W_i + W_h) S + b` and
    :math:`V = \tfrac12(W_i - W_h) D`, 8 instead of 12 :math:`C^2` multiply-adds per pair.
    Returns ``(n_proj, rz0, rz1, n0, n1)`` with ``n_proj[:, s] = [W_in x_s + b_in,
    W_hn x_s + b_hn]``. ``tanh`` may work in place when no autograd graph is recorded."""
    c = p2.size(-1)
    a, b = p2[:, 0], p2[:, 1]
    u = torch.addmm(b_rz, a + b, w_plus.t())
    v = torch.mm(a - b, w_minus.t())
    n_proj = torch.addmm(b_n, p2.reshape(-1, c), w_n.t()).view(-1, 2, 2 * c)
    rz0 = torch.add(u, v).sigmoid_()
    rz1 = u.sub_(v).sigmoid_()
    # candidate of order s: tanh(W_in x_s + b_in + r_s * (W_hn x_{1-s} + b_hn))
    n0 = tanh(torch.addcmul(n_proj[:, 0, :c], rz0[:, :c], n_proj[:, 1, c:]))
    n1 = tanh(torch.addcmul(n_proj[:, 1, :c], rz1[:, :c], n_proj[:, 0, c:]))
    return n_proj, rz0, rz1, n0, n1


def _split_weights(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor):
    c = w_ih.size(1)
    w_plus = 0.5 * (w_ih[:2 * c] + w_hh[:2 * c])
    w_minus = 0.5 * (w_ih[:2 * c] - w_hh[:2 * c])
    b_rz = b_ih[:2 * c] + b_hh[:2 * c]
    w_n = torch.cat([w_ih[2 * c:], w_hh[2 * c:]], 0)
    b_n = torch.cat([b_ih[2 * c:], b_hh[2 * c:]], 0)
    return w_plus, w_minus, b_rz, w_n, b_n


# The per-pair factors kept by the forward for the backward, one [P, C] plane each: for order s
# (input x_s, hidden state x_{1-s}; x_0 = a, x_1 = b) planes 4s .. 4s + 3 hold
#   r_s, z_s              the reset and update gates,
#   n_s                   the candidate tanh(W_in x_s + b_in + r_s (W_hn x_{1-s} + b_hn)),
#   g_s = W_hn x_{1-s} + b_hn.
# The backward forms from them (and the pair's rows) the products of the output gradient dh with
#   q_s = (1 - z_s)(1 - n_s^2)          -> d(W_in x_s + b_in)
#   q_s r_s                             -> d(W_hn x_{1-s} + b_hn)
#   q_s r_s (1 - r_s) g_s               -> d(reset pre-activation)
#   z_s (1 - z_s)(x_{1-s} - n_s)        -> d(update pre-activation)
#   z_s                                 -> d(x_{1-s}) as the hidden state.
_R, _Z, _N, _G = 0, 1, 2, 3


def _slot_gradients(f: list, slot: int, dh: Tensor, hidden: Tensor, out: Optional[tuple] = None):
    r"""The five gradient products above for order ``slot`` (``f``: the eight planes of a block,
    ``hidden``: its rows :math:`x_{1-s}`): ``(q dh, q r dh, reset, update, z dh)``. With ``out``
    (four ``[P, C]`` views) the first four are written there in place (the eager path); without
    it every product is a new tensor (the compiled kernels, which fuse them)."""
    r, z, n, g = (f[4 * slot + k] for k in (_R, _Z, _N, _G))
    if out is None:
        q_dh = (1 - z) * (1 - n * n) * dh
        qr_dh = q_dh * r
        return q_dh, qr_dh, (1 - r) * g * qr_dh, z * (1 - z) * (hidden - n) * dh, z * dh
    one_minus_z = 1 - z
    q_dh = torch.mul(one_minus_z, 1 - n * n, out=out[0]).mul_(dh)
    qr_dh = torch.mul(q_dh, r, out=out[1])
    reset = torch.mul((1 - r).mul_(g), qr_dh, out=out[2])
    update = torch.mul((hidden - n).mul_(z).mul_(one_minus_z), dh, out=out[3])
    return q_dh, qr_dh, reset, update, z * dh


class _LCMLevel(torch.autograd.Function):
    r"""One level of the reduction tree with the operator
    :math:`\tfrac12(\mathrm{GRU}(a,b)+\mathrm{GRU}(b,a))`: rows ``left`` and ``left + 1``
    of ``x`` are combined into row ``dest_pair`` of the output, rows ``carry`` are copied
    to rows ``dest_carry`` (a :class:`_Level`).

    Forward and backward run over blocks of pairs, so the temporaries are small and
    cache-resident instead of a fresh ``[P, C]`` allocation per elementwise step. The
    forward keeps, per pair, the gates, candidates and hidden projections of both orders
    (eight factor planes, see :func:`_slot_gradients`), so the backward of all gates is a few
    broadcast products followed by the weight products; the autograd graph has one node per
    level.

    With compiled kernels every block has ``_CHUNK`` pairs: a level whose pair count is not a
    multiple of it ends with the block of its last ``_CHUNK`` pairs, which overlaps the block
    before. Its forward writes the same results and factors for the shared pairs again; its
    backward writes the same input gradients again and leaves the shared pairs out of the
    weight gradients (they are masked out of the products). Only levels with fewer pairs
    than one block run eagerly.

    Under ``create_graph=True`` (double backward) the backward does not use the factors: it
    recomputes the level with torch ops and lets autograd form a gradient that is itself
    differentiable (:func:`_differentiable_level_backward`)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, level, factors=None, lease=None,
                compiled=False):
        x_in = x  # saved as given: a double backward differentiates through the input itself
        c = x.size(1)
        left, pair_rows, dest_pair = level.left, level.pair_rows, level.dest_pair
        num_pairs = left.numel()
        out = x.new_empty(level.num_rows, c)
        out.index_copy_(0, level.dest_carry, x.index_select(0, level.carry))
        weights = _split_weights(w_ih, w_hh, b_ih, b_hh)
        keep = any(ctx.needs_input_grad[:5])
        if keep and factors is None:
            factors = [x.new_empty(num_pairs, c) for _ in range(_NUM_FACTORS)]
        kernels = _compiled_kernels() if compiled and num_pairs >= _CHUNK else None
        if kernels is not None:
            x = x.contiguous()
            x_rows = x.view(x.shape)  # the dynamic-size mark goes on this view, not the input
            _rows_vary(x_rows, out)
        for i in range(0, num_pairs, _CHUNK):
            n = min(_CHUNK, num_pairs - i)
            if kernels is not None:  # one compiled call on a full block (see the class doc)
                j = min(i, num_pairs - _CHUNK)
                f = [p[j:j + _CHUNK] for p in factors] if keep else None
                rows, dest = pair_rows[2 * j:2 * j + 2 * _CHUNK], dest_pair[j:j + _CHUNK]
                args = (x_rows, rows, dest, out, *weights) + ((f,) if keep else ())
                if _run_kernel(kernels, "forward" if keep else "infer", *args) is not _FAILED:
                    continue
                kernels = None
            f = [p[i:i + n] for p in factors] if keep else None
            p2 = x.index_select(0, pair_rows[2 * i:2 * (i + n)]).view(-1, 2, c)
            n_proj, rz0, rz1, n0, n1 = _gru_pair_gates(p2, *weights, tanh=_tanh_)
            h = None
            for slot, rz, nn_ in ((0, rz0, n0), (1, rz1, n1)):  # input x_s, hidden x_{1-s}
                r, z = rz[:, :c], rz[:, c:]
                e = p2[:, 1 - slot] - nn_
                h_s = torch.addcmul(nn_, z, e)
                h = h_s if h is None else h.add_(h_s)
                if keep:
                    base = 4 * slot
                    f[base + _R].copy_(r)
                    f[base + _Z].copy_(z)
                    f[base + _N].copy_(nn_)
                    f[base + _G].copy_(n_proj[:, 1 - slot, c:])
            out.index_copy_(0, dest_pair[i:i + n], h.mul_(0.5))
        if keep:
            ctx.save_for_backward(x_in, w_ih, w_hh, b_ih, b_hh)
            # The factors live in (possibly reused) planes, not among the saved tensors: the
            # backward checks their versions itself to give a clear error.
            ctx.level, ctx.factors, ctx.lease, ctx.compiled = level, factors, lease, compiled
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            # create_graph=True (gradient penalties, meta-learning): the hand-written
            # backward below is first-order only, so the gradient is formed by autograd
            # from the same operator, which makes it differentiable again.
            return _differentiable_level_backward(ctx, grad_out)
        x, w_ih, w_hh, b_ih, b_hh = ctx.saved_tensors
        level, factors = ctx.level, ctx.factors
        left, dest_pair = level.left, level.dest_pair
        if ctx.lease is not None and ctx.lease.versions() != ctx.lease.version:
            raise RuntimeError(
                "LCMAggregation: the factors saved for this backward pass were overwritten "
                "by a later forward pass of the same module (a graph kept with "
                "retain_graph=True across another forward). Run backward before the next "
                "forward, or construct the module with reuse_buffers=False.")
        c = x.size(1)
        num_pairs = left.numel()
        w_plus, w_minus, b_rz, w_n, b_n = _split_weights(w_ih, w_hh, b_ih, b_hh)
        grad_out = grad_out.contiguous()
        grad_x = x.new_empty(x.shape)  # every row is in a pair or carried: all written
        grad_x.index_copy_(0, level.carry, grad_out.index_select(0, level.dest_carry))
        g_plus, g_minus = torch.zeros_like(w_plus), torch.zeros_like(w_minus)
        g_n = torch.zeros_like(w_n)
        g_brz, g_bn = torch.zeros_like(b_rz), torch.zeros_like(b_n)
        ones = x.new_ones(min(_CHUNK, num_pairs), 1)
        kernels = _compiled_kernels() if ctx.compiled and num_pairs >= _CHUNK else None
        if kernels is not None:
            x = x.contiguous()
            x_rows, grad_rows = x.view(x.shape), grad_out.view(grad_out.shape)
            _rows_vary(x_rows, grad_rows, grad_x)
        for i in range(0, num_pairs, _CHUNK):
            n = min(_CHUNK, num_pairs - i)
            if kernels is not None:  # one compiled call on a full block (see the class doc)
                j = min(i, num_pairs - _CHUNK)
                if j == i:
                    mask = ones
                else:  # the last block overlaps the one before: shared pairs are masked out
                    mask = torch.zeros_like(ones)
                    mask[i - j:] = 1
                rows, dest = level.pair_rows[2 * j:2 * j + 2 * _CHUNK], dest_pair[j:j + _CHUNK]
                if _run_kernel(kernels, "backward", x_rows, rows, dest, grad_rows, grad_x,
                               [p[j:j + _CHUNK] for p in factors], w_plus, w_minus, w_n, mask,
                               (g_plus, g_minus, g_n, g_brz, g_bn)) is not _FAILED:
                    continue
                kernels = None
            f = [p[i:i + n] for p in factors]
            lb = left[i:i + n]
            a, b = x.index_select(0, lb), x.index_select(0, lb + 1)
            one = ones[:n].view(-1)
            dh = grad_out.index_select(0, dest_pair[i:i + n]).mul_(0.5)

            dn_a, dn_b = dh.new_empty(n, 2 * c), dh.new_empty(n, 2 * c)  # of W_n a, W_n b
            g0, g1 = dh.new_empty(n, 2 * c), dh.new_empty(n, 2 * c)  # r/z pre-activations
            direct = [  # to the hidden state x_{1-s}
                _slot_gradients(f, slot, dh, hidden,
                                out=(dn_in[:, :c], dn_hid[:, c:], g[:, :c], g[:, c:]))[4]
                for slot, dn_in, dn_hid, g, hidden in ((0, dn_a, dn_b, g0, b),
                                                       (1, dn_b, dn_a, g1, a))]
            du, dv = g0 + g1, g0.sub_(g1)
            ds, dd = torch.mm(du, w_plus), torch.mm(dv, w_minus)
            da = torch.addmm(direct[1], dn_a, w_n).add_(ds).add_(dd)
            db = torch.addmm(direct[0], dn_b, w_n).add_(ds).sub_(dd)
            grad_x.index_copy_(0, lb, da)
            grad_x.index_copy_(0, lb + 1, db)
            g_plus.addmm_(du.t(), a + b)
            g_minus.addmm_(dv.t(), a - b)
            g_n.addmm_(dn_a.t(), a).addmm_(dn_b.t(), b)
            # bias gradients as matrix-vector products (column sums of strided blocks)
            g_brz.addmv_(du.t(), one)
            g_bn.addmv_(dn_a.t(), one).addmv_(dn_b.t(), one)
        if ctx.lease is not None:
            ctx.lease.level_done()
        g_rz_i, g_rz_h = 0.5 * (g_plus + g_minus), 0.5 * (g_plus - g_minus)
        return (grad_x, torch.cat([g_rz_i, g_n[:c]]), torch.cat([g_rz_h, g_n[c:]]),
                torch.cat([g_brz, g_bn[:c]]), torch.cat([g_brz, g_bn[c:]]),
                None, None, None, None)


def _level_autograd(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                    level: _Level) -> Tensor:
    r"""The output of :class:`_LCMLevel` computed with plain (differentiable) torch ops."""
    c = x.size(1)
    pairs = x.index_select(0, level.pair_rows).view(-1, 2, c)
    _, rz0, rz1, n0, n1 = _gru_pair_gates(pairs, *_split_weights(w_ih, w_hh, b_ih, b_hh))
    h0 = n0 + rz0[:, c:] * (pairs[:, 1] - n0)
    h1 = n1 + rz1[:, c:] * (pairs[:, 0] - n1)
    out = x.new_zeros(level.num_rows, c).index_put((level.dest_pair,), 0.5 * (h0 + h1))
    return out.index_put((level.dest_carry,), x.index_select(0, level.carry))


def _differentiable_level_backward(ctx, grad_out: Tensor) -> tuple:
    r"""Backward of :class:`_LCMLevel` under ``create_graph=True``: the level is recomputed
    with torch ops from its saved inputs and differentiated by autograd with
    ``create_graph=True``, so the returned gradients have a graph of their own (exact double
    backward). The saved factor planes are not used."""
    inputs = ctx.saved_tensors
    needs = ctx.needs_input_grad[:5]
    with torch.enable_grad():
        # Inputs that are detached here (no grad needed) still enter as constants.
        out = _level_autograd(*inputs, ctx.level)
        wrt = [t for t, n in zip(inputs, needs) if n]
        grads = iter(torch.autograd.grad(out, wrt, grad_out, create_graph=True,
                                         allow_unused=True)) if wrt else iter(())
    # The lease is not released here: a graph differentiated with create_graph=True is kept,
    # and its levels may still run their first-order backward (with the factors) later, e.g.
    # from the task loss of a gradient-penalty step. The planes are freed with the graph.
    result = []
    for t, n in zip(inputs, needs):
        g = next(grads) if n else None
        result.append(torch.zeros_like(t) if n and g is None else g)
    return tuple(result) + (None, None, None, None)


# --- the compiled block kernels -----------------------------------------------------------
# Each full block of pairs is one call: the gather of its pairs from the level's rows, the
# GRU products, the gates, the stores of the factors and the scatter of the results to the
# next level's rows (forward), or the gather of the output gradient, the gradient products,
# the scatter into the input gradient and the accumulation of the weight gradients
# (backward). Inductor fuses the gathers and scatters into the elementwise loops, so no
# [P, C] block is copied on its own, and every factor plane is written with plain stores.

def _block_gates(p2: Tensor, w_plus: Tensor, w_minus: Tensor, b_rz: Tensor, w_n: Tensor,
                 b_n: Tensor, with_factors: bool):
    r"""The operator on a ``[P, 2, C]`` block of pairs: ``h [P, C]`` and, if asked, the eight
    backward factors (planes in the order of :func:`_slot_gradients`)."""
    c = p2.size(-1)
    a, b = p2[:, 0], p2[:, 1]
    # products without bias: the biases are added in the elementwise loops that read them
    u = torch.mm(a + b, w_plus.t()) + b_rz
    v = torch.mm(a - b, w_minus.t())
    n_proj = (torch.mm(p2.reshape(-1, c), w_n.t()) + b_n).view(-1, 2, 2 * c)
    h = None
    planes = [None] * _NUM_FACTORS
    for slot, sign in ((0, 1), (1, -1)):
        # the gates of one order as [P, C] halves, so that each is computed inside the one
        # elementwise loop that also stores it (not as a separate [P, 2C] temporary)
        r = torch.sigmoid(u[:, :c] + sign * v[:, :c])
        z = torch.sigmoid(u[:, c:] + sign * v[:, c:])
        ghn = n_proj[:, 1 - slot, c:]
        # tanh(t) = 2 sigmoid(2t) - 1: the generated code's vector tanh is about 5x slower
        # than its exp-based sigmoid on CPU here
        n = 2 * torch.sigmoid(2 * (n_proj[:, slot, :c] + r * ghn)) - 1
        h_s = n + z * (p2[:, 1 - slot] - n)
        h = h_s if h is None else h + h_s
        if with_factors:
            base = 4 * slot
            planes[base + _R], planes[base + _Z], planes[base + _N], planes[base + _G] = r, z, n, ghn
    return 0.5 * h, planes


def _block_forward(x: Tensor, rows: Tensor, dest: Tensor, out: Tensor, w_plus: Tensor,
                   w_minus: Tensor, b_rz: Tensor, w_n: Tensor, b_n: Tensor, factors: list):
    r"""Training forward of one block: pairs ``x[rows[2k]], x[rows[2k+1]]``; writes the
    results to ``out[dest]`` and the factors to the eight ``[P, C]`` planes ``factors``."""
    p2 = x.index_select(0, rows).view(-1, 2, x.size(-1))
    h, planes = _block_gates(p2, w_plus, w_minus, b_rz, w_n, b_n, True)
    for buf, value in zip(factors, planes):
        buf.copy_(value)
    out.index_copy_(0, dest, h)


def _block_infer(x: Tensor, rows: Tensor, dest: Tensor, out: Tensor, w_plus: Tensor,
                 w_minus: Tensor, b_rz: Tensor, w_n: Tensor, b_n: Tensor):
    r"""Forward of one block without factors (no gradient needed)."""
    p2 = x.index_select(0, rows).view(-1, 2, x.size(-1))
    out.index_copy_(0, dest, _block_gates(p2, w_plus, w_minus, b_rz, w_n, b_n, False)[0])


def _block_backward(x: Tensor, rows: Tensor, dest: Tensor, grad_out: Tensor, grad_x: Tensor,
                    factors: list, w_plus: Tensor, w_minus: Tensor, w_n: Tensor, mask: Tensor,
                    grads: tuple):
    r"""Backward of one block (as in :meth:`_LCMLevel.backward`): writes the gradients of the
    pair rows into ``grad_x[rows]`` and adds this block's weight and bias gradients to
    ``grads = (g_plus, g_minus, g_n, g_brz, g_bn)``, for the pairs whose ``mask`` (``[P, 1]``)
    is one (pairs with mask zero were already counted by an overlapping block)."""
    c = x.size(-1)
    p2 = x.index_select(0, rows).view(-1, 2, c)
    a, b = p2[:, 0], p2[:, 1]
    dh = 0.5 * grad_out.index_select(0, dest)
    q0, qr0, gr0, gz0, zdh0 = _slot_gradients(factors, 0, dh, b)
    q1, qr1, gr1, gz1, zdh1 = _slot_gradients(factors, 1, dh, a)
    dn_a = torch.cat([q0, qr1], 1)  # of W_n a + b_n
    dn_b = torch.cat([q1, qr0], 1)  # of W_n b + b_n
    # gradients of U and V (the products of a + b and a - b)
    du = torch.cat([gr0 + gr1, gz0 + gz1], 1)
    dv = torch.cat([gr0 - gr1, gz0 - gz1], 1)
    ds, dd = torch.mm(du, w_plus), torch.mm(dv, w_minus)
    da = zdh1 + torch.mm(dn_a, w_n) + ds + dd
    db = zdh0 + torch.mm(dn_b, w_n) + ds - dd
    grad_x.index_copy_(0, rows, torch.stack([da, db], 1).view(-1, c))
    g_plus, g_minus, g_n, g_brz, g_bn = grads
    g_plus.add_(torch.mm(du.t(), (a + b) * mask))
    g_minus.add_(torch.mm(dv.t(), (a - b) * mask))
    g_n.add_(torch.mm(dn_a.t(), a * mask) + torch.mm(dn_b.t(), b * mask))
    # bias gradients as products with the mask column (a column-sum reduction compiles slower)
    g_brz.add_(torch.mm(du.t(), mask).view(-1))
    g_bn.add_(torch.mm(dn_a.t(), mask).view(-1) + torch.mm(dn_b.t(), mask).view(-1))


_KERNELS: dict = {}
_FAILED = object()


def _compiled_kernels():
    """The block kernels wrapped by :func:`torch.compile` (static block and channel sizes,
    the number of rows of the level's tensors dynamic; compiled at their first call), or
    ``None`` once compiling has failed here. Inductor's pattern matcher is off for them: on
    CPU it turns every product-plus-bias into ``addmm``, which first copies the bias or the
    other summand into the output, where the fused elementwise loop adds it for free."""
    if _KERNELS.get("failed"):
        return None
    if not _KERNELS:
        compile_ = functools.partial(torch.compile, dynamic=False, fullgraph=True,
                                     options={"pattern_matcher": False})
        _KERNELS.update(forward=compile_(_block_forward), infer=compile_(_block_infer),
                        backward=compile_(_block_backward))
    return _KERNELS


def _rows_vary(*tensors: Tensor) -> None:
    """Marks the number of rows of the level's tensors as dynamic, so that one compiled
    kernel serves every level and graph size."""
    import torch._dynamo

    for t in tensors:
        torch._dynamo.maybe_mark_dynamic(t, 0)


def _run_kernel(kernels, name: str, *args):
    """Calls a compiled block kernel; on a compile failure (no C++ compiler, unsupported
    platform, ...) warns once, switches the compiled path off and returns ``_FAILED`` so that
    the caller falls back to the eager computation of the same block."""
    try:
        return kernels[name](*args)
    except Exception as exc:  # noqa: BLE001 - any backend failure means: use the eager path
        _KERNELS.clear()
        _KERNELS["failed"] = True
        warnings.warn(f"LCMAggregation(compiled_kernels=True): torch.compile failed here "
                      f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                      "using the eager path", RuntimeWarning)
        return _FAILED


def _tanh_(t: Tensor) -> Tensor:
    # tanh(t) = 2 sigmoid(2t) - 1, in place: torch's CPU sigmoid kernel is several times
    # faster than its tanh kernel here, and the identity is exact up to rounding.
    return t.mul_(2).sigmoid_().mul_(2).sub_(1)
