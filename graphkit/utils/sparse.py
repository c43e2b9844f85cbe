"""Sparse-dense products shared by graphkit's layers and models.

* :func:`csr_spmm`: ``A @ X`` for a CSR ``A`` as a weighted ``embedding_bag`` (one output write);
* :func:`symmetric_spmm`: ``A @ X`` for a constant symmetric ``A`` whose backward reuses ``A``;
* :func:`spmm_with_transpose`: ``A @ H`` for a constant ``A`` given with its transpose;
* :func:`edge_spmm`: ``A @ H`` from edge lists, differentiable in the edge weights to any order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["csr_spmm", "symmetric_spmm", "spmm_with_transpose", "edge_spmm"]


def csr_spmm(adj: Tensor, x: Tensor) -> Tensor:
    r"""``adj @ x`` for a sparse CSR ``adj`` ``[M, N]`` and a dense ``x`` ``[N, F]``.

    Runs as a weighted :func:`torch.nn.functional.embedding_bag` (``mode="sum"``, one bag per
    row, the CSR row pointers as offsets, the non-zeros as per-sample weights). On CPU that
    kernel is vectorised over the feature dimension and threaded over rows, and it writes its
    output once; torch's CSR ``@`` zero-fills and copies its result around the product, which
    makes it slower on CPU (``benchmarks/bench_lightgcn.py``).
    Falls back to ``adj @ x`` for anything the kernel does not take (non-floating ``x``, other
    layouts, graphs being compiled).
    """
    if adj.layout != torch.sparse_csr or x.dim() != 2 or not x.is_floating_point() \
            or torch.compiler.is_compiling():
        return adj @ x
    if adj.size(1) != x.size(0):
        raise ValueError(f"cannot multiply a {tuple(adj.shape)} sparse matrix with a {tuple(x.shape)} matrix")
    if not torch.is_grad_enabled():  # lets torch pick its forward-only kernel
        x = x.detach()
    return F.embedding_bag(adj.col_indices(), x.contiguous(), adj.crow_indices(), mode="sum",
                           per_sample_weights=adj.values().to(x.dtype), include_last_offset=True)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``; the backward pass reuses ``A`` as its own transpose.

    PyTorch's generic sparse backward builds ``A^T`` (a CSR transpose) on every call; for the
    symmetric normalised adjacency that work is unnecessary.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return csr_spmm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, csr_spmm(ctx.adj, grad)


def symmetric_spmm(adj: Tensor, x: Tensor) -> Tensor:
    """Multiply a symmetric sparse matrix with a dense one (see :class:`_SymmetricSpMM`)."""
    if torch.compiler.is_compiling():  # keep graphs traceable: autograd handles the transpose
        return adj @ x
    return _SymmetricSpMM.apply(adj, x)


class _CSRMatMul(torch.autograd.Function):
    """``a @ h`` for a constant sparse ``a`` whose transpose ``a_t`` is known, so that the
    backward pass is ``a_t @ grad`` (no per-call transposition of a CSR matrix)."""

    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, h: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(a_t)
        return a @ h

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (a_t,) = ctx.saved_tensors
        return None, None, a_t @ grad if ctx.needs_input_grad[2] else None


def spmm_with_transpose(a: Tensor, a_t: Tensor, h: Tensor) -> Tensor:
    r"""Sparse-dense product :math:`\mathbf{A}\mathbf{H}` for a constant sparse CSR matrix
    :math:`\mathbf{A}` given together with its transpose ``a_t`` (used in the backward pass)."""
    if not h.requires_grad:
        return a @ h
    return _CSRMatMul.apply(a, a_t, h)


def edge_spmm(src: Tensor, dst: Tensor, weight: Tensor, h: Tensor) -> Tensor:
    r"""Sparse-dense product :math:`\mathbf{A}\mathbf{H}` with
    :math:`A_{\mathrm{dst},\mathrm{src}} = w` given edge-wise, as a gather and a scatter-add:
    differentiable (to any order) w.r.t. both the edge weights and ``h``."""
    msg = h.index_select(0, src) * weight.unsqueeze(-1)
    return h.new_zeros(h.shape).index_add(0, dst, msg)
