r"""Chronological batches of events for memory-based temporal graph models (TGN, NAT, JODIE).

Rossi et al., "Temporal Graph Networks for Deep Learning on Dynamic Graphs", 2020
(https://arxiv.org/abs/2006.10637): events are fed in time order, in consecutive batches of
``B`` events; the model updates its memory with batch :math:`i` only after predicting it, so the
order must never be shuffled. Batch :math:`i` holds events :math:`[iB, (i+1)B)` of the
time-sorted stream.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from graphkit.loader.index import default_seed, derive_seed, make_generator


class TemporalBatcher:
    r"""Consecutive, chronological batches of a PyG :class:`~torch_geometric.data.TemporalData`,
    sliced on ``device`` (views of the stored tensors, no copies, no collate).

    Args:
        data (TemporalData): events with ``src``, ``dst``, ``t`` (and any other per-event
            attributes such as ``msg`` or ``y``), sorted by ``t`` (ties in any order).
        batch_size (int): events per batch. (default: ``200``, TGN's)
        neg_sampling_ratio (float): when ``> 0``, each batch gets ``neg_dst``:
            ``round(ratio * len(batch))`` destinations drawn uniformly
            from ``[dst_min, dst_max]`` (the id range of ``data.dst``), as PyG's TGN example
            does. (default: ``0.0``)
        seed (int, optional): seed of the negatives; epoch ``e`` uses a stream derived from
            ``(seed, e)``. (default: drawn from torch's global generator)
        device (torch.device, optional): where the events are kept and batches are delivered
            (they are moved once). (default: the device of ``data.src``)
        num_nodes (int, optional): declared node count; ids must lie in ``[0, num_nodes)``.
            (default: ids are only checked to be non-negative)

    Every batch is a ``TemporalData`` with the event attributes, ``e_id`` (the events'
    positions in ``data``) and, with negatives, ``neg_dst``. Batches are never shuffled and
    the last one may be smaller.

    Raises:
        ValueError: when ``data`` has no events, lacks ``src``/``dst``/``t``, has a negative
            node id (or one not below ``num_nodes``), a NaN, infinite or negative timestamp,
            or ``t`` decreases somewhere (each message names the first offending event).
    """

    def __init__(self, data, batch_size: int = 200, *, neg_sampling_ratio: float = 0.0,
                 seed: Optional[int] = None, device: Optional[Union[str, torch.device]] = None,
                 num_nodes: Optional[int] = None):
        for key in ("src", "dst", "t"):
            if getattr(data, key, None) is None:
                raise ValueError(f"TemporalBatcher: data has no {key!r}")
        n = data.src.numel()
        if n == 0:
            raise ValueError("TemporalBatcher: data holds no events")
        if data.dst.numel() != n or data.t.numel() != n:
            raise ValueError(f"TemporalBatcher: src, dst and t must have one entry per event, got "
                             f"{n}, {data.dst.numel()} and {data.t.numel()}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"TemporalBatcher: batch_size must be a positive integer, got {batch_size!r}")
        if not neg_sampling_ratio >= 0:
            raise ValueError(f"TemporalBatcher: neg_sampling_ratio must be >= 0, got {neg_sampling_ratio}")
        for name in ("src", "dst"):
            ids = getattr(data, name).view(-1)
            if ids.dtype.is_floating_point or ids.dtype == torch.bool:
                raise ValueError(f"TemporalBatcher: {name} must hold integer node ids, got {ids.dtype}")
            out = (ids < 0) if num_nodes is None else (ids < 0) | (ids >= num_nodes)
            if bool(out.any()):
                j = int(out.nonzero()[0])
                bound = "" if num_nodes is None else f", beyond the declared {num_nodes} nodes"
                raise ValueError(f"TemporalBatcher: event {j} has {name} id {int(ids[j])}{bound}")
        t = data.t.view(-1)
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            j = int((~torch.isfinite(t)).nonzero()[0])
            raise ValueError(f"TemporalBatcher: timestamp of event {j} is {float(t[j])}")
        if bool((t < 0).any()):
            j = int((t < 0).nonzero()[0])
            raise ValueError(f"TemporalBatcher: event {j} has a negative timestamp ({t[j].item()}); "
                             "shift the times to start at 0 or later")
        down = (t[1:] < t[:-1]).nonzero()
        if down.numel():
            j = int(down[0]) + 1
            raise ValueError(f"TemporalBatcher: events are not in chronological order: event {j} "
                             f"has t={t[j].item()} < t={t[j - 1].item()} of event {j - 1}; sort "
                             "the events by time first")
        dev = torch.device(device) if device is not None else data.src.device
        self.data = data.to(dev)
        self.device, self.batch_size, self.num_events = dev, batch_size, n
        self.neg_sampling_ratio = float(neg_sampling_ratio)
        self.dst_min, self.dst_max = int(data.dst.min()), int(data.dst.max())
        self.seed = default_seed(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"TemporalBatcher.set_epoch: epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.num_events // self.batch_size)

    def __iter__(self):
        g = make_generator(self.device, derive_seed(self.seed, self.epoch, 0))
        for start in range(0, self.num_events, self.batch_size):
            stop = min(start + self.batch_size, self.num_events)
            batch = self.data[start:stop]
            batch.e_id = torch.arange(start, stop, device=self.device)
            if self.neg_sampling_ratio > 0:
                m = int(round(self.neg_sampling_ratio * (stop - start)))
                batch.neg_dst = torch.randint(self.dst_min, self.dst_max + 1, (m,),
                                              device=self.device, generator=g)
            yield batch
        self.epoch += 1

    def __repr__(self) -> str:
        return (f"TemporalBatcher(events={self.num_events}, batch_size={self.batch_size}, "
                f"device={self.device})")
