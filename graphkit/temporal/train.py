r"""Leak-free training and evaluation of stateful temporal link predictors (NAT, TGN).

A model here is any module with ``forward(src, dst, t) -> logits``, ``update_state(src, dst,
t, msg)`` and ``reset_state()``. Events are streamed chronologically in consecutive batches;
each batch is **scored first and only then** fed to ``update_state``, so a score never sees
its own batch's events (nor later ones).

* :func:`train_epoch` — reset the state, stream the training events with one random negative
  destination per positive and binary cross-entropy;
* :func:`score_events` — stream evaluation events from the current state and return, for every
  event, the positive score and the scores of ``num_random`` random and ``num_historical``
  historical negative destinations (:class:`~graphkit.temporal.data.NegativeSampler`);
* :func:`link_metrics` — AP and ROC-AUC (positive vs. its first random negative, and vs. its
  first historical one) and MRR of each positive among all its negatives (one-vs-many), from
  :func:`graphkit.evaluate.get_metric`;
* :func:`fit_link_predictor` — epochs over :func:`graphkit.engine.loops.fit` selected on
  validation AP, then a fresh evaluation of the selected parameters on validation and test.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from graphkit.temporal.data import NegativeSampler, TemporalSplit, check_events

__all__ = ["EventStream", "train_epoch", "score_events", "replay_events", "link_metrics",
           "fit_link_predictor", "make_adam"]


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel where the parameters' device supports it (the same update
    rule as the default implementation, one kernel instead of a dozen small operations per
    parameter tensor), the default implementation elsewhere."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr)


class EventStream:
    r"""The events of a :class:`~torch_geometric.data.TemporalData` on ``device``, validated
    (:func:`~graphkit.temporal.data.check_events`), with times shifted to start at 0 (so they
    stay exact in float32) and ``msg`` of a fixed width (zero-width when absent)."""

    def __init__(self, data, num_nodes: Optional[int] = None, device=None):
        self.num_nodes = check_events(data, num_nodes)
        device = torch.device(device) if device is not None else data.src.device
        self.src = data.src.long().to(device)
        self.dst = data.dst.long().to(device)
        t = data.t.double()
        self.t = (t - t[0]).float().to(device)
        msg = getattr(data, "msg", None)
        self.msg = (torch.zeros(self.src.numel(), 0) if msg is None else msg.float()).to(device)
        self.msg_dim = self.msg.size(1)

    def __len__(self) -> int:
        return self.src.numel()

    def batches(self, mask: Tensor, batch_size: int):
        """Consecutive chunks of the positions selected by ``mask`` (in time order)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        idx = mask.nonzero().view(-1).to(self.src.device)
        if idx.numel() == 0:
            raise ValueError("no events selected (empty split)")
        return idx.split(batch_size)


