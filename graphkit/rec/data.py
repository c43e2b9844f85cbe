"""Interaction data for recommenders: an implicit-feedback user–item graph with its splits."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class InteractionGraph:
    r"""A bipartite user–item interaction graph with train / validation / test parts.

    Users and items are indexed ``0 .. num_users-1`` and ``0 .. num_items-1``. Each part is a
    ``[2, E]`` long tensor of ``(user, item)`` pairs without duplicates. ``user_ids`` /
    ``item_ids`` map the compact indices back to the raw identifiers found in the input.
    """

    num_users: int
    num_items: int
    train: Tensor
    valid: Optional[Tensor] = None
    test: Optional[Tensor] = None
    user_ids: Optional[np.ndarray] = None
    item_ids: Optional[np.ndarray] = None
    name: str = "interactions"
    meta: Dict[str, object] = field(default_factory=dict)

    @property
    def num_train(self) -> int:
        return int(self.train.size(1))

    def __repr__(self) -> str:
        parts = [f"users={self.num_users}", f"items={self.num_items}", f"train={self.num_train}"]
        if self.valid is not None:
            parts.append(f"valid={self.valid.size(1)}")
        if self.test is not None:
            parts.append(f"test={self.test.size(1)}")
        return f"InteractionGraph({self.name}: {', '.join(parts)})"


def _read_user_item_lists(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read the LightGCN/UltraGCN text format: one line per user, ``uid item item ...``."""
    users, items = [], []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                ids = np.asarray(tokens, dtype=np.int64)
            except ValueError as exc:
                raise ValueError(f"{path}, line {lineno}: expected integer ids, got {line.strip()[:80]!r}") from exc
            if (ids < 0).any():
                raise ValueError(f"{path}, line {lineno}: negative id in {line.strip()[:80]!r}")
            if ids.size > 1:
                users.append(np.full(ids.size - 1, ids[0], dtype=np.int64))
                items.append(ids[1:])
    if not users:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(users), np.concatenate(items)


def _unique_pairs(u: np.ndarray, i: np.ndarray, num_items: int) -> Tensor:
    key = np.unique(u * np.int64(num_items) + i)
    return torch.from_numpy(np.stack([key // num_items, key % num_items]))


def read_user_item_lists(train_path: PathLike, test_path: Optional[PathLike] = None,
                         name: str = "interactions") -> InteractionGraph:
    """Load the LightGCN / UltraGCN split files (``train.txt`` / ``test.txt``).

    Ids in the files are already compact (0-indexed); the number of users and items is the
    largest id seen in either file plus one. Duplicated pairs are merged.
    """
    tu, ti = _read_user_item_lists(train_path)
    if tu.size == 0:
        raise ValueError(f"{train_path}: no interactions found")
    if test_path is not None:
        su, si = _read_user_item_lists(test_path)
    else:
        su = si = np.zeros(0, dtype=np.int64)
    num_users = int(max(tu.max(), su.max() if su.size else -1)) + 1
    num_items = int(max(ti.max(), si.max() if si.size else -1)) + 1
    train = _unique_pairs(tu, ti, num_items)
    test = _unique_pairs(su, si, num_items) if test_path is not None else None
    return InteractionGraph(num_users=num_users, num_items=num_items, train=train, test=test,
                            user_ids=np.arange(num_users), item_ids=np.arange(num_items), name=name)
