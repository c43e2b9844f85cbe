"""Shared input handling for the aggregations in :mod:`graphkit.nn.aggr`."""
from typing import Optional, Tuple

import torch
from torch import Tensor


def check_inputs(
    name: str,
    x: Tensor,
    index: Optional[Tensor],
    ptr: Optional[Tensor],
    dim_size: Optional[int],
    dim: int,
) -> Tuple[Tensor, int]:
    r"""Validates the standard ``Aggregation`` inputs and returns
    ``(index, dim_size)`` with ``index`` a ``LongTensor`` of length
    ``x.size(0)`` (built from ``ptr`` if only ``ptr`` is given)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: 'x' must be a Tensor (got {type(x).__name__})")
    if x.dim() != 2:
        raise ValueError(f"{name}: 'x' must be two-dimensional [num_elements, channels] "
                         f"(got shape {tuple(x.shape)})")
    if dim not in (0, -2):
        raise ValueError(f"{name}: aggregation is only supported over dimension 0 / -2 "
                         f"(got dim={dim})")
    if not x.is_floating_point():
        raise TypeError(f"{name}: 'x' must be a floating-point tensor (got {x.dtype})")
    if index is None and ptr is not None:
        if ptr.dim() != 1 or ptr.numel() < 1:
            raise ValueError(f"{name}: 'ptr' must be a non-empty 1-D tensor")
        counts = ptr[1:] - ptr[:-1]
        if bool((counts < 0).any()) or int(ptr[-1] - ptr[0]) != x.size(0):
            raise ValueError(f"{name}: 'ptr' must be non-decreasing and span all "
                             f"{x.size(0)} rows of 'x'")
        index = torch.repeat_interleave(
            torch.arange(counts.numel(), device=x.device), counts)
        if dim_size is None:
            dim_size = counts.numel()
    if index is None:
        index = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    if index.dim() != 1 or index.numel() != x.size(0):
        raise ValueError(f"{name}: 'index' must be 1-D with one entry per row of 'x' "
                         f"(got shape {tuple(index.shape)} for x of shape {tuple(x.shape)})")
    if index.dtype not in (torch.long, torch.int32, torch.int64):
        raise TypeError(f"{name}: 'index' must be an integer tensor (got {index.dtype})")
    index = index.long()
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    if index.numel() > 0:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0:
            bad = int((index < 0).nonzero()[0])
            raise ValueError(f"{name}: 'index' has a negative entry {lo} at position {bad}")
        if hi >= dim_size:
            bad = int((index >= dim_size).nonzero()[0])
            raise ValueError(f"{name}: 'index' entry {hi} at position {bad} is out of range "
                             f"for dim_size={dim_size}")
    return index, int(dim_size)


def group_positions(index: Tensor, dim_size: int) -> Tuple[Tensor, Tensor, Tensor]:
    r"""For a *sorted* ``index`` returns ``(count, ptr, pos)``: the size of every
    group, its CSR offsets and the position of every element inside its group."""
    count = torch.bincount(index, minlength=dim_size)
    ptr = torch.zeros(dim_size + 1, dtype=torch.long, device=index.device)
    torch.cumsum(count, 0, out=ptr[1:])
    pos = torch.arange(index.numel(), device=index.device) - ptr[index]
    return count, ptr, pos


def is_sorted(index: Tensor) -> bool:
    return index.numel() < 2 or bool((index[1:] >= index[:-1]).all())
