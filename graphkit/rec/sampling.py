"""Vectorised training samplers for implicit-feedback recommenders.

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
