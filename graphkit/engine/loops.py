r"""Training loops, one per kind of task, and a multi-run driver.

* :func:`train_node_classifier` — full-batch node classification on one PyG ``Data`` with
  ``train_mask`` / ``val_mask`` / ``test_mask``;
* :func:`train_graph_classifier` — graph (or set) classification over loaders;
* :func:`fit` — the epoch loop both share: train step, evaluation, selection of the reported
  epoch, a pluggable early-stopping rule and an optional time budget;
* :func:`run_many` — runs ``r = 0 .. runs - 1`` with seed ``seed + r``, each finished run
  appended to a JSON-lines log and skipped when the same settings are run again (resume).

Every loop returns the metrics of the *selected* epoch (by default test at the best validation
epoch) plus ``"epochs_run"`` and ``"stopped"``. Accuracies come from
:func:`graphkit.evaluate.accuracy` and are reported in percent.

.. code-block:: python

    from graphkit.engine import WindowMeanStop, train_node_classifier

    best = train_node_classifier(model, data, optimizer, epochs=1000, select="val_loss",
                                 stop=WindowMeanStop(patience=100))
    print(best["test_acc"], best["epoch"])

A step that is not one forward pass (several augmented samples and a consistency loss, say) is a
``step(model, data, optimizer) -> float`` passed as ``step=``; an evaluation that needs extra
model inputs is an ``evaluate(model, data) -> dict`` built on :func:`node_metrics`.
"""
from __future__ import annotations

import math
import pathlib
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Metrics = Dict[str, Any]
History = List[Metrics]
Select = Union[None, str, Tuple[str, str]]

__all__ = ["fit", "train_node_classifier", "train_graph_classifier", "node_step",
           "graph_train_epoch", "graph_evaluate",
           "node_metrics", "check_node_data", "check_replicas", "WindowMeanStop", "PatienceStop",
           "run_many"]


# ----------------------------------------------------------------------------------------------
# Selection and early stopping
# ----------------------------------------------------------------------------------------------
def _selection(select: Select) -> Tuple[Optional[str], str]:
    """``"val_loss"`` → ``("val_loss", "min")``; other names → ``"max"``; ``None`` / ``"last"``
    select the last evaluated epoch."""
    if select is None or select == "last":
        return None, "max"
    if isinstance(select, str):
        return select, "min" if select.endswith("loss") else "max"
    if (isinstance(select, tuple) and len(select) == 2 and isinstance(select[0], str)
            and select[1] in ("min", "max")):
        return select
    raise ValueError(f"select must be a metric name, (name, 'min'|'max'), 'last' or None; "
                     f"got {select!r}")


