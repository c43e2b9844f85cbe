"""Readers for the text formats that PyG has no dataset class for.

* interaction pair lines (LightGCN's LastFM ``data1.txt``) and MovieLens ``u1.base``/``u1.test``;
* the TGAT/NAT/DyGLib temporal ``ml_<name>.csv`` layout and bare ``u i ts`` event lists;
* knowledge-graph triples (``head<TAB>relation<TAB>tail``);
* graph6 files (one graph per line).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "read_interaction_pairs", "read_temporal_csv", "read_temporal_events", "read_snap_signed", "KnowledgeGraph",
    "read_kg_triples", "read_graph6",
]

PathLike = Union[str, "os.PathLike[str]"]


def _read_int_table_slow(path: PathLike, min_cols: int, sep: Optional[str],
                         float_cols: Sequence[int] = ()) -> np.ndarray:
    """Line-by-line reader: only used to find and name the offending line."""
    rows: List[List[int]] = []
    width = None
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split(sep) if sep else line.split()
            if not line.strip():
                continue
            if len(tokens) < min_cols:
                raise ValueError(f"{path}, line {lineno}: expected at least {min_cols} columns, "
                                 f"got {len(tokens)}: {line.strip()[:80]!r}")
            if width is None:
                width = len(tokens)
            elif len(tokens) != width:
                raise ValueError(f"{path}, line {lineno}: expected {width} columns like the first "
                                 f"line, got {len(tokens)}")
            try:
                vals = [float(t) for t in tokens[:min_cols]]
            except ValueError as exc:
                raise ValueError(f"{path}, line {lineno}: non-numeric value in {line.strip()[:80]!r}") from exc
            if any(v != int(v) for c, v in enumerate(vals) if c not in float_cols):
                raise ValueError(f"{path}, line {lineno}: expected integers, got {line.strip()[:80]!r}")
            rows.append([int(v) for v in vals])
    if not rows:
        raise ValueError(f"{path}: no rows found")
    return np.asarray(rows, dtype=np.int64)


def _read_int_table(path: PathLike, min_cols: int, sep: Optional[str] = None,
                    float_cols: Sequence[int] = ()) -> np.ndarray:
    """Read a whitespace (or ``sep``) separated integer table; errors name the file and line.

    Columns in ``float_cols`` may hold fractions, which are truncated towards zero.
    """
    import pandas as pd

    try:
        df = pd.read_csv(path, sep=sep if sep else r"\s+", header=None, engine="c",
                         dtype=np.float64, skip_blank_lines=True)
        table = df.to_numpy()
        if table.shape[0] == 0 or table.shape[1] < min_cols or np.isnan(table).any():
            raise ValueError
        table = table[:, :min_cols]
        strict = [c for c in range(min_cols) if c not in float_cols]
        if (table[:, strict] != np.round(table[:, strict])).any():
            raise ValueError
        return np.trunc(table).astype(np.int64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return _read_int_table_slow(path, min_cols, sep, float_cols)  # raises with the line number


def read_interaction_pairs(path: PathLike, *, one_based: bool,
                           sep: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Read ``user item [...]`` lines; returns 0-based ``(users, items)`` arrays."""
    table = _read_int_table(path, 2, sep)
    u, i = table[:, 0], table[:, 1]
    if one_based:
        bad = np.flatnonzero((u < 1) | (i < 1))
        if bad.size:
            raise ValueError(f"{path}: row {bad[0] + 1} has an id < 1 in a 1-based file")
        u, i = u - 1, i - 1
    bad = np.flatnonzero((u < 0) | (i < 0))
    if bad.size:
        raise ValueError(f"{path}: row {bad[0] + 1} has a negative id")
    return u, i


def _check_sorted(t: np.ndarray, path: PathLike, row_offset: int) -> None:
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        r = int(bad[0]) + 1
        raise ValueError(f"{path}: timestamps must be non-decreasing, but line {r + row_offset} has "
                         f"t={t[r].item()} after t={t[r - 1].item()}")


