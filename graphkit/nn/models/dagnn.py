"""The Deep Adaptive Graph Neural Network (DAGNN) model."""
from __future__ import annotations

import weakref
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module

from graphkit.nn.conv.dagnn_conv import DAGNNConv
from graphkit.utils.dropout import fast_dropout  # noqa: F401  (re-exported for old imports)


class _SparseLinear(torch.autograd.Function):
    """``x @ weight.t()`` for a constant sparse CSR ``x`` with known transpose ``x_t``."""

    @staticmethod
    def forward(ctx, x: Tensor, x_t: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x_t)
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x_t,) = ctx.saved_tensors
        return None, None, (x_t @ grad).t()


class SparseInputLinear(Module):
    r"""A :class:`torch.nn.Linear` layer with input dropout that also takes a ``torch.sparse``
    CSR/COO feature matrix (bag-of-words features). Dropout is applied to the stored values, and
    the transpose needed by the backward pass is built once per sparsity pattern and reused, so a
    training step costs two sparse-dense products and no sparse re-indexing. If the feature
    values themselves require grad, a differentiable gather/scatter-add over the stored entries
    is used instead, so they receive their gradient too."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.lin = Linear(in_channels, out_channels)
        self._pattern = None

    @property
    def weight(self) -> Tensor:
        return self.lin.weight

    @property
    def bias(self) -> Optional[Tensor]:
        return self.lin.bias

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        self._pattern = None

    def _transpose_pattern(self, x: Tensor):
        key = (x.device, x.col_indices().data_ptr(), x.crow_indices().data_ptr(), x._nnz(),
               tuple(x.size()))
        if self._pattern is not None and self._pattern[0] == key:
            return self._pattern[2:]
        crow, col = x.crow_indices(), x.col_indices()
        rows = torch.repeat_interleave(torch.arange(x.size(0), device=col.device),
                                       crow[1:] - crow[:-1])
        perm = torch.argsort(col * x.size(0) + rows)  # CSR order of the transpose
        t_col = rows[perm]
        t_crow = torch.zeros(x.size(1) + 1, dtype=crow.dtype, device=crow.device)
        t_crow[1:] = torch.cumsum(torch.bincount(col, minlength=x.size(1)), 0)
        # Keeping the index tensors alive means their memory cannot be reused by another
        # matrix while cached, so the pointer-based key cannot match a different pattern.
        self._pattern = (key, (crow, col), perm, t_crow, t_col)
        return perm, t_crow, t_col

    def forward(self, x: Tensor, dropout: float = 0.0) -> Tensor:
        if x.layout == torch.strided:
            return self.lin(fast_dropout(x, dropout, self.training))
        if x.layout != torch.sparse_csr:
            x = x.to_sparse_csr()
        vals = x.values()
        if self.training and dropout > 0:
            vals = fast_dropout(vals, dropout, True)
        if vals.requires_grad and torch.is_grad_enabled():
            # Gradients w.r.t. the feature values themselves (rare: attacks, feature learning):
            # a gather/scatter-add over the stored entries, differentiable to any order.
            crow = x.crow_indices()
            rows = torch.repeat_interleave(torch.arange(x.size(0), device=crow.device),
                                           crow[1:] - crow[:-1])
            msg = self.lin.weight.t().index_select(0, x.col_indices()) * vals.unsqueeze(-1)
            out = msg.new_zeros(x.size(0), msg.size(1)).index_add(0, rows, msg)
        elif not self.lin.weight.requires_grad:
            xd = torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), vals, x.size())
            out = xd @ self.lin.weight.t()
        else:
            perm, t_crow, t_col = self._transpose_pattern(x)
            xd = torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), vals, x.size())
            xt = torch.sparse_csr_tensor(t_crow, t_col, vals[perm], (x.size(1), x.size(0)))
            out = _SparseLinear.apply(xd, xt, self.lin.weight)
        return out + self.lin.bias if self.lin.bias is not None else out


class DAGNN(Module):
    r"""The Deep Adaptive Graph Neural Network from the `"Towards Deeper Graph
    Neural Networks" <https://arxiv.org/abs/2007.09296>`_ paper (Liu, Gao and
    Ji, KDD 2020): a two-layer MLP on the node features followed by the
    adaptive :math:`K`-step propagation of :class:`~graphkit.nn.conv.DAGNNConv`.

    .. math::
        \mathbf{Z} &= \mathrm{MLP}(\mathbf{X}) = \mathbf{W}_2\,
        \mathrm{dropout}\!\left(\mathrm{ReLU}\left(\mathbf{W}_1\,
        \mathrm{dropout}(\mathbf{X})\right)\right)

        \mathbf{Y} &= \sum_{k=0}^{K} \mathrm{diag}(\mathbf{s}_k)\,
        \mathbf{\hat{A}}^{k} \mathbf{Z}, \qquad
        \mathbf{s}_k = \sigma(\mathbf{\hat{A}}^{k} \mathbf{Z} \mathbf{w})

    with :math:`\mathbf{\hat{A}}` the symmetrically normalised adjacency
    matrix with self-loops. (Not the directed-acyclic "DAGNN".) The model
    returns unnormalised logits; train it with
    :func:`torch.nn.functional.cross_entropy`.

    Args:
        in_channels (int): Size of each input sample.
        hidden_channels (int): Size of the hidden layer of the MLP (paper: 64).
        out_channels (int): Number of classes.
        K (int): Number of propagation steps (paper: 10 on Cora/CiteSeer,
            20 on PubMed, 5 on Coauthor/Amazon).
        dropout (float, optional): Dropout probability, applied to the input
            and to the hidden layer. (default: :obj:`0.5`)
        cached (bool, optional): Cache the normalised adjacency matrix in the
            propagation layer (transductive use). (default: :obj:`False`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` (dense or
          ``torch.sparse`` COO/CSR, which is much faster for bag-of-words
          features), edge indices :math:`(2, |\mathcal{E}|)` or a sparse
          adjacency (see :class:`~graphkit.nn.conv.DAGNNConv`), edge weights
          :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** logits :math:`(|\mathcal{V}|, C)`

    The model is a plain module: save it as ``model.state_dict()`` plus the
    JSON-able :meth:`config`, and rebuild with ``DAGNN(**config)``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        K: int,
        dropout: float = 0.5,
        cached: bool = False,
    ) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                          ("out_channels", out_channels)):
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise ValueError(f"DAGNN: '{name}' must be a positive int (got {val!r})")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"DAGNN: 'dropout' must be in [0, 1) (got {dropout!r})")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.K = K
        self.dropout = float(dropout)
        self.cached = cached

        self.lin1 = SparseInputLinear(in_channels, hidden_channels)
        self.lin2 = Linear(hidden_channels, out_channels)
        self.prop = DAGNNConv(out_channels, K, cached=cached)
        self._checked_input = None  # (weakref, version) of the last input found finite

        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters (and the propagation cache)."""
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()
        self.prop.reset_parameters()

    def config(self) -> Dict[str, Any]:
        r"""The constructor arguments as a JSON-able dictionary."""
        return dict(in_channels=self.in_channels, hidden_channels=self.hidden_channels,
                    out_channels=self.out_channels, K=self.K, dropout=self.dropout,
                    cached=self.cached)

    def forward(self, x: Tensor, edge_index, edge_weight: Optional[Tensor] = None) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"DAGNN: 'x' must be a 2-dimensional tensor [num_nodes, "
                             f"{self.in_channels}] (got shape {tuple(getattr(x, 'shape', ()))})")
        if x.size(1) != self.in_channels:
            raise ValueError(f"DAGNN: 'x' has {x.size(1)} features but the model was built with "
                             f"in_channels={self.in_channels}")
        if not torch.compiler.is_compiling():
            vals = x if x.layout == torch.strided else x.values()
            # The scan costs as much as a third of a training step on large dense features, so
            # a tensor is checked once: again only if it is another tensor or was modified in
            # place since (its version counter moved).
            last = self._checked_input
            if last is None or last[0]() is not vals or last[1] != vals._version:
                if not torch.isfinite(vals).all():
                    raise ValueError("DAGNN: 'x' contains NaN or infinite values; impute or "
                                     "drop them before training")
                self._checked_input = (weakref.ref(vals), vals._version)
        x = F.relu(self.lin1(x, self.dropout))
        x = self.lin2(fast_dropout(x, self.dropout, self.training))
        return self.prop(x, edge_index, edge_weight)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, K={self.K})")
