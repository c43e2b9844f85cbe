r"""Event streams: validation, a CSV reader, the chronological (transductive / inductive) split
and negative destinations drawn at random or from history, never true positives.

The split follows TGAT / CAW / NAT (Luo & Li, LoG 2022, https://arxiv.org/abs/2209.01084):
with :math:`t_{val}` and :math:`t_{test}` the 70% and 85% quantiles of the timestamps,
train holds events with :math:`t \le t_{val}`, validation :math:`t_{val} < t \le t_{test}`
and test :math:`t > t_{test}` (events sharing a timestamp always share a split). In the
inductive setting a fraction of the nodes that occur after :math:`t_{val}` is held out: every
event touching one of them is dropped from train and validation, and the inductive test set is
the test events with at least one held-out node.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ["check_events", "check_event_batch", "read_events_csv", "TemporalSplit",
           "chronological_split", "NegativeSampler"]


def check_events(data, num_nodes: Optional[int] = None, where: str = "events") -> int:
    r"""Validate a :class:`~torch_geometric.data.TemporalData` event stream and return the
    number of nodes.

    Raises :class:`ValueError` (naming the first offending event) when ``src``/``dst``/``t``
    are missing or of different lengths, the stream is empty, ids are negative or not below
    ``num_nodes`` (default: ``max id + 1``), timestamps are NaN, infinite, negative or
    decreasing, or ``msg`` is not a finite ``(E, F)`` tensor.
    """
    for key in ("src", "dst", "t"):
        if getattr(data, key, None) is None:
            raise ValueError(f"{where}: no {key!r} attribute")
    src, dst, t = data.src, data.dst, data.t
    e = src.numel()
    if dst.numel() != e or t.numel() != e:
        raise ValueError(f"{where}: src, dst and t have {e}, {dst.numel()} and {t.numel()} entries")
    if e == 0:
        raise ValueError(f"{where}: no events")
    for name, ids in (("src", src), ("dst", dst)):
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"{where}: {name} must hold integer ids, got {ids.dtype}")
        if int(ids.min()) < 0:
            i = int((ids < 0).nonzero()[0, 0])
            raise ValueError(f"{where}: event {i} has negative {name} id {int(ids[i])}")
    n = int(max(int(src.max()), int(dst.max()))) + 1 if num_nodes is None else int(num_nodes)
    for name, ids in (("src", src), ("dst", dst)):
        if int(ids.max()) >= n:
            i = int((ids >= n).nonzero()[0, 0])
            raise ValueError(f"{where}: event {i} has {name} id {int(ids[i])}, beyond the "
                             f"declared {n} nodes")
    tf = t.double()
    if not bool(torch.isfinite(tf).all()):
        i = int((~torch.isfinite(tf)).nonzero()[0, 0])
        raise ValueError(f"{where}: event {i} has a non-finite timestamp ({t[i].item()})")
    if bool((tf < 0).any()):
        i = int((tf < 0).nonzero()[0, 0])
        raise ValueError(f"{where}: event {i} has a negative timestamp ({t[i].item()})")
    if e > 1 and bool((tf[1:] < tf[:-1]).any()):
        i = int((tf[1:] < tf[:-1]).nonzero()[0, 0]) + 1
        raise ValueError(f"{where}: events out of time order: event {i} has t={t[i].item()} "
                         f"after t={t[i - 1].item()}")
    msg = getattr(data, "msg", None)
    if msg is not None:
        if msg.dim() != 2 or msg.size(0) != e:
            raise ValueError(f"{where}: msg must have shape ({e}, F), got {tuple(msg.shape)}")
        if msg.numel() and not bool(torch.isfinite(msg).all()):
            i = int((~torch.isfinite(msg)).any(1).nonzero()[0, 0])
            raise ValueError(f"{where}: event {i} has NaN or infinite features")
    return n


def check_event_batch(src: Tensor, dst: Tensor, t: Tensor, num_nodes: int, where: str,
                      last_time: Optional[Tensor] = None, ordered: bool = False) -> None:
    r"""Validate a batch of events given to a stateful model: ``src``, ``dst``, ``t`` 1-D of
    one length, integer ids in ``[0, num_nodes)``, finite and non-negative times, none earlier
    than ``last_time`` (the latest event the model was fed) and, with ``ordered``, times
    non-decreasing within the batch. One host synchronisation when the batch is valid; the
    :class:`ValueError` names the first offending entry."""
    if src.dim() != 1 or src.shape != dst.shape or src.shape != t.shape:
        raise ValueError(f"{where}: src, dst and t must be 1-D of one length, got "
                         f"{tuple(src.shape)}, {tuple(dst.shape)}, {tuple(t.shape)}")
    for name, ids in (("src", src), ("dst", dst)):
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"{where}: {name} must hold integer node ids, got {ids.dtype}")
    if not src.numel():
        return
    n = num_nodes
    bad = (src < 0) | (src >= n) | (dst < 0) | (dst >= n) | ~(t >= 0) | ~torch.isfinite(t)
    if last_time is not None:
        bad = bad | (t < last_time)
    bad = bad.any()
    if ordered and t.numel() > 1:
        bad = bad | (t[1:] < t[:-1]).any()
    if not bool(bad):  # one host synchronisation per call; details only on error
        return
    for name, ids in (("src", src), ("dst", dst)):
        out = (ids < 0) | (ids >= n)
        if bool(out.any()):
            i = int(out.nonzero()[0, 0])
            raise ValueError(f"{where}: {name}[{i}] = {int(ids[i])} is outside [0, {n})")
    if not bool(torch.isfinite(t).all()):
        i = int((~torch.isfinite(t)).nonzero()[0, 0])
        raise ValueError(f"{where}: t[{i}] is not finite")
    if bool((t < 0).any()):
        i = int((t < 0).nonzero()[0, 0])
        raise ValueError(f"{where}: t[{i}] = {t[i].item()} is negative (times count from the "
                         "empty initial state at 0; shift the stream to start at 0 or later)")
    if last_time is not None and bool((t < last_time).any()):
        i = int((t < last_time).nonzero()[0, 0])
        raise ValueError(f"{where}: t[{i}] = {t[i].item()} is earlier than the latest event "
                         f"already fed to update_state (t = {last_time.item()}); events "
                         "must come in time order (reset_state() starts over)")
    i = int((t[1:] < t[:-1]).nonzero()[0, 0]) + 1
    raise ValueError(f"{where}: events out of time order: t[{i}] = {t[i].item()} after "
                     f"t[{i - 1}] = {t[i - 1].item()}")


def read_events_csv(path: Union[str, os.PathLike], num_nodes: Optional[int] = None):
    r"""Read a CSV of events ``src,dst,t[,f1,f2,...]`` (one header line) into a
    :class:`~torch_geometric.data.TemporalData` with ``msg`` of shape ``(E, F)`` (``F = 0``
    without feature columns), validated by :func:`check_events`.

    Node ids are used as given (``0 .. num_nodes - 1``); the error for a bad row names its
    line in the file (header = line 1). The feature width is the header's: a row with missing
    feature values is an error, and so is a row with more fields than the header (pandas'
    parser error, a :class:`ValueError`).
    """
    import numpy as np
    import pandas as pd
    from torch_geometric.data import TemporalData

    df = pd.read_csv(path)
    if df.shape[1] < 3:
        raise ValueError(f"{path}: expected columns src,dst,t[,features], got {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{path}: no events")
    ids = df.iloc[:, :2].to_numpy(np.float64)
    bad = ~np.isfinite(ids).all(1) | (ids != np.round(ids)).any(1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {r + 2}: node ids must be integers, got {ids[r].tolist()}")
    data = TemporalData(src=torch.from_numpy(ids[:, 0].astype(np.int64)),
                        dst=torch.from_numpy(ids[:, 1].astype(np.int64)),
                        t=torch.from_numpy(df.iloc[:, 2].to_numpy(np.float64, copy=True)),
                        msg=torch.from_numpy(df.iloc[:, 3:].to_numpy(np.float32, copy=True)).view(len(df), -1))
    try:
        check_events(data, num_nodes, where=str(path))
    except ValueError as exc:  # name the file line instead of the event index
        import re

        m = re.search(r"event (\d+)", str(exc))
        if m is None:
            raise
        line = int(m.group(1)) + 2
        raise ValueError(str(exc).replace(m.group(0), f"line {line}", 1)) from None
    if bool((data.t == data.t.round()).all()) and float(data.t.abs().max()) < 2 ** 53:
        data.t = data.t.long()
    return data


@dataclass
class TemporalSplit:
    r"""Boolean event masks of a chronological split (all of length :math:`E`).

    Attributes:
        train, val, test: events streamed in each phase (in the inductive setting train and
            val omit events touching a held-out node).
        test_inductive: test events with at least one held-out node (empty when transductive).
        new_nodes: ``(N,)`` mask of held-out nodes.
        val_time, test_time: the two split times.
    """
    train: Tensor
    val: Tensor
    test: Tensor
    test_inductive: Tensor
    new_nodes: Tensor
    val_time: float
    test_time: float


def chronological_split(data, val_ratio: float = 0.15, test_ratio: float = 0.15, *,
                        inductive: bool = False, new_node_ratio: float = 0.1,
                        num_nodes: Optional[int] = None, seed: int = 0) -> TemporalSplit:
    r"""Chronological 70/15/15 split by timestamp quantiles (module docstring), optionally
    inductive with ``new_node_ratio`` of the nodes occurring after the validation time held out
    (drawn with ``seed``). Raises :class:`ValueError` when a split comes out empty."""
    n = check_events(data, num_nodes)
    if not (0 < val_ratio < 1 and 0 < test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ValueError(f"chronological_split: ratios must be in (0, 1) with a sum below 1, "
                         f"got val={val_ratio}, test={test_ratio}")
    t = data.t.double()
    q = torch.tensor([1 - val_ratio - test_ratio, 1 - test_ratio], dtype=torch.float64)
    val_time, test_time = torch.quantile(t, q).tolist()
    train = t <= val_time
    val = (t > val_time) & (t <= test_time)
    test = t > test_time
    src, dst = data.src.long(), data.dst.long()
    new_nodes = torch.zeros(n, dtype=torch.bool)
    test_ind = torch.zeros_like(test)
    if inductive:
        if not 0 < new_node_ratio < 1:
            raise ValueError(f"chronological_split: new_node_ratio must lie in (0, 1), got "
                             f"{new_node_ratio}")
        late = torch.unique(torch.cat([src[~train], dst[~train]]))
        gen = torch.Generator().manual_seed(int(seed))
        k = int(new_node_ratio * n)
        new_nodes[late[torch.randperm(late.numel(), generator=gen)[:k]]] = True
        touches = new_nodes[src] | new_nodes[dst]
        train, val = train & ~touches, val & ~touches
        test_ind = test & touches
    for name, m in (("train", train), ("validation", val), ("test", test)):
        if not bool(m.any()):
            raise ValueError(f"chronological_split: the {name} split is empty "
                             f"(split times {val_time}, {test_time}; {t.numel()} events)")
    if inductive and not bool(test_ind.any()):
        raise ValueError("chronological_split: no test event touches a held-out node")
    return TemporalSplit(train, val, test, test_ind, new_nodes, val_time, test_time)


class NegativeSampler:
    r"""Negative destinations for positive events ``(u, v)``: drawn uniformly from all nodes
    (*random*) or from the destinations ``u`` met in the history given to :meth:`set_history`
    (*historical*, random when ``u`` has none). A negative ``w`` is never a true positive: it is
    redrawn while ``(u, w)`` is an event of the batch being scored (after a few rounds the
    remaining clashes move to the next node id that is not one).

    Args:
        num_nodes (int): node count :math:`N`; negatives lie in ``[0, N)``.
        generator (torch.Generator, optional): source of the draws (seed it for determinism).
    """

    def __init__(self, num_nodes: int, generator: Optional[torch.Generator] = None):
        if num_nodes < 2:
            raise ValueError(f"NegativeSampler: needs at least 2 nodes, got {num_nodes}")
        self.num_nodes = int(num_nodes)
        self.generator = generator
        self.ptr = self.col = None

    def set_history(self, src: Tensor, dst: Tensor) -> None:
        """Remember the destinations of every source in the events ``src -> dst`` (and
        ``dst -> src``), as a CSR of unique pairs."""
        n = self.num_nodes
        a = torch.cat([src, dst]).long().cpu()
        b = torch.cat([dst, src]).long().cpu()
        key = torch.unique(a * n + b)
        rows, self.col = key // n, key % n
        self.ptr = torch.zeros(n + 1, dtype=torch.long)
        self.ptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)

    def _uniform(self, shape) -> Tensor:
        return torch.randint(0, self.num_nodes, shape, generator=self.generator)

    def _historical(self, src: Tensor, q: int) -> Tensor:
        out = self._uniform((src.numel(), q))
        if self.ptr is None:
            return out
        start, deg = self.ptr[src], self.ptr[src + 1] - self.ptr[src]
        pick = (torch.rand(src.numel(), q, generator=self.generator) * deg.view(-1, 1)).long()
        has = (deg > 0).view(-1, 1).expand(-1, q)
        if self.col.numel() == 0:
            return out
        hist = self.col[(start.view(-1, 1) + pick).clamp(max=self.col.numel() - 1)]
        return torch.where(has, hist, out)

    def sample(self, src: Tensor, dst: Tensor, num_random: int = 1,
               num_historical: int = 0) -> Tensor:
        r"""``(B, num_random + num_historical)`` negatives for the batch's positives
        ``src -> dst`` (on the device of ``src``)."""
        device = src.device
        s, d = src.long().cpu(), dst.long().cpu()
        q = num_random + num_historical
        if q < 1:
            raise ValueError("NegativeSampler.sample: ask for at least one negative")
        neg = torch.cat([self._uniform((s.numel(), num_random)),
                         self._historical(s, num_historical)], 1)
        n = self.num_nodes
        pos = torch.unique(s * n + d)
        clash = torch.isin(s.view(-1, 1) * n + neg, pos)
        for _ in range(8):
            if not bool(clash.any()):
                break
            neg = torch.where(clash, self._uniform(neg.shape), neg)
            clash = torch.isin(s.view(-1, 1) * n + neg, pos)
        for _ in range(n):  # deterministic fallback: the next id that is no positive
            if not bool(clash.any()):
                break
            neg = torch.where(clash, (neg + 1) % n, neg)
            clash = torch.isin(s.view(-1, 1) * n + neg, pos)
        if bool(clash.any()):
            i = int(clash.any(1).nonzero()[0, 0])
            raise ValueError(f"NegativeSampler.sample: source {int(s[i])} meets every node in "
                             "this batch; no negative exists")
        return neg.to(device)
