"""Interaction data for recommenders: an implicit-feedback user–item graph with its splits."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

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


# ----------------------------------------------------------------------------- tabular input
_READERS = {".csv": ",", ".tsv": "\t", ".txt": None, ".dat": None}


def _describe_rows(mask: "np.ndarray", offset: int = 2, limit: int = 5) -> str:
    rows = (np.flatnonzero(mask) + offset)[:limit].tolist()
    more = int(mask.sum()) - len(rows)
    return ", ".join(map(str, rows)) + (f" and {more} more" if more > 0 else "")


def read_table(path: PathLike, sep: Optional[str] = None):
    """Read a CSV / TSV / whitespace text / Parquet file into a pandas DataFrame, with clear errors."""
    import pandas as pd

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory; expected an interaction file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
    if sep is None:
        sep = _READERS.get(ext, ",")
    try:
        if sep is None:
            return pd.read_csv(path, sep=None, engine="python")  # sniff the delimiter
        return pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the file has no rows") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: could not parse the table ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text table (byte {exc.start} is not valid {exc.encoding}); "
                         "is it a binary file? Parquet files need the extension .parquet") from exc


def read_user_item_table(path: PathLike):
    """Read the LightGCN / UltraGCN text format (one line per user: ``uid item item ...``) into
    a pandas DataFrame with integer columns ``user`` and ``item``, one row per pair."""
    import pandas as pd

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory; expected an interaction file")
    try:
        users, items = _read_user_item_lists(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file (byte {exc.start} is not valid {exc.encoding})") from exc
    if users.size == 0:
        raise ValueError(f"{path}: no interactions found (expected lines 'user item item ...')")
    return pd.DataFrame({"user": users, "item": items})


def data_fingerprint(graph: InteractionGraph) -> Dict[str, str]:
    """SHA-256 digests (hex, 16 characters) of what a trained model's indices refer to: each
    part's ``(user, item)`` pairs and the user / item id maps.

    Two graphs with equal fingerprints index the same users and items and hold the same
    interactions; a checkpoint written for one can continue training on the other.
    """
    import hashlib

    def digest(chunks) -> str:
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk)
        return h.hexdigest()[:16]

    def pairs(t: Optional[Tensor]) -> str:
        if t is None:
            return "none"
        t = t.detach().to("cpu", torch.int64).contiguous()
        return digest([str(tuple(t.shape)).encode(), t.numpy().tobytes()])

    def ids(a: Optional[np.ndarray], n: int) -> str:
        a = np.arange(n) if a is None else np.asarray(a)
        return digest([str(n).encode(), "\x1f".join(a.astype(str).tolist()).encode("utf-8")])

    return {"train": pairs(graph.train), "valid": pairs(graph.valid), "test": pairs(graph.test),
            "user_ids": ids(graph.user_ids, graph.num_users), "item_ids": ids(graph.item_ids, graph.num_items)}


def from_dataframe(df, user_col: str, item_col: str, time_col: Optional[str] = None,
                   rating_col: Optional[str] = None, min_rating: Optional[float] = None,
                   name: str = "interactions", source: str = "DataFrame",
                   user_ids: Optional[np.ndarray] = None, item_ids: Optional[np.ndarray] = None) -> InteractionGraph:
    r"""Build an :class:`InteractionGraph` (all pairs in ``train``) from a table of events.

    Raw user/item identifiers (strings or numbers) are mapped to compact indices in sorted
    order; the maps are kept in ``user_ids`` / ``item_ids`` for export. With ``rating_col`` and
    ``min_rating``, only events with ``rating >= min_rating`` count as implicit positives.
    Repeated ``(user, item)`` events are merged, keeping the latest timestamp
    (``meta["time"]``, aligned with ``train``). Errors name the ``source``, the column and the
    (1-based, header = row 1) row numbers.

    Args:
        user_ids / item_ids (np.ndarray, optional): an existing id map to reuse (e.g. the
            training map when reading a test file); unknown ids are then reported and dropped.
    """
    import pandas as pd

    if len(df) == 0:
        raise ValueError(f"{source}: no rows")
    cols = [c for c in (user_col, item_col, time_col, rating_col) if c is not None]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: column(s) {missing} not found; available columns: {list(map(str, df.columns))}")
    df = df[cols]
    for col in (user_col, item_col):
        bad = df[col].isna().to_numpy()
        if bad.any():
            raise ValueError(f"{source}: column {col!r} is empty on row(s) {_describe_rows(bad)}")
    keep = np.ones(len(df), dtype=bool)
    if rating_col is not None:
        ratings = pd.to_numeric(df[rating_col], errors="coerce")
        bad = ratings.isna().to_numpy()
        if bad.any():
            raise ValueError(f"{source}: column {rating_col!r} must be numeric; row(s) {_describe_rows(bad)} "
                             f"hold {df[rating_col][bad].astype(str).head(3).tolist()}")
        if min_rating is not None:
            keep &= ratings.to_numpy() >= float(min_rating)
    elif min_rating is not None:
        raise ValueError("min_rating needs rating_col")
    times = None
    if time_col is not None:
        raw = df[time_col]
        times = pd.to_numeric(raw, errors="coerce")
        if times.isna().all():  # not numbers: dates
            times = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
            bad = times.isna().to_numpy()
            times = times.astype("int64") // 10**9 if not bad.any() else times
        else:
            bad = times.isna().to_numpy()
        if bad.any():
            raise ValueError(f"{source}: column {time_col!r} has missing or unparseable timestamps on "
                             f"row(s) {_describe_rows(bad)} (e.g. {raw[bad].astype(str).head(3).tolist()})")
        times = times.to_numpy(dtype=np.float64)
        if not np.isfinite(times).all():
            bad = ~np.isfinite(times)
            raise ValueError(f"{source}: column {time_col!r} has non-finite values on row(s) {_describe_rows(bad)}")
    users_raw = df[user_col].to_numpy()[keep]
    items_raw = df[item_col].to_numpy()[keep]
    if users_raw.size == 0:
        raise ValueError(f"{source}: no interactions left after filtering {rating_col} >= {min_rating}")
    dropped = 0
    if user_ids is None:
        user_ids, u = np.unique(users_raw, return_inverse=True)
    else:
        u = _lookup(user_ids, users_raw)
    if item_ids is None:
        item_ids, i = np.unique(items_raw, return_inverse=True)
    else:
        i = _lookup(item_ids, items_raw)
    valid = (u >= 0) & (i >= 0)
    dropped = int((~valid).sum())
    u, i = u[valid].astype(np.int64), i[valid].astype(np.int64)
    t = times[keep][valid] if times is not None else None
    num_users, num_items = len(user_ids), len(item_ids)
    key = u * num_items + i
    if t is not None:  # keep the latest timestamp of repeated pairs
        order = np.lexsort((t, key))
        key_sorted, t_sorted = key[order], t[order]
        last = np.r_[key_sorted[1:] != key_sorted[:-1], True]
        key, t = key_sorted[last], t_sorted[last]
    else:
        key = np.unique(key)
    train = torch.from_numpy(np.stack([key // num_items, key % num_items]))
    meta: Dict[str, object] = {"source": source, "events": int(len(df)), "kept_events": int(keep.sum()),
                               "unknown_id_events_dropped": dropped}
    if t is not None:
        meta["time"] = torch.from_numpy(t)
    return InteractionGraph(num_users=num_users, num_items=num_items, train=train, user_ids=user_ids,
                            item_ids=item_ids, name=name, meta=meta)


def _lookup(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Index of each raw id in the sorted ``ids`` array, or -1 when absent."""
    try:
        pos = np.searchsorted(ids, raw)
    except TypeError:  # mixed types (e.g. str vs int): compare as strings
        ids_s, raw_s = ids.astype(str), raw.astype(str)
        order = np.argsort(ids_s)
        pos_s = np.searchsorted(ids_s[order], raw_s).clip(max=len(ids) - 1)
        found = ids_s[order][pos_s] == raw_s
        return np.where(found, order[pos_s], -1)
    pos = pos.clip(max=len(ids) - 1)
    return np.where(ids[pos] == raw, pos, -1)


def read_interactions(path: PathLike, user_col: str, item_col: str, time_col: Optional[str] = None,
                      rating_col: Optional[str] = None, min_rating: Optional[float] = None,
                      sep: Optional[str] = None, name: Optional[str] = None, **kwargs) -> InteractionGraph:
    """Read an interaction file (CSV/TSV/Parquet) into an :class:`InteractionGraph`; see
    :func:`from_dataframe` for the arguments."""
    df = read_table(path, sep=sep)
    return from_dataframe(df, user_col, item_col, time_col=time_col, rating_col=rating_col,
                          min_rating=min_rating, name=name or os.path.basename(os.fspath(path)),
                          source=os.fspath(path), **kwargs)
