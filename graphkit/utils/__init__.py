"""Shared kernels and helpers, re-exported here as ``torch_geometric.utils`` does.

* pair indexes and ranking: :class:`PairIndex` (vectorised membership of ``(user, item)``
  pairs), :func:`topk_ties_by_index` (top-k with ties broken by ascending index),
  :class:`DotProductTopK` / :class:`DotProductScorer` (exact top-k of embedding dot products
  without a ``[B, I]`` score block);
* files: :func:`atomic_write`, :func:`atomic_write_text` (temporary file, then rename);
* sparse products: :func:`csr_spmm`, :func:`symmetric_spmm`, :func:`spmm_with_transpose`,
  :func:`edge_spmm`; :func:`fast_dropout` (dense or CSR input);
* :func:`progress_disabled` (when progress bars are hidden) and :func:`resolve_device`
  (device names, checked).

Names are imported on first use, so ``graphkit.utils`` imports torch only when a name that
needs it is used.
"""
from __future__ import annotations

from graphkit._lazy import lazy_exports

_EXPORTS = {
    "PairIndex": "ranking",
    "topk_ties_by_index": "ranking",
    "DotProductTopK": "ranking",
    "DotProductScorer": "ranking",
    "atomic_write": "io",
    "atomic_write_text": "io",
    "progress_disabled": "progress",
    "resolve_device": "device",
    "csr_spmm": "sparse",
    "symmetric_spmm": "sparse",
    "spmm_with_transpose": "sparse",
    "edge_spmm": "sparse",
    "fast_dropout": "dropout",
    "dense_adjacency": "dense_batch",
    "check_dense_size": "dense_batch",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