def _better(a: float, b: float, mode: str) -> bool:
    """Strictly better (ties keep the earlier epoch); NaN never wins over a number."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a < b if mode == "min" else a > b


class WindowMeanStop:
    r"""Stop when the monitored value is worse than the mean of the previous ``patience``
    evaluations, checked only after the first ``start`` fraction of the epochs.

    With ``key="val_loss"`` and ``start=0.5`` this is the rule of the DAGNN reference code:
    in the second half of training, stop as soon as
    :math:`\ell_t > \frac{1}{p}\sum_{i=1}^{p}\ell_{t-i}`.

    Args:
        patience (int): window length :math:`p` (``>= 1``).
        key (str): metric to watch. (default: ``"val_loss"``)
        mode (str): ``"min"`` (worse = larger) or ``"max"``. (default: ``"min"``)
        start (float): fraction of ``epochs`` after which the rule applies: it is checked at
            epochs ``> int(epochs * start)`` (``epochs // 2`` for ``0.5``). (default: ``0.5``)
    """

    def __init__(self, patience: int, key: str = "val_loss", mode: str = "min",
                 start: float = 0.5) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"WindowMeanStop: patience must be an int >= 1, got {patience!r}")
        if mode not in ("min", "max") or not 0.0 <= start <= 1.0:
            raise ValueError(f"WindowMeanStop: mode must be 'min'/'max' and start in [0, 1], "
                             f"got {mode!r}, {start!r}")
        self.patience, self.key, self.mode, self.start = patience, key, mode, start

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(patience={self.patience}, key={self.key!r}, "
                f"mode={self.mode!r}, start={self.start})")

    def __call__(self, history: History, epochs: int) -> bool:
        last = history[-1]
        if last["epoch"] <= int(epochs * self.start) or len(history) < 2:
            return False
        prev = [h[self.key] for h in history[-(self.patience + 1):-1]]
        mean = sum(prev) / len(prev)
        return last[self.key] > mean if self.mode == "min" else last[self.key] < mean


class PatienceStop:
    r"""Stop after ``patience`` epochs without a strict improvement of the monitored value
    (the usual rule: the best epoch :math:`b` so far and the current one :math:`t` satisfy
    :math:`t - b \ge p`).

    Args:
        patience (int): epochs without improvement (``>= 0``; ``0`` stops after the first).
        key (str): metric to watch. (default: ``"val_acc"``)
        mode (str): ``"max"`` or ``"min"``; default ``"min"`` for names ending in ``loss``,
            else ``"max"``.
    """

    def __init__(self, patience: int, key: str = "val_acc", mode: Optional[str] = None) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"PatienceStop: patience must be an int >= 0, got {patience!r}")
        mode = mode or ("min" if key.endswith("loss") else "max")
        if mode not in ("min", "max"):
            raise ValueError(f"PatienceStop: mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.key, self.mode = patience, key, mode

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(patience={self.patience}, key={self.key!r}, "
                f"mode={self.mode!r})")

    def __call__(self, history: History, epochs: int) -> bool:
        best = history[0]
        for h in history[1:]:
            if _better(h[self.key], best[self.key], self.mode):
                best = h
        return history[-1]["epoch"] - best["epoch"] >= self.patience


# ----------------------------------------------------------------------------------------------
# The shared epoch loop
# ----------------------------------------------------------------------------------------------
def fit(step: Callable[[], float], evaluate: Callable[[], Metrics], epochs: int, *,
        select: Select = "val_loss", stop: Optional[Callable[[History, int], bool]] = None,
        time_budget: Optional[float] = None, eval_every: int = 1, scheduler: Any = None,
        callback: Optional[Callable[[Metrics], None]] = None) -> Metrics:
    r"""Run ``epochs`` epochs of ``step()`` (returns the training loss) followed by
    ``evaluate()`` (returns a dict of metrics), and return the metrics of the selected epoch.

    Args:
        step, evaluate: zero-argument callables for one training epoch and one evaluation.
        epochs (int): maximum number of epochs.
        select: metric that picks the reported epoch (``"val_loss"`` lowest, any other name
            highest, or ``(name, "min"|"max")``); ``None`` / ``"last"``: the last evaluated
            epoch. Ties keep the earliest epoch. (default: ``"val_loss"``)
        stop: early-stopping rule ``stop(history, epochs) -> bool`` called after every
            evaluation with the list of evaluated epochs' metrics (e.g. :class:`WindowMeanStop`,
            :class:`PatienceStop`). (default: ``None``)
        time_budget (float, optional): seconds; the loop stops at the end of the first epoch
            that ends after this much time (that epoch is evaluated). (default: ``None``)
        eval_every (int): evaluate every this many epochs, and always at the last one.
        scheduler: object whose ``step()`` is called after every training epoch.
        callback: called with each evaluated epoch's metrics.

    Returns:
        the selected epoch's metrics (``"epoch"``, ``"train_loss"`` and those of ``evaluate``)
        plus ``"epochs_run"`` and ``"stopped"`` (``"epochs"``, ``"early stopping"`` or
        ``"time budget"``).

    Under ``torch.distributed`` (``torchrun``) the ranks agree after every epoch: the time
    budget and the stopping rule end training on every rank when they fire on one, so no rank
    waits for a step the others will never take.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be an int >= 1, got {epochs!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"fit: eval_every must be an int >= 1, got {eval_every!r}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"fit: time_budget must be a positive number of seconds, "
                         f"got {time_budget!r}")
    key, mode = _selection(select)
    from graphkit.engine.distributed import any_rank, is_distributed

    distributed = is_distributed()
    history: History = []
    best: Optional[Metrics] = None
    stopped, epoch, start = "epochs", 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_loss = step()
        if scheduler is not None:
            scheduler.step()
        over_time = time_budget is not None and time.perf_counter() - start >= time_budget
        if distributed:  # all ranks must evaluate and stop at the same epoch
            over_time = any_rank(over_time)
        if epoch % eval_every and epoch != epochs and not over_time:
            continue
        metrics = {"epoch": epoch, "train_loss": float(train_loss), **evaluate()}
        history.append(metrics)
        if key is not None and key not in metrics:
            raise KeyError(f"fit: select={key!r} but the evaluation returned "
                           f"{sorted(metrics)}")
        if best is None or key is None or _better(metrics[key], best[key], mode):
            best = metrics
        if callback is not None:
            callback(metrics)
        wants_stop = stop is not None and stop(history, epochs)
        if distributed:
            wants_stop = any_rank(wants_stop)
        if wants_stop:
            stopped = "early stopping"
        elif over_time:
            stopped = "time budget"
        if stopped != "epochs":
            break
    return {**best, "epochs_run": epoch, "stopped": stopped}