def read_temporal_csv(path: PathLike):
    """Read the TGAT/NAT ``ml_<name>.csv`` layout (``,u,i,ts,label,idx``) as ``TemporalData``.

    Returns ``(data, raw_ids)``. Node ids are remapped to ``0 .. N-1`` in increasing order of the
    raw id (the raw ids are 1-based, possibly with gaps; 0 is the format's padding id), and
    ``raw_ids[k]`` is the raw id of node ``k``. Messages are zero-width (``msg`` of shape
    ``[E, 0]``): these datasets have no edge features; the ``label`` column becomes ``y``.
    Timestamps must be non-decreasing; the error names the first offending line of the file.
    """
    import pandas as pd
    from torch_geometric.data import TemporalData

    df = pd.read_csv(path)
    cols = [c for c in ("u", "i", "ts") if c not in df.columns]
    if cols:
        raise ValueError(f"{path}: missing column(s) {cols}; expected the ',u,i,ts,label,idx' layout")
    if df.empty:
        raise ValueError(f"{path}: no events")
    ts = df["ts"].to_numpy()
    if not np.isfinite(ts).all():
        r = int(np.flatnonzero(~np.isfinite(ts))[0])
        raise ValueError(f"{path}, line {r + 2}: non-finite timestamp")
    _check_sorted(ts, path, row_offset=2)  # +1 header, +1 one-based line numbers
    src_raw = df["u"].to_numpy(np.int64)
    dst_raw = df["i"].to_numpy(np.int64)
    raw_ids, inv = np.unique(np.concatenate([src_raw, dst_raw]), return_inverse=True)
    e = src_raw.size
    data = TemporalData(
        src=torch.from_numpy(inv[:e].astype(np.int64)),
        dst=torch.from_numpy(inv[e:].astype(np.int64)),
        t=torch.from_numpy(ts.astype(np.int64)),
        msg=torch.zeros(e, 0),
    )
    if "label" in df.columns:
        data.y = torch.from_numpy(df["label"].to_numpy().astype(np.int64))
    return data, raw_ids


def read_temporal_events(path: PathLike):
    """Read a bare ``u i ts`` event list (space separated) as ``TemporalData`` (ids remapped)."""
    from torch_geometric.data import TemporalData

    table = _read_int_table(path, 3)
    _check_sorted(table[:, 2], path, row_offset=1)
    raw_ids, inv = np.unique(table[:, :2].reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 2)
    data = TemporalData(src=torch.from_numpy(inv[:, 0].copy()), dst=torch.from_numpy(inv[:, 1].copy()),
                        t=torch.from_numpy(table[:, 2].copy()), msg=torch.zeros(table.shape[0], 0))
    return data, raw_ids


def read_snap_signed(path: PathLike):
    """Read a SNAP signed network (``src,dst,rating,time`` lines, no header) as ``TemporalData``.

    Returns ``(data, raw_ids)``. Events are sorted by time (stable, so ties keep the file order;
    SNAP's Bitcoin-Alpha file is not in time order), node ids are remapped to ``0 .. N-1`` in
    increasing raw-id order, ``msg`` holds the rating as a ``[E, 1]`` float and ``t`` the time in
    whole seconds (fractions truncated, as torch_geometric's ``BitcoinOTC`` does).
    """
    from torch_geometric.data import TemporalData

    table = _read_int_table(path, 4, sep=",", float_cols=(3,))  # SNAP's OTC times have fractions
    order = np.argsort(table[:, 3], kind="stable")
    table = table[order]
    raw_ids, inv = np.unique(table[:, :2].reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 2)
    data = TemporalData(src=torch.from_numpy(inv[:, 0].copy()), dst=torch.from_numpy(inv[:, 1].copy()),
                        t=torch.from_numpy(table[:, 3].copy()),
                        msg=torch.from_numpy(table[:, 2:3].astype(np.float32)))
    return data, raw_ids


