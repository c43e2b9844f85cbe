"""Negative and BPR samplers for implicit-feedback recommenders (the one home of this code;
:mod:`graphkit.rec.sampling` re-exports it).

All samplers run on the device of the :class:`~graphkit.utils.PairIndex` they are given
and draw with an explicit :class:`torch.Generator`, so a run is reproducible and resumable.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from graphkit.utils.ranking import PairIndex


def sample_negatives(users: Tensor, num_negatives: int, positives: Optional[PairIndex], num_items: int,
                     generator: Optional[torch.Generator] = None, max_rounds: int = 100) -> Tensor:
    r"""Draw items uniformly at random, rejecting each user's positives.

    Collisions are redrawn in vectorised rounds (the expected number of rounds is
    :math:`1 / (1 - \rho)` for a user whose positives cover a fraction :math:`\rho` of items).

    Args:
        users (torch.Tensor): ``[B]`` user ids.
        num_negatives (int): negatives per user; the result is ``[B]`` when it is 1 and
            ``[B, num_negatives]`` otherwise.
        positives (PairIndex, optional): pairs to reject; ``None`` samples from all items.
        num_items (int): number of items.
        generator (torch.Generator, optional): random source, on the same device as ``users``.
        max_rounds (int): give up after this many redraw rounds (a user who has every item as a
            positive would otherwise loop forever). (default: ``100``)
    """
    shape = (users.numel(),) if num_negatives == 1 else (users.numel(), num_negatives)
    neg = torch.randint(0, num_items, shape, device=users.device, generator=generator)
    if positives is None:
        return neg
    u = users.view(-1, 1).expand(-1, 1 if num_negatives == 1 else num_negatives).reshape(shape)
    for _ in range(max_rounds):
        bad = positives.contains(u.reshape(-1), neg.reshape(-1, 1)).view(shape)
        n_bad = int(bad.sum())
        if n_bad == 0:
            return neg
        neg[bad] = torch.randint(0, num_items, (n_bad,), device=users.device, generator=generator)
    raise RuntimeError(f"could not draw negatives for {n_bad} (user, slot) pairs after {max_rounds} rounds: "
                       "some users interacted with (almost) every item")


def sample_bpr_triples(positives: PairIndex, num_samples: int, num_items: int,
                       generator: Optional[torch.Generator] = None,
                       mode: str = "user", num_negatives: int = 1) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Draw ``(user, positive item, negative item)`` triples for BPR.

    Args:
        positives (PairIndex): the training interactions.
        num_samples (int): number of triples.
        num_items (int): number of items.
        generator (torch.Generator, optional): random source.
        mode (str): ``"user"`` draws users uniformly among those with interactions, then one of
            their positives (the LightGCN reference sampler); ``"interaction"`` draws interactions
            uniformly. (default: ``"user"``)
        num_negatives (int): negatives per triple; the third tensor is ``[B]`` for 1 and
            ``[B, num_negatives]`` otherwise (candidates for dynamic negative sampling).
            (default: ``1``)
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    device = positives.keys.device
    if mode == "user":
        active = (positives.counts > 0).nonzero().view(-1)
        users = active[torch.randint(0, active.numel(), (num_samples,), device=device, generator=generator)]
        offset = (torch.rand(num_samples, device=device, generator=generator)
                  * positives.counts[users]).long()
        offset = torch.minimum(offset, positives.counts[users] - 1)
        pos = positives.items[positives.indptr[users] + offset]
    elif mode == "interaction":
        idx = torch.randint(0, positives.keys.numel(), (num_samples,), device=device, generator=generator)
        key = positives.keys[idx]
        users, pos = key // num_items, key % num_items
    else:
        raise ValueError(f"mode must be 'user' or 'interaction', got {mode!r}")
    neg = sample_negatives(users, num_negatives, positives, num_items, generator=generator)
    return users, pos, neg


class BPRLoader:
    r"""Epochs of ``(user, positive item, negative item)`` batches drawn on the device of
    ``positives`` (BPR training of LightGCN, MF, NGCF, ...).

    Args:
        positives (PairIndex): the training interactions (its device is the loader's).
        batch_size (int): triples per global batch (all ranks together); a multiple of
            ``world_size``.
        mode (str): ``"user"`` and ``"interaction"`` draw each triple independently with
            replacement as :func:`sample_bpr_triples` does; ``"permutation"`` visits every
            interaction once per epoch in a seeded random order (an :class:`IndexLoader` over
            the interactions) and draws one negative per triple. (default: ``"permutation"``)
        num_samples (int, optional): triples per epoch in the ``"user"`` / ``"interaction"``
            modes. (default: the number of interactions)
        num_negatives (int): negatives per triple (see :func:`sample_negatives`). (default: ``1``)
        seed (int, optional): seed; epoch ``e`` and rank ``r`` use a stream derived from
            ``(seed, e, r)``. (default: drawn from torch's global generator)
        drop_last (bool): drop a last, smaller batch. (default: ``False``)
        rank (int, optional), world_size (int, optional): shard, from ``torch.distributed``
            when not given. In ``"permutation"`` mode the ranks split every global batch of the
            same permutation (see :class:`IndexLoader` and its ``uneven`` argument); in the
            other modes each rank draws its ``batch_size / world_size`` triples from its own
            random stream.
        uneven (str): see :class:`IndexLoader`. (default: ``"error"``)

    Raises:
        ValueError: for a ``PairIndex`` without interactions, a bad mode or batch size.
    """

    MODES = ("user", "interaction", "permutation")

    def __init__(self, positives: PairIndex, batch_size: int, *, mode: str = "permutation",
                 num_samples: Optional[int] = None, num_negatives: int = 1,
                 seed: Optional[int] = None, drop_last: bool = False,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 uneven: str = "error"):
        from graphkit.loader.index import IndexLoader, check_rank, default_seed

        if mode not in self.MODES:
            raise ValueError(f"BPRLoader: mode must be one of {self.MODES}, got {mode!r}")
        if positives.keys.numel() == 0:
            raise ValueError("BPRLoader: the PairIndex holds no interactions")
        if num_negatives < 1:
            raise ValueError(f"BPRLoader: num_negatives must be >= 1, got {num_negatives}")
        self.positives, self.num_items = positives, positives.num_items
        self.mode, self.num_negatives = mode, num_negatives
        self.device = positives.keys.device
        self.seed = default_seed(seed)
        self.rank, self.world_size = check_rank(rank, world_size, "BPRLoader")
        self.epoch = 0
        nnz = positives.keys.numel()
        if mode == "permutation":
            if num_samples is not None:
                raise ValueError("BPRLoader: num_samples is fixed to the number of interactions "
                                 "in mode='permutation'")
            self._index = IndexLoader(nnz, batch_size, shuffle=True, drop_last=drop_last,
                                      seed=self.seed, device=self.device, rank=self.rank,
                                      world_size=self.world_size, uneven=uneven)
            self.num_samples = nnz
        else:
            self._index = None
            self.num_samples = nnz if num_samples is None else int(num_samples)
            if self.num_samples < 1:
                raise ValueError(f"BPRLoader: num_samples must be >= 1, got {num_samples}")
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"BPRLoader: batch_size must be a positive integer, got {batch_size!r}")
            if batch_size % self.world_size:
                raise ValueError(f"BPRLoader: batch_size={batch_size} is not a multiple of "
                                 f"world_size={self.world_size}")
        self.batch_size, self.drop_last = batch_size, drop_last

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"BPRLoader.set_epoch: epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self._index is not None:
            return len(self._index)
        full, tail = divmod(self.num_samples, self.batch_size)
        return full + (1 if tail and not self.drop_last else 0)

    def __iter__(self):
        from graphkit.loader.index import derive_seed, make_generator

        g = make_generator(self.device, derive_seed(self.seed, self.epoch, 1 + self.rank))
        p = self.positives
        if self._index is not None:
            self._index.set_epoch(self.epoch)
            for idx in self._index.batch_indices():
                key = p.keys[idx]
                users = key // self.num_items
                pos = key - users * self.num_items
                neg = sample_negatives(users, self.num_negatives, p, self.num_items, generator=g)
                yield users, pos, neg
        else:
            w = self.world_size
            for i in range(len(self)):
                size = min(self.batch_size, self.num_samples - i * self.batch_size)
                share = size // w + (1 if self.rank < size % w else 0)
                yield sample_bpr_triples(p, share, self.num_items, generator=g, mode=self.mode,
                                         num_negatives=self.num_negatives)
        self.epoch += 1

    def __repr__(self) -> str:
        return (f"BPRLoader(interactions={self.positives.keys.numel()}, batch_size={self.batch_size}, "
                f"mode={self.mode!r}, device={self.device})")
