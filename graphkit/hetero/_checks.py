"""Validation of heterogeneous graphs given to :mod:`graphkit.hetero` and the hetero models.

Every check raises a :class:`ValueError` that names the node or edge type at fault.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

EdgeType = Tuple[str, str, str]


def node_counts(data: Any) -> Dict[str, int]:
    """``{node type: number of nodes}`` of a PyG ``HeteroData``, checked."""
    counts = {}
    for ntype in data.node_types:
        n = data[ntype].num_nodes
        if n is None:
            raise ValueError(f"node type {ntype!r} has neither features 'x' nor 'num_nodes'")
        counts[ntype] = int(n)
    return counts


def check_target(data: Any, target: str, *, need_labels: bool = False) -> None:
    """``target`` must be a node type of ``data`` (and carry labels ``y`` if asked)."""
    if not isinstance(target, str):
        raise ValueError(f"target node type must be a string, got {target!r}")
    if target not in data.node_types:
        raise ValueError(f"target node type {target!r} is not in the graph (node types: "
                         f"{', '.join(data.node_types)})")
    if need_labels and getattr(data[target], "y", None) is None:
        raise ValueError(f"target node type {target!r} has no labels 'y'")


def check_edge_index(edge_index: Any, edge_type: EdgeType, num_src: int, num_dst: int) -> Tensor:
    """A ``[2, E]`` integer tensor with ``E > 0`` and ids inside both node sets."""
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"edge type {edge_type}: edge_index must be a tensor, "
                         f"got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge type {edge_type}: edge_index must have shape [2, E], got "
                         f"{tuple(edge_index.shape)}")
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise ValueError(f"edge type {edge_type}: edge_index must hold integer ids, got "
                         f"{edge_index.dtype}")
    if edge_index.size(1) == 0:
        raise ValueError(f"edge type {edge_type} has no edges")
    for row, n, side in ((0, num_src, "source"), (1, num_dst, "destination")):
        lo, hi = int(edge_index[row].min()), int(edge_index[row].max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(f"edge type {edge_type}: {side} id {bad} outside [0, {n}) of node "
                             f"type {edge_type[0] if row == 0 else edge_type[2]!r}")
    return edge_index.long()


def check_edge_types(data: Any, counts: Dict[str, int]) -> Dict[EdgeType, Tensor]:
    """Every edge type's ``edge_index``, checked against the node types and their sizes."""
    if not data.edge_types:
        raise ValueError("the graph has no edge types")
    out = {}
    for et in data.edge_types:
        src, _, dst = et
        for t in (src, dst):
            if t not in counts:
                raise ValueError(f"edge type {et} refers to unknown node type {t!r} "
                                 f"(node types: {', '.join(counts)})")
        ei = getattr(data[et], "edge_index", None)
        if ei is None:
            raise ValueError(f"edge type {et} has no edge_index")
        out[et] = check_edge_index(ei, et, counts[src], counts[dst])
    return out


def check_features(x: Any, ntype: str, num_nodes: int, width: Optional[int] = None) -> Tensor:
    """Finite 2-D float features with one row per node (and ``width`` columns if given)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"node type {ntype!r}: features must be a tensor, got {type(x).__name__}")
    if x.is_sparse or x.layout != torch.strided:
        x = x.to_dense()
    if x.dim() != 2:
        raise ValueError(f"node type {ntype!r}: features must be 2-D [num_nodes, channels], got "
                         f"shape {tuple(x.shape)}")
    if x.size(0) != num_nodes:
        raise ValueError(f"node type {ntype!r}: features have {x.size(0)} rows for {num_nodes} "
                         f"nodes")
    if width is not None and x.size(1) != width:
        raise ValueError(f"node type {ntype!r}: features have {x.size(1)} channels, expected "
                         f"{width}")
    if not x.is_floating_point():
        x = x.float()
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        row = int(bad.any(dim=1).nonzero()[0])
        raise ValueError(f"node type {ntype!r}: features of node {row} are NaN or infinite")
    return x