@dataclass
class KnowledgeGraph:
    r"""A knowledge graph split into train / valid / test triples.

    Each split is a ``[N, 3]`` long tensor of ``(head, relation, tail)`` indices. Entities and
    relations are numbered in sorted order of their labels over all splits.
    """

    name: str
    train: Tensor
    valid: Tensor
    test: Tensor
    entity_to_id: Dict[str, int]
    relation_to_id: Dict[str, int]
    meta: Dict[str, object] = field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return len(self.entity_to_id)

    @property
    def num_relations(self) -> int:
        return len(self.relation_to_id)

    def __repr__(self) -> str:
        return (f"KnowledgeGraph({self.name}: entities={self.num_entities}, relations={self.num_relations}, "
                f"train={self.train.size(0)}, valid={self.valid.size(0)}, test={self.test.size(0)})")


def _read_triples(path: PathLike) -> List[Tuple[str, str, str]]:
    out = []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or not all(p.strip() for p in parts):
                raise ValueError(f"{path}, line {lineno}: expected 'head<TAB>relation<TAB>tail', "
                                 f"got {line.strip()[:80]!r}")
            out.append((parts[0].strip(), parts[1].strip(), parts[2].strip()))
    if not out:
        raise ValueError(f"{path}: no triples")
    return out


def read_kg_triples(train: PathLike, valid: PathLike, test: PathLike, name: str) -> KnowledgeGraph:
    """Read tab-separated ``head relation tail`` files into a :class:`KnowledgeGraph`."""
    splits = [_read_triples(p) for p in (train, valid, test)]
    ents = sorted({x for s in splits for h, _, t in s for x in (h, t)})
    rels = sorted({r for s in splits for _, r, _ in s})
    e2i = {e: i for i, e in enumerate(ents)}
    r2i = {r: i for i, r in enumerate(rels)}

    def enc(s):
        return torch.tensor([[e2i[h], r2i[r], e2i[t]] for h, r, t in s], dtype=torch.long)

    return KnowledgeGraph(name=name, train=enc(splits[0]), valid=enc(splits[1]), test=enc(splits[2]),
                          entity_to_id=e2i, relation_to_id=r2i)


def _graph6_decode(line: bytes, path: PathLike, lineno: int) -> Tuple[int, np.ndarray]:
    """Decode one graph6 string; returns ``(n, edge_index[2, 2m])`` (both directions)."""
    s = line.strip()
    if s.startswith(b">>graph6<<"):
        s = s[len(b">>graph6<<"):]
    v = np.frombuffer(s, dtype=np.uint8).astype(np.int64) - 63
    if v.size == 0 or (v < 0).any() or (v > 63).any():
        raise ValueError(f"{path}, line {lineno}: not a graph6 string")
    if v[0] < 63:
        n, body = int(v[0]), v[1:]
    elif v.size > 1 and v[1] < 63:
        n, body = int((v[1] << 12) | (v[2] << 6) | v[3]), v[4:]
    else:
        n = 0
        for x in v[2:8]:
            n = (n << 6) | int(x)
        body = v[8:]
    need = n * (n - 1) // 2
    bits = ((body[:, None] >> np.arange(5, -1, -1)) & 1).reshape(-1)
    if bits.size < need:
        raise ValueError(f"{path}, line {lineno}: graph6 string too short for {n} nodes")
    bits = bits[:need].astype(bool)
    # graph6 lists the upper triangle column by column: (0,1), (0,2), (1,2), (0,3), ...
    j = np.repeat(np.arange(1, n), np.arange(1, n)) if n > 1 else np.zeros(0, np.int64)
    i = np.concatenate([np.arange(k) for k in range(1, n)]) if n > 1 else np.zeros(0, np.int64)
    i, j = i[bits], j[bits]
    ei = np.stack([np.concatenate([i, j]), np.concatenate([j, i])])
    return n, ei


def read_graph6(path: PathLike) -> list:
    """Read a graph6 file (one graph per line) into a list of PyG ``Data`` (undirected, sorted)."""
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce

    graphs = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            n, ei = _graph6_decode(line, path, lineno)
            edge_index = coalesce(torch.from_numpy(ei), num_nodes=n)
            graphs.append(Data(edge_index=edge_index, num_nodes=n))
    if not graphs:
        raise ValueError(f"{path}: no graphs")
    return graphs
