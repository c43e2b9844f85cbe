r"""Batches of indices generated on the model's device.

:class:`IndexLoader` replaces ``torch.utils.data.DataLoader(range(n), shuffle=True)`` when the
data already sits in tensors: it draws one permutation per epoch with a seeded
:class:`torch.Generator` on the target device and yields slices of it (or the rows of the given
tensors at those indices). There are no worker processes and no per-item collate.

Under ``torch.distributed`` every rank draws the *same* permutation (same seed, same epoch) and
keeps its own contiguous part of every global batch, so ``W`` ranks with per-rank batches of
``batch_size / W`` see exactly the items of one process with ``batch_size``.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

_MASK63 = (1 << 63) - 1
UNEVEN = ("error", "drop", "wrap")


def derive_seed(seed: int, *words: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``words`` (epoch, stream, ...), splitmix64 style,
    so that neighbouring epochs get unrelated random streams."""
    x = int(seed) & _MASK63
    for w in words:
        x = (x ^ (int(w) + 0x9E3779B97F4A7C15 + (x << 6) + (x >> 2))) & ((1 << 64) - 1)
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
        x ^= x >> 31
    return x & _MASK63


def make_generator(device: Union[str, torch.device], seed: int) -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed) & _MASK63)
    return g


def default_seed(seed: Optional[int]) -> int:
    """``seed``, or one drawn from torch's global generator (so ``torch.manual_seed`` fixes it)."""
    if seed is None:
        return int(torch.randint(0, 2 ** 62, (1,)).item())
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def check_rank(rank: Optional[int], world_size: Optional[int], where: str) -> Tuple[int, int]:
    """``(rank, world_size)``, taken from ``torch.distributed`` when not given, and checked."""
    if rank is None or world_size is None:
        from graphkit.engine.distributed import get_rank, get_world_size

        rank = get_rank() if rank is None else rank
        world_size = get_world_size() if world_size is None else world_size
    if world_size < 1:
        raise ValueError(f"{where}: world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"{where}: rank must be in [0, {world_size}), got {rank}")
    return int(rank), int(world_size)


class IndexLoader:
    r"""Shuffled (or ordered) mini-batches of ``0 .. n-1``, or of the rows of some tensors,
    generated on ``device``.

    Args:
        data (int or Tensor or sequence of Tensor): the number of items ``n``; or a 1-D tensor
            of items (ids, a boolean mask is turned into the ids where it is true) whose
            entries are yielded; or a tuple of tensors with equal first dimension, whose rows
            at the batch's indices are yielded as a tuple (a ``TensorDataset`` without
            the per-item copies). Tensors are moved to ``device`` once.
        batch_size (int): the *global* batch size: the number of items all ranks together
            take per step. Each rank yields ``batch_size / world_size`` of them.
        shuffle (bool): draw a new permutation every epoch. (default: ``False``)
        drop_last (bool): drop the last, smaller batch. (default: ``False``)
        seed (int, optional): seed of the permutation; epoch ``e`` uses a stream derived from
            ``(seed, e)``. ``None`` draws one from torch's global generator. All ranks must
            use the same seed. (default: ``None``)
        device (torch.device, optional): where indices are generated (default: the device of
            the given tensor, else CPU).
        rank (int, optional), world_size (int, optional): the shard to yield; taken from
            ``torch.distributed`` when not given (``0`` and ``1`` without a process group).
        uneven (str): what to do when the items do not split evenly over the ranks, i.e. the
            last global batch has ``r`` items and ``r`` is not a multiple of ``world_size``:
            ``"error"`` raises a :class:`ValueError` at construction, ``"drop"`` drops that
            batch (as ``drop_last``), ``"wrap"`` pads it with the first items of the epoch's
            permutation up to the next multiple of ``world_size`` (as
            :class:`torch.utils.data.DistributedSampler` does; those items are then seen twice
            in that epoch). Irrelevant with one rank. (default: ``"error"``)

    ``batch_size`` must be a multiple of ``world_size``. The epoch counter starts at 0 and goes
    up by one after each full pass; :meth:`set_epoch` sets it (to resume, or as
    ``DistributedSampler.set_epoch``).
    """

    def __init__(self, data: Union[int, Tensor, Sequence[Tensor]], batch_size: int, *,
                 shuffle: bool = False, drop_last: bool = False, seed: Optional[int] = None,
                 device: Optional[Union[str, torch.device]] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, uneven: str = "error"):
        self.tensors: Optional[Tuple[Tensor, ...]] = None
        self.items: Optional[Tensor] = None
        single = False
        if isinstance(data, bool) or (not isinstance(data, (int, Tensor, list, tuple))):
            raise ValueError(f"IndexLoader: data must be an int, a tensor or a tuple of tensors, "
                             f"got {type(data).__name__}")
        if isinstance(data, int):
            if data < 0:
                raise ValueError(f"IndexLoader: the number of items must be >= 0, got {data}")
            n = data
            dev = torch.device(device) if device is not None else torch.device("cpu")
        else:
            tensors = (data,) if isinstance(data, Tensor) else tuple(data)
            single = isinstance(data, Tensor)
            if not tensors or not all(isinstance(t, Tensor) for t in tensors):
                raise ValueError("IndexLoader: data must hold at least one tensor, and only tensors")
            if single and tensors[0].dtype == torch.bool:
                tensors = (tensors[0].reshape(-1).nonzero().view(-1),)
            if any(t.dim() == 0 for t in tensors):
                raise ValueError("IndexLoader: tensors need a first dimension (got a 0-d tensor)")
            n = tensors[0].size(0)
            bad = [i for i, t in enumerate(tensors) if t.size(0) != n]
            if bad:
                raise ValueError(f"IndexLoader: tensor {bad[0]} has {tensors[bad[0]].size(0)} rows, "
                                 f"tensor 0 has {n}")
            dev = torch.device(device) if device is not None else tensors[0].device
            tensors = tuple(t.to(dev) for t in tensors)
            if single:
                self.items = tensors[0]
            else:
                self.tensors = tensors
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"IndexLoader: batch_size must be a positive integer, got {batch_size!r}")
        if uneven not in UNEVEN:
            raise ValueError(f"IndexLoader: uneven must be one of {UNEVEN}, got {uneven!r}")
        self.rank, self.world_size = check_rank(rank, world_size, "IndexLoader")
        if batch_size % self.world_size:
            raise ValueError(f"IndexLoader: batch_size={batch_size} (the global batch) is not a "
                             f"multiple of world_size={self.world_size}")
        self.n, self.batch_size, self.device = n, batch_size, dev
        self.shuffle, self.drop_last, self.uneven = shuffle, drop_last, uneven
        self.seed = default_seed(seed)
        self.epoch = 0
        tail = n % batch_size
        self._tail = 0 if drop_last else tail
        if self._tail % self.world_size:
            if uneven == "error":
                raise ValueError(
                    f"IndexLoader: {n} items in global batches of {batch_size} leave a last batch "
                    f"of {tail}, which does not split evenly over world_size={self.world_size} "
                    "ranks; pass drop_last=True, uneven='drop' or uneven='wrap'")
            if uneven == "drop":
                self._tail = 0

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of epoch ``epoch`` on the next pass."""
        if epoch < 0:
            raise ValueError(f"IndexLoader.set_epoch: epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    @property
    def per_rank_batch_size(self) -> int:
        return self.batch_size // self.world_size

    def __len__(self) -> int:
        full = self.n // self.batch_size
        return full + (1 if self._tail else 0)

    def permutation(self, epoch: Optional[int] = None) -> Tensor:
        """The order of the items in ``epoch`` (default: the current one), on :attr:`device`."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return torch.arange(self.n, device=self.device)
        g = make_generator(self.device, derive_seed(self.seed, epoch, 0))
        return torch.randperm(self.n, device=self.device, generator=g)

    def batch_indices(self, epoch: Optional[int] = None) -> Iterator[Tensor]:
        """This rank's index batches (positions into the data) for one epoch."""
        perm = self.permutation(epoch)
        w, r, b = self.world_size, self.rank, self.batch_size
        full = self.n // b
        for i in range(full):
            part = b // w
            yield perm[i * b + r * part: i * b + (r + 1) * part]
        if self._tail:
            tail = perm[full * b:]
            pad = (-tail.numel()) % w
            if pad:  # uneven == "wrap": repeat the epoch's first items (cycled if n is tiny)
                tail = torch.cat([tail, perm[torch.arange(pad, device=perm.device) % self.n]])
            part = tail.numel() // w
            yield tail[r * part:(r + 1) * part]

    def __iter__(self):
        for idx in self.batch_indices():
            if self.items is not None:
                yield self.items[idx]
            elif self.tensors is not None:
                yield tuple(t[idx] for t in self.tensors)
            else:
                yield idx
        self.epoch += 1

    def __repr__(self) -> str:
        shard = f", rank={self.rank}/{self.world_size}" if self.world_size > 1 else ""
        return (f"{type(self).__name__}(n={self.n}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}{shard}, device={self.device})")