def train_epoch(model, stream: EventStream, mask: Tensor, optimizer, batch_size: int,
                sampler: NegativeSampler) -> float:
    """One epoch over the training events from an empty state; returns the mean loss."""
    model.train()
    model.reset_state()
    total, count = None, 0
    for idx in stream.batches(mask, batch_size):
        src, dst, t, msg = stream.src[idx], stream.dst[idx], stream.t[idx], stream.msg[idx]
        neg = sampler.sample(src, dst, 1)[:, 0]
        out = model(torch.cat([src, src]), torch.cat([dst, neg]), torch.cat([t, t]))
        y = torch.cat([torch.ones_like(t), torch.zeros_like(t)])
        loss = F.binary_cross_entropy_with_logits(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_state(src, dst, t, msg)
        part = loss.detach() * idx.numel()  # summed on the device: no host sync per batch
        total = part if total is None else total + part
        count += idx.numel()
    return float(total) / count


@torch.no_grad()
def score_events(model, stream: EventStream, mask: Tensor, batch_size: int,
                 sampler: NegativeSampler, num_random: int = 1, num_historical: int = 1
                 ) -> Dict[str, Tensor]:
    r"""Score the events selected by ``mask`` in time order, continuing from the model's
    current state and updating it after each batch. Returns ``{"pos": (E,), "neg": (E, Q),
    "index": (E,)}`` with ``Q = num_random + num_historical`` (random columns first) and the
    events' positions in the stream."""
    model.eval()
    pos, neg, index = [], [], []
    q = num_random + num_historical
    for idx in stream.batches(mask, batch_size):
        src, dst, t, msg = stream.src[idx], stream.dst[idx], stream.t[idx], stream.msg[idx]
        cand = sampler.sample(src, dst, num_random, num_historical)
        b = idx.numel()
        all_dst = torch.cat([dst.view(-1, 1), cand], 1).reshape(-1)
        out = model(src.repeat_interleave(q + 1), all_dst, t.repeat_interleave(q + 1)).view(b, q + 1)
        pos.append(out[:, 0].cpu())
        neg.append(out[:, 1:].cpu())
        index.append(idx.cpu())
        model.update_state(src, dst, t, msg)
    return {"pos": torch.cat(pos), "neg": torch.cat(neg), "index": torch.cat(index)}


def link_metrics(scores: Dict[str, Tensor], num_random: int = 1,
                 select: Optional[Tensor] = None) -> Dict[str, float]:
    r"""``ap``, ``roc_auc`` (each positive against its first random negative, the usual
    TGN/NAT protocol), ``ap_hist``, ``roc_auc_hist`` (against its first historical negative,
    when there is one) and ``mrr`` (each positive ranked among all its negatives) of the rows
    of :func:`score_events` selected by the boolean ``select`` over stream positions."""
    from graphkit.evaluate import get_metric

    pos, neg = scores["pos"], scores["neg"]
    if select is not None:
        keep = select.cpu()[scores["index"]]
        pos, neg = pos[keep], neg[keep]
    if pos.numel() == 0:
        raise ValueError("link_metrics: no events selected")
    ap, auc, mrr = get_metric("ap"), get_metric("roc_auc"), get_metric("mrr")
    ones, zeros = torch.ones_like(pos), torch.zeros_like(pos)
    y = torch.cat([ones, zeros])
    out = {"ap": ap(torch.cat([pos, neg[:, 0]]), y), "roc_auc": auc(torch.cat([pos, neg[:, 0]]), y)}
    if neg.size(1) > num_random:
        h = neg[:, num_random]
        out["ap_hist"] = ap(torch.cat([pos, h]), y)
        out["roc_auc_hist"] = auc(torch.cat([pos, h]), y)
    out["mrr"] = mrr(pos, neg)
    return out


def replay_events(model, stream: EventStream, mask: Tensor, batch_size: int,
                  train_mode: bool = True) -> None:
    """Feed the selected events to ``model.update_state`` in time order without scoring them
    (no gradients), with the model in training mode unless ``train_mode=False``, and leave it
    in that mode.

    Training mode rebuilds the state by the rule :func:`train_epoch` used, which matters for
    models whose state update depends on the mode: PyG's ``TGNMemory`` applies a node's
    messages lazily (at its next event) in training mode and at once in evaluation mode, and
    the two give different memories from the same events and parameters (NAT's update does
    not depend on the mode)."""
    model.train(train_mode)
    with torch.no_grad():
        for idx in stream.batches(mask, batch_size):
            model.update_state(stream.src[idx], stream.dst[idx], stream.t[idx], stream.msg[idx])


def _rng_state(device: torch.device):
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def fit_link_predictor(model, data, split: TemporalSplit, *, epochs: int, lr: float = 1e-4,
                       batch_size: int = 100, seed: int = 0, patience: Optional[int] = 3,
                       num_random: int = 10, num_historical: int = 10, device=None,
                       time_budget: Optional[float] = None, callback=None,
                       evaluate_from: str = "selected_state") -> Dict[str, float]:
    r"""Train ``model`` on ``split.train`` for up to ``epochs`` epochs (Adam, ``lr``), scoring
    the validation events after each epoch (continuing the state, one random negative each)
    and keeping the parameters of the epoch with the best validation AP (early stopping after
    ``patience`` epochs without improvement); Adam is :func:`make_adam`.

    The selected epoch is then evaluated with ``num_random`` random and ``num_historical``
    historical negatives per positive (historical ones drawn from the events streamed before the
    phase): validation events, then test events, each batch scored before it updates the state.
    With ``evaluate_from="selected_state"`` (default; TGN's reference code checkpoints its
    memory with the parameters) scoring starts from the model as the selected epoch left it,
    parameters *and* state (memory, N-caches, pending messages) after its pass over the training
    events, kept by a deep copy at the end of every epoch together with the random-number state.
    With ``"replay"`` the selected parameters start from an empty state and the training events
    are replayed (``update_state`` only, in training mode: :func:`replay_events`). The two
    differ for models whose state depends on the parameters that built it: a GRU memory rebuilt
    with frozen final parameters is not the memory training left, and on long per-node histories
    (Enron) TGN scores far lower after a replay than from its own state. Neither sees a
    validation or test event before scoring it.

    Returns ``val_*``, ``test_*`` (all test events) and, for an inductive split, ``test_ind_*``
    (test events touching a held-out node) metrics of :func:`link_metrics`, plus ``epoch`` (the
    selected one), ``epochs_run``, ``stopped`` and ``train_loss``. All negatives come from
    generators seeded with ``seed``; evaluation negatives are the same at every epoch.
    """
    import copy

    from graphkit.engine.loops import PatienceStop, fit

    stream = EventStream(data, device=device if device is not None else data.src.device)
    n = stream.num_nodes
    if getattr(model, "num_nodes", n) < n:
        raise ValueError(f"fit_link_predictor: the model has {model.num_nodes} nodes, the events "
                         f"use {n}")
    if evaluate_from not in ("selected_state", "replay"):
        raise ValueError(f"fit_link_predictor: evaluate_from must be 'selected_state' or 'replay', "
                         f"got {evaluate_from!r}")
    for name in ("train", "val", "test"):
        if not bool(getattr(split, name).any()):
            raise ValueError(f"fit_link_predictor: the {name} split is empty")
    train_sampler = NegativeSampler(n, torch.Generator().manual_seed(seed))
    optimizer = make_adam(model.parameters(), lr)
    inductive = bool(split.test_inductive.any())
    s_cpu, d_cpu = data.src.long().cpu(), data.dst.long().cpu()

    def phase_sampler(history_mask: Tensor, offset: int) -> NegativeSampler:
        s = NegativeSampler(n, torch.Generator().manual_seed(seed * 7919 + offset))
        s.set_history(s_cpu[history_mask], d_cpu[history_mask])
        return s

    best = {"ap": -1.0, "params": None, "model": None}
    keep_state = evaluate_from == "selected_state"
    epoch_end = {"model": None}

    def step() -> float:
        loss = train_epoch(model, stream, split.train, optimizer, batch_size, train_sampler)
        if keep_state:  # parameters, state and random stream as the epoch leaves them
            epoch_end["model"] = copy.deepcopy(model)
            epoch_end["rng"] = _rng_state(stream.src.device)
        return loss

    def evaluate() -> Dict[str, float]:
        val = score_events(model, stream, split.val, batch_size, phase_sampler(split.train, 1), 1, 0)
        out = {f"val_{k}": v for k, v in link_metrics(val, 1).items()}
        if out["val_ap"] > best["ap"]:
            best["ap"] = out["val_ap"]
            if keep_state:
                best["model"], best["rng"] = epoch_end["model"], epoch_end["rng"]
            else:
                best["params"] = copy.deepcopy({k: v for k, v in model.state_dict().items()})
        return out

    stop = PatienceStop(patience, key="val_ap") if patience is not None else None
    sel = fit(step, evaluate, epochs, select="val_ap", stop=stop, time_budget=time_budget,
              callback=callback)
    if keep_state:
        # scoring continues on the selected copy; the caller's module gets its parameters
        model.load_state_dict(best["model"].state_dict())
        model = best["model"]
        # stochastic state updates (NAT's cache replacement) draw what the epoch's own
        # validation pass drew
        _set_rng_state(best["rng"], stream.src.device)
    else:
        model.load_state_dict(best["params"])
        model.reset_state()
        replay_events(model, stream, split.train, batch_size)
    val = score_events(model, stream, split.val, batch_size, phase_sampler(split.train, 1),
                       num_random, num_historical)
    test = score_events(model, stream, split.test, batch_size,
                        phase_sampler(split.train | split.val, 2), num_random, num_historical)
    out = {k: sel[k] for k in ("epoch", "epochs_run", "stopped", "train_loss")}
    out["evaluated_from"] = evaluate_from
    out["val_ap_selection"] = sel["val_ap"]
    out.update({f"val_{k}": v for k, v in link_metrics(val, num_random).items()})
    out.update({f"test_{k}": v for k, v in link_metrics(test, num_random).items()})
    if inductive:
        out.update({f"test_ind_{k}": v for k, v in
                    link_metrics(test, num_random, split.test_inductive).items()})
    return out