# ----------------------------------------------------------------------------------------------
# Full-batch node classification
# ----------------------------------------------------------------------------------------------
def check_node_data(data: Any, num_classes: Optional[int] = None) -> None:
    """Raise a :class:`ValueError` unless ``data`` has 1-D labels ``y`` for its ``x`` rows and
    non-empty boolean ``train_mask`` / ``val_mask`` / ``test_mask`` of that length."""
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    if x is None or y is None:
        raise ValueError("node classification data needs 'x' and 'y'")
    n = x.size(0)
    if y.dim() != 1 or y.numel() != n:
        raise ValueError(f"labels have shape {tuple(y.shape)} but there are {n} nodes")
    if num_classes is not None and y.numel() and (int(y.min()) < 0
                                                  or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) (found {int(y.min())}.."
                         f"{int(y.max())})")
    for name in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, name, None)
        if m is None or m.dtype != torch.bool:
            raise ValueError(f"node classification data needs a boolean '{name}'")
        if m.numel() != n:
            raise ValueError(f"{name} has {m.numel()} entries for {n} nodes")
        if not bool(m.any()):
            raise ValueError(f"{name} is empty")


def node_step(model: torch.nn.Module, data: Any, optimizer: torch.optim.Optimizer,
              loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> float:
    """One full-batch training step: ``loss_fn(model(x, edge_index)[train], y[train])``."""
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)
    loss = loss_fn(out[data.train_mask], data.y[data.train_mask])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def node_metrics(out: Tensor, data: Any,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> Metrics:
    """``val_loss`` and ``train_acc`` / ``val_acc`` / ``test_acc`` (%) of logits ``out``."""
    from graphkit.evaluate import accuracy

    y = data.y
    metrics = {"val_loss": float(loss_fn(out[data.val_mask], y[data.val_mask]))}
    pred = out.argmax(dim=-1)
    for split in ("train", "val", "test"):
        metrics[f"{split}_acc"] = 100.0 * accuracy(pred, y, getattr(data, f"{split}_mask"))
    return metrics


@torch.no_grad()
def _node_evaluate(model: torch.nn.Module, data: Any, loss_fn) -> Metrics:
    model.eval()
    return node_metrics(model(data.x, data.edge_index), data, loss_fn)


def train_node_classifier(model: torch.nn.Module, data: Any, optimizer: torch.optim.Optimizer,
                          epochs: int, *,
                          loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                          step: Optional[Callable[..., float]] = None,
                          evaluate: Optional[Callable[..., Metrics]] = None,
                          select: Select = "val_loss", **kwargs: Any) -> Metrics:
    r"""Train one run of full-batch node classification and return the selected epoch's
    metrics (``epoch``, ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``, ``test_acc``
    in %, ``epochs_run``, ``stopped``).

    Args:
        model: called as ``model(data.x, data.edge_index)`` and returning logits.
        data: a PyG ``Data`` with ``x``, ``edge_index``, ``y`` and boolean ``train_mask``,
            ``val_mask``, ``test_mask``.
        optimizer: the optimiser of ``model``'s parameters.
        epochs (int): maximum number of epochs.
        loss_fn: ``loss_fn(logits, labels)``. (default: cross-entropy)
        step: ``step(model, data, optimizer) -> float`` replacing :func:`node_step` (e.g.
            several augmented forward passes plus a consistency loss).
        evaluate: ``evaluate(model, data) -> dict`` replacing the default (one forward pass in
            eval mode, :func:`node_metrics`).
        select: see :func:`fit`; ``"val_loss"`` (lowest), ``"val_acc"`` or ``"test_acc"``.
        **kwargs: ``stop``, ``time_budget``, ``eval_every``, ``scheduler``, ``callback`` of
            :func:`fit`.

    Under ``torchrun`` the training step gets ``model`` wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (a custom ``step`` must call it, not
    one of its methods, for the gradients to be averaged; a run whose replicas differ after
    the first epoch raises :class:`RuntimeError`). Full-batch training is replicated, not
    sharded: every rank runs the whole graph and the result equals a single-process run.
    """
    check_node_data(data)
    net = _distributed_model(model)
    if step is None:
        train = lambda: node_step(net, data, optimizer, loss_fn)  # noqa: E731
    else:
        train = lambda: step(net, data, optimizer)  # noqa: E731
    train = _check_replicas_after_first(train, model)
    if evaluate is None:
        evaluation = lambda: _node_evaluate(model, data, loss_fn)  # noqa: E731
    else:
        evaluation = lambda: evaluate(model, data)  # noqa: E731
    return fit(train, evaluation, epochs, select=select, **kwargs)


# ----------------------------------------------------------------------------------------------
# Graph classification over loaders
# ----------------------------------------------------------------------------------------------
def _default_forward(model: torch.nn.Module, batch: Any) -> Tuple[Tensor, Tensor]:
    return model(batch.x, batch.edge_index, batch.batch), batch.y


def _argmax_accuracy(out: Tensor, y: Tensor) -> float:
    from graphkit.evaluate import accuracy

    return accuracy(out.argmax(dim=-1), y)


def _to(batch: Any, device: Optional[torch.device]) -> Any:
    if device is None:
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    return batch.to(device) if hasattr(batch, "to") else batch


def graph_train_epoch(model, loader: Iterable, optimizer, forward=_default_forward,
                      loss_fn=F.cross_entropy, penalty: Optional[Callable[[], Any]] = None,
                      device: Optional[torch.device] = None) -> float:
    """One pass over ``loader``; returns the mean training loss per example."""
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        batch = _to(batch, device)
        optimizer.zero_grad()
        out, y = forward(model, batch)
        loss = loss_fn(out, y)
        if penalty is not None:
            loss = loss + penalty()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * y.size(0)
        count += y.size(0)
    return total / max(count, 1)


@torch.no_grad()
def graph_evaluate(model, loader: Iterable, forward=_default_forward, loss_fn=F.cross_entropy,
                   metric=_argmax_accuracy, device: Optional[torch.device] = None
                   ) -> Tuple[float, float]:
    """``(loss, metric in %)`` over one pass of ``loader`` in eval mode; the loss is the mean
    of ``loss_fn`` per example, the metric is computed on all outputs at once."""
    model.eval()
    outs, ys, total = [], [], 0.0
    for batch in loader:
        out, y = forward(model, _to(batch, device))
        total += float(loss_fn(out, y)) * y.size(0)
        outs.append(out)
        ys.append(y)
    if not ys:
        raise ValueError("graph_evaluate: the loader yielded no batches")
    out, y = torch.cat(outs), torch.cat(ys)
    return total / y.size(0), 100.0 * metric(out, y)


def train_graph_classifier(model: torch.nn.Module, loaders: Sequence[Optional[Iterable]],
                           optimizer: torch.optim.Optimizer, epochs: int, *,
                           forward: Callable[[torch.nn.Module, Any], Tuple[Tensor, Tensor]]
                           = _default_forward,
                           loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                           penalty: Optional[Callable[[], Any]] = None,
                           metric: Callable[[Tensor, Tensor], float] = _argmax_accuracy,
                           device: Optional[torch.device] = None,
                           select: Select = "val_acc", **kwargs: Any) -> Metrics:
    r"""Train one run of graph classification over ``loaders = (train, val[, test])`` and
    return the selected epoch's metrics (``epoch``, ``train_loss``, ``val_loss``, ``val_acc``,
    ``test_loss``, ``test_acc`` (%; test only with a test loader), ``epochs_run``, ``stopped``).

    Args:
        model: the model; ``forward(model, batch) -> (logits, targets)`` calls it.
            (default: ``model(batch.x, batch.edge_index, batch.batch), batch.y``)
        loaders: re-iterable training, validation and (optional) test batches.
        optimizer: the optimiser of ``model``'s parameters.
        epochs (int): maximum number of epochs.
        loss_fn: ``loss_fn(logits, targets)``, mean over the batch. (default: cross-entropy)
        penalty: zero-argument callable whose value is added to every training batch's loss
            (e.g. a regulariser a layer stores in its forward pass). (default: ``None``)
        metric: ``metric(all_logits, all_targets) -> float`` in :math:`[0, 1]`, reported
            ×100 as ``*_acc``. (default: :func:`graphkit.evaluate.accuracy` of the arg-max)
        device: batches are moved there when given. (default: ``None``)
        select: see :func:`fit`. (default: ``"val_acc"``)
        **kwargs: ``stop``, ``time_budget``, ``eval_every``, ``scheduler``, ``callback`` of
            :func:`fit`.

    Under ``torchrun`` training calls ``forward`` with ``model`` wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (``forward`` must call it, not one of
    its methods). The training loader should yield this rank's share of every global batch
    (e.g. :class:`graphkit.loader.IndexLoader`, which shards by rank); an unsharded loader
    gives every rank the same batches, i.e. the single-process result at no speed-up.
    Evaluation runs on every rank with the unwrapped model.
    """
    if len(loaders) not in (2, 3) or loaders[0] is None or loaders[1] is None:
        raise ValueError("train_graph_classifier: loaders must be (train, val) or "
                         "(train, val, test) with train and val given")
    train_loader, val_loader = loaders[0], loaders[1]
    test_loader = loaders[2] if len(loaders) == 3 else None

    net = _distributed_model(model)

    def step() -> float:
        return graph_train_epoch(net, train_loader, optimizer, forward, loss_fn, penalty,
                                 device)

    step = _check_replicas_after_first(step, model)

    def evaluate() -> Metrics:
        metrics = {}
        for split, loader in (("val", val_loader), ("test", test_loader)):
            if loader is not None:
                loss, acc = graph_evaluate(model, loader, forward, loss_fn, metric, device)
                metrics[f"{split}_loss"], metrics[f"{split}_acc"] = loss, acc
        return metrics

    return fit(step, evaluate, epochs, select=select, **kwargs)


# ----------------------------------------------------------------------------------------------
# torch.distributed
# ----------------------------------------------------------------------------------------------
def _distributed_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in DDP when the script runs under ``torchrun`` (the process group is created
    on first use), else ``model``."""
    from graphkit.engine.distributed import ensure_distributed, wrap_ddp

    ensure_distributed()
    return wrap_ddp(model)


@torch.no_grad()
def check_replicas(model: torch.nn.Module) -> None:
    """Raise :class:`RuntimeError` unless ``model``'s parameters are equal on every rank
    (compares a checksum; a no-op without a process group)."""
    from graphkit.engine.distributed import is_distributed

    if not is_distributed():
        return
    import torch.distributed as dist

    params = [p for p in model.parameters()]
    if not params:
        return
    dev = (torch.device("cuda", torch.cuda.current_device())
           if dist.get_backend() == "nccl" else torch.device("cpu"))
    total = torch.stack([p.detach().double().sum().to(dev) for p in params]).sum()
    lo, hi = total.clone(), total.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not bool(torch.isclose(lo, hi, rtol=1e-9, atol=1e-12)):
        raise RuntimeError("the model's replicas differ between ranks after training: the "
                           "training step must call the DDP-wrapped model it is given (not the "
                           "original module or one of its methods), so the gradients are averaged")


def _check_replicas_after_first(step: Callable[[], float], model: torch.nn.Module
                                ) -> Callable[[], float]:
    from graphkit.engine.distributed import is_distributed

    if not is_distributed():
        return step
    calls = [0]

    def checked() -> float:
        loss = step()
        calls[0] += 1
        if calls[0] == 1:
            check_replicas(model)
        return loss

    return checked


# ----------------------------------------------------------------------------------------------
# Several runs
# ----------------------------------------------------------------------------------------------
def run_many(runs: int, train_run: Callable[[int, int], Metrics], *, seed: int = 0,
             settings: Optional[Dict[str, Any]] = None, log: Optional[str] = None,
             resume: bool = True, on_run: Optional[Callable[[Metrics], None]] = None
             ) -> Tuple[List[Metrics], List[int]]:
    r"""Run ``train_run(run, seed + run)`` for ``run = 0 .. runs - 1`` after
    :func:`~graphkit.engine.seed_everything` ``(seed + run)``.

    Each finished run is appended to the JSON-lines ``log`` as
    ``{"run", "seed", "time_s", "settings", **result}``; with ``resume`` the runs already in
    ``log`` with equal ``settings`` are read back instead of trained again.

    Under ``torchrun`` every rank trains every run (together, through DDP), rank 0 alone reads
    and appends to ``log`` and passes what it read to the other ranks.

    Returns:
        ``(records, resumed)``: one record per run in run order, and the run ids read back.
    """
    from graphkit.engine.distributed import broadcast_object, ensure_distributed, is_main_process
    from graphkit.engine.log import append_run, finished_runs
    from graphkit.engine.seed import seed_everything

    ensure_distributed()

    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"run_many: runs must be an int >= 1, got {runs!r}")
    main = is_main_process()
    if log is not None and main:  # the log's folder is created, as checkpoint folders are
        pathlib.Path(log).parent.mkdir(parents=True, exist_ok=True)
    # Under torchrun rank 0 reads the log (other nodes may not see its disk) and tells the others
    done = broadcast_object(finished_runs(log, settings) if resume and main else {})
    if done and main:
        print(f"resuming: {len(done)} finished runs found in {log}", flush=True)
    records, resumed = [], []
    for run in range(runs):
        if run in done:
            rec = done[run]
            resumed.append(run)
        else:
            seed_everything(seed + run)
            t0 = time.perf_counter()
            result = train_run(run, seed + run)
            rec = dict(run=run, seed=seed + run, time_s=time.perf_counter() - t0,
                       settings=settings, **result)
            if main:
                append_run(log, rec)
        records.append(rec)
        if on_run is not None:
            on_run(rec)
    return records, resumed
