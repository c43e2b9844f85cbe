r"""Train / validation / test splits of an :class:`~graphkit.rec.data.InteractionGraph`.

Every split works per user and is vectorised (no Python loop over users):

* :func:`random_split` — a random ``ratio`` of each user's interactions is held out;
* :func:`temporal_split` — each user's latest interactions are held out (a ratio, or
  leave-last-``n``), or everything after a global time cut;
* :func:`holdout_validation` — carve a validation part out of the training part of an
  existing split (e.g. the given LightGCN/UltraGCN files, which have no validation part).

A user always keeps at least one training interaction: users with a single interaction stay
entirely in training. Items seen only in held-out parts stay in the id space (their embeddings
are never trained); :func:`describe` counts them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from graphkit.rec.data import InteractionGraph


def _rank_within_user(users: Tensor, order_key: Tensor) -> Tuple[Tensor, Tensor]:
    """Sort pairs by (user, key); return the permutation and each pair's rank within its user
    counted from the end (0 = last)."""
    perm = torch.from_numpy(np.lexsort((order_key.numpy(), users.numpy())))
    u = users[perm]
    counts = torch.bincount(u)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(u.numel()) - start[u]
    rank_from_end = counts[u] - 1 - pos
    return perm, rank_from_end


def _held_out_counts(counts: Tensor, ratio: Optional[float], last_n: Optional[int]) -> Tensor:
    if last_n is not None:
        held = torch.full_like(counts, int(last_n))
    else:
        held = torch.floor(counts.double() * float(ratio) + 0.5).long()  # rounded
    return torch.minimum(held, (counts - 1).clamp(min=0))  # keep >= 1 training interaction


def _split_by_rank(graph: InteractionGraph, key: Tensor, test_ratio: Optional[float], test_last_n: Optional[int],
                   valid_ratio: Optional[float], valid_last_n: Optional[int]) -> InteractionGraph:
    users = graph.train[0]
    perm, rank = _rank_within_user(users, key)
    counts = torch.bincount(users, minlength=graph.num_users)
    n_test = _held_out_counts(counts, test_ratio, test_last_n)
    u_sorted = users[perm]
    is_test = rank < n_test[u_sorted]
    rest = counts - n_test
    if valid_ratio or valid_last_n:
        n_valid = _held_out_counts(rest, valid_ratio, valid_last_n)
        is_valid = (~is_test) & (rank < (n_test + n_valid)[u_sorted])
    else:
        is_valid = torch.zeros_like(is_test)
    is_train = ~(is_test | is_valid)
    pairs = graph.train[:, perm]

    def part(mask: Tensor) -> Tensor:
        p = pairs[:, mask]
        order = torch.argsort(p[0] * graph.num_items + p[1])
        return p[:, order]

    meta = dict(graph.meta)
    if "time" in meta:
        t = meta.pop("time")[perm]
        meta["time"] = t[is_train]
    return replace(graph, train=part(is_train), valid=part(is_valid) if is_valid.any() else None,
                   test=part(is_test), meta=meta)


def _check_ratio(name: str, value: Optional[float]) -> None:
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")


def random_split(graph: InteractionGraph, test_ratio: float = 0.2, valid_ratio: float = 0.0,
                 seed: int = 0) -> InteractionGraph:
    r"""Hold out ``round(test_ratio * n_u)`` random interactions of every user ``u`` for testing
    and ``round(valid_ratio * (n_u - test))`` more for validation (all in ``graph.train``),
    always leaving at least one for training."""
    _check_ratio("test_ratio", test_ratio)
    _check_ratio("valid_ratio", valid_ratio)
    g = torch.Generator().manual_seed(seed)
    key = torch.rand(graph.train.size(1), generator=g, dtype=torch.float64)
    return _split_by_rank(graph, key, test_ratio, None, valid_ratio or None, None)


def temporal_split(graph: InteractionGraph, test_ratio: Optional[float] = None, test_last_n: Optional[int] = None,
                   valid_ratio: Optional[float] = None, valid_last_n: Optional[int] = None,
                   time_cut: Optional[float] = None, valid_time_cut: Optional[float] = None) -> InteractionGraph:
    r"""Hold out each user's latest interactions (by ``meta["time"]``).

    Give either a per-user ``test_ratio`` or ``test_last_n`` (leave-last-n), or a global
    ``time_cut``: interactions at or after it are test (and at or after ``valid_time_cut``,
    before ``time_cut``, validation). Ties in time are broken by item index.
    """
    if "time" not in graph.meta:
        raise ValueError(f"{graph.name}: a temporal split needs timestamps (pass time_col when reading)")
    time = graph.meta["time"].double()
    if time_cut is not None:
        if test_ratio is not None or test_last_n is not None:
            raise ValueError("give either time_cut or test_ratio/test_last_n, not both")
        is_test = time >= time_cut
        is_valid = (time >= valid_time_cut) & ~is_test if valid_time_cut is not None else torch.zeros_like(is_test)
        is_train = ~(is_test | is_valid)
        if not is_train.any():
            raise ValueError(f"time_cut={time_cut} leaves no training interactions")
        meta = dict(graph.meta)
        meta["time"] = time[is_train]
        return replace(graph, train=graph.train[:, is_train],
                       valid=graph.train[:, is_valid] if is_valid.any() else None,
                       test=graph.train[:, is_test], meta=meta)
    if (test_ratio is None) == (test_last_n is None):
        raise ValueError("give exactly one of test_ratio, test_last_n or time_cut")
    _check_ratio("test_ratio", test_ratio)
    _check_ratio("valid_ratio", valid_ratio)
    # Order by time, ties by item index (a deterministic total order).
    order_time = torch.from_numpy(np.lexsort((graph.train[1].numpy(), time.numpy())))
    key = torch.empty_like(time)
    key[order_time] = torch.arange(time.numel(), dtype=time.dtype)
    return _split_by_rank(graph, key, test_ratio, test_last_n, valid_ratio, valid_last_n)


def holdout_validation(graph: InteractionGraph, valid_ratio: float = 0.1, seed: int = 0) -> InteractionGraph:
    r"""Move a random ``valid_ratio`` of each user's *training* interactions to ``valid``.

    ``test`` is kept as it is. Used to select models on validation for datasets that come with
    a fixed train/test split only.
    """
    if graph.valid is not None:
        raise ValueError(f"{graph.name} already has a validation part")
    if not 0.0 < valid_ratio < 1.0:
        raise ValueError(f"valid_ratio must lie in (0, 1), got {valid_ratio}")
    inner = random_split(replace(graph, test=None, valid=None), test_ratio=valid_ratio, seed=seed)
    return replace(graph, train=inner.train, valid=inner.test, test=graph.test, meta=inner.meta)


def describe(graph: InteractionGraph) -> Dict[str, int]:
    """Counts of the parts, and of held-out users/items never seen in training."""
    out: Dict[str, int] = {"users": graph.num_users, "items": graph.num_items, "train": graph.num_train}
    seen_u = torch.zeros(graph.num_users, dtype=torch.bool)
    seen_i = torch.zeros(graph.num_items, dtype=torch.bool)
    seen_u[graph.train[0]] = True
    seen_i[graph.train[1]] = True
    for name in ("valid", "test"):
        part = getattr(graph, name)
        if part is None:
            continue
        out[name] = int(part.size(1))
        out[f"{name}_users"] = int(torch.unique(part[0]).numel())
        out[f"{name}_pairs_with_unseen_item"] = int((~seen_i[part[1]]).sum())
        out[f"{name}_pairs_with_unseen_user"] = int((~seen_u[part[0]]).sum())
    return out
