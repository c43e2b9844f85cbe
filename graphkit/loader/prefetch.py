r"""Moving batches to the model's device through pinned memory, one batch ahead.

When batches are produced on the CPU for a CUDA model, :class:`Prefetcher` pins each batch's
CPU tensors, starts their copy on a side CUDA stream with ``non_blocking=True`` and hands out the
previous batch meanwhile, so the host-to-device copy overlaps the model's work. When the target
device is not CUDA, or the tensors are already there, it yields the batches unchanged.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Union

import torch
from torch import Tensor


def move_to(batch: Any, device: torch.device, *, pin: bool = False,
            non_blocking: bool = False) -> Any:
    """``batch`` (a tensor, a PyG ``Data``/``TemporalData``, or lists, tuples and dicts of
    these) with every tensor on ``device``; CPU tensors are pinned first when ``pin``."""
    if isinstance(batch, Tensor):
        if batch.device == device:
            return batch
        if pin and batch.device.type == "cpu" and not batch.is_pinned():
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, (list, tuple)):
        moved = [move_to(b, device, pin=pin, non_blocking=non_blocking) for b in batch]
        return type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
    if isinstance(batch, dict):
        return {k: move_to(v, device, pin=pin, non_blocking=non_blocking) for k, v in batch.items()}
    if hasattr(batch, "apply") and hasattr(batch, "keys"):  # PyG Data / TemporalData
        return batch.apply(lambda t: move_to(t, device, pin=pin, non_blocking=non_blocking))
    return batch


def _for_each_tensor(batch: Any, fn) -> None:
    if isinstance(batch, Tensor):
        fn(batch)
    elif isinstance(batch, (list, tuple)):
        for b in batch:
            _for_each_tensor(b, fn)
    elif isinstance(batch, dict):
        for b in batch.values():
            _for_each_tensor(b, fn)
    elif hasattr(batch, "apply") and hasattr(batch, "keys"):
        batch.apply(lambda t: (fn(t), t)[1])


class Prefetcher:
    r"""Iterate over ``batches`` delivering each on ``device``.

    Args:
        batches (Iterable): any iterable of batches (see :func:`move_to` for the types).
        device (torch.device): the model's device.
        pin_memory (bool): pin CPU tensors before a copy to CUDA. (default: ``True``)

    On a CUDA ``device`` the copy of batch ``i + 1`` is issued on a side stream before batch
    ``i`` is handed out; the consumer's stream waits for that copy before using it. On any other
    device (CPU) this is a plain pass-through: :attr:`active` is ``False``.
    """

    def __init__(self, batches: Iterable, device: Union[str, torch.device],
                 pin_memory: bool = True):
        self.batches = batches
        self.device = torch.device(device)
        self.pin_memory = pin_memory
        self.active = self.device.type == "cuda" and torch.cuda.is_available()

    def __iter__(self) -> Iterator:
        if not self.active:
            yield from self.batches
            return
        stream = torch.cuda.Stream(device=self.device)

        def issue(b):
            with torch.cuda.stream(stream):
                return move_to(b, self.device, pin=self.pin_memory, non_blocking=True)

        it = iter(self.batches)
        try:
            nxt: Optional[Any] = issue(next(it))
        except StopIteration:
            return
        while nxt is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(stream)
            cur = nxt
            _for_each_tensor(cur, lambda t: t.record_stream(current) if t.is_cuda else None)
            try:
                nxt = issue(next(it))
            except StopIteration:
                nxt = None
            yield cur
