r"""Dense views of a batch of small graphs: padded adjacency tensors with node masks.

Models and transforms that work on the :math:`n \times n` adjacency of every graph (PPGN, the
equivariant polynomial features) pad the graphs of a batch to the largest one,
:math:`n_{\max}`, with :func:`torch_geometric.utils.to_dense_adj` /
:func:`~torch_geometric.utils.to_dense_batch`, and carry a boolean node mask so that padded
rows and columns never leak into the result.

Cost: a dense batch holds :math:`B \cdot n_{\max}^2` entries per channel; one matrix-product
block costs :math:`O(B \cdot n_{\max}^3)` time per channel. Graphs above ``max_nodes`` are
rejected with a :class:`ValueError` that names the graph, before anything is allocated, instead
of running out of memory.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["DEFAULT_MAX_NODES", "check_dense_size", "dense_adjacency", "pair_mask",
           "dense_to_pairs"]

#: Default largest graph the dense path accepts (a :math:`512^3` product per channel is
#: about 1.3e8 multiply-adds).
DEFAULT_MAX_NODES = 512


def _counts(batch: Optional[Tensor], num_nodes: int) -> Tensor:
    if batch is None:
        return torch.tensor([num_nodes], dtype=torch.long)
    if batch.dim() != 1 or batch.numel() != num_nodes:
        raise ValueError(f"batch has shape {tuple(batch.shape)} but there are {num_nodes} nodes")
    if batch.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if bool((batch[1:] < batch[:-1]).any()) or int(batch.min()) < 0:
        raise ValueError("batch must be a sorted vector of non-negative graph ids")
    return torch.bincount(batch.cpu())


def check_dense_size(batch: Optional[Tensor], num_nodes: int,
                     max_nodes: int = DEFAULT_MAX_NODES, what: str = "dense path") -> Tensor:
    r"""Return the node count of every graph (a ``(B,)`` CPU tensor) and raise a
    :class:`ValueError` naming the first graph with more than ``max_nodes`` nodes."""
    counts = _counts(batch, num_nodes)
    if counts.numel() and int(counts.max()) > max_nodes:
        g = int(torch.argmax(counts))
        raise ValueError(
            f"{what}: graph {g} has {int(counts[g])} nodes, above max_nodes={max_nodes}; the "
            f"dense path stores n x n tensors per graph and costs O(n^3) per matrix-product "
            f"block, so it is meant for small graphs (raise max_nodes if you have the memory)")
    return counts


def dense_adjacency(edge_index: Tensor, batch: Optional[Tensor] = None,
                    edge_weight: Optional[Tensor] = None, num_nodes: Optional[int] = None,
                    max_nodes: int = DEFAULT_MAX_NODES, dtype: torch.dtype = torch.float
                    ) -> Tuple[Tensor, Tensor]:
    r"""The padded dense adjacency ``(B, n_max, n_max)`` of a batch of graphs and the node mask
    ``(B, n_max)``.

    ``adj[b, i, j]`` is the sum of the weights of the edges ``i -> j`` of graph ``b``
    (``edge_index[0]`` is the source, so row ``i``); parallel edges add up; without
    ``edge_weight`` every edge weighs 1. Padded rows/columns are zero.

    Args:
        edge_index (Tensor): ``(2, E)`` global node ids.
        batch (Tensor, optional): ``(N,)`` sorted graph id of every node; ``None`` for one graph.
        edge_weight (Tensor, optional): ``(E,)`` finite weights.
        num_nodes (int, optional): ``N``; inferred from ``batch`` or ``edge_index`` if omitted.
        max_nodes (int): largest graph accepted. (default: :data:`DEFAULT_MAX_NODES`)
        dtype: dtype of ``adj`` when ``edge_weight`` is ``None``. (default: ``torch.float``)
    """
    from torch_geometric.utils import to_dense_adj

    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.long, torch.int):
        raise ValueError(f"edge_index must hold integer ids, got {edge_index.dtype}")
    if num_nodes is None:
        if batch is not None:
            num_nodes = batch.numel()
        else:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index holds ids outside [0, {num_nodes}) "
                         f"(found {int(edge_index.min())}..{int(edge_index.max())})")
    if edge_weight is not None:
        if edge_weight.dim() != 1 or edge_weight.numel() != edge_index.size(1):
            raise ValueError(f"edge_weight must have shape ({edge_index.size(1)},), got "
                             f"{tuple(edge_weight.shape)}")
        if not bool(torch.isfinite(edge_weight).all()):
            bad = int((~torch.isfinite(edge_weight)).nonzero()[0])
            raise ValueError(f"edge_weight holds NaN/inf (edge {bad})")
    counts = check_dense_size(batch, num_nodes, max_nodes)
    num_graphs = counts.numel()
    device = edge_index.device
    if num_graphs == 0:
        return (torch.zeros(0, 0, 0, dtype=dtype if edge_weight is None else edge_weight.dtype,
                            device=device), torch.zeros(0, 0, dtype=torch.bool, device=device))
    n_max = int(counts.max())
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
    if batch is not None and edge_index.numel():
        if bool((batch[edge_index[0]] != batch[edge_index[1]]).any()):
            raise ValueError("edge_index joins nodes of different graphs")
    if edge_index.numel():
        adj = to_dense_adj(edge_index, batch, edge_attr=edge_weight, max_num_nodes=n_max,
                           batch_size=num_graphs)
    else:
        adj = torch.zeros(num_graphs, n_max, n_max, device=device,
                          dtype=dtype if edge_weight is None else edge_weight.dtype)
    if edge_weight is None:
        adj = adj.to(dtype)
    mask = torch.arange(n_max, device=device) < counts.to(device).unsqueeze(1)
    return adj, mask


def pair_mask(mask: Tensor) -> Tensor:
    """``(B, n, n)`` mask of the pairs of real nodes from a ``(B, n)`` node mask."""
    return mask.unsqueeze(2) & mask.unsqueeze(1)


def dense_to_pairs(dense: Tensor, mask: Tensor) -> Tensor:
    r"""Flatten a dense ``(B, n, n, F)`` pair tensor to ``(sum_b n_b^2, F)`` rows, graph by
    graph, row-major over ``(i, j)`` inside a graph (the inverse of padding)."""
    return dense[pair_mask(mask)]
