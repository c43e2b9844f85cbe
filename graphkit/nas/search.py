r"""Architecture search drivers: :class:`AutoGNN` (Zhou, Song, Huang and Hu, 2019,
`"Auto-GNN: Neural Architecture Search of Graph Neural Networks"
<https://arxiv.org/abs/1909.03184>`_) and :class:`RandomSearch`, its honest baseline, with one
budget interface.

Both train every child with :func:`graphkit.engine.loops.train_node_classifier` on a copy of
the graph whose test mask is replaced by the validation mask, so the test labels are never
read during the search; a child's score is its best validation accuracy. After every trial the
search state (history, best architecture, controller, ancestor weights, random states) is
written atomically to ``checkpoint``; running the same search again continues from there.

.. code-block:: python

    from graphkit.nas import AutoGNN, default_search_space, build_model

    result = AutoGNN(default_search_space(), dataset, budget=100, seed=0).search()
    model = build_model(result["best"])          # a plain JSON description
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from graphkit.nas.model import AutoGNNModel
from graphkit.nas.space import SearchSpace, arch_key

__all__ = ["AutoGNN", "RandomSearch", "search_data"]

STATE_VERSION = 1


def search_data(dataset: Any):
    """The graph a search trains on: ``dataset`` (a ``Data`` or a dataset whose ``[0]`` is
    one) with its ``test_mask`` replaced by ``val_mask``. Raises a :class:`ValueError` when
    the data has no usable validation mask (selection needs one)."""
    from torch_geometric.data import Data

    data = dataset if isinstance(dataset, Data) else dataset[0]
    for name in ("x", "edge_index", "y", "train_mask"):
        if getattr(data, name, None) is None:
            raise ValueError(f"architecture search: the dataset has no {name!r}")
    val = getattr(data, "val_mask", None)
    if val is None:
        raise ValueError("architecture search: the dataset has no validation mask 'val_mask'; "
                         "architectures are selected on validation only, never on test")
    if val.dtype != torch.bool or val.numel() != data.num_nodes or not bool(val.any()):
        raise ValueError(f"architecture search: 'val_mask' must be a non-empty boolean mask "
                         f"over the {data.num_nodes} nodes")
    y = data.y.view(-1)
    return Data(x=data.x.float(), edge_index=data.edge_index, y=y, train_mask=data.train_mask,
                val_mask=val, test_mask=val)


class _Search:
    """Shared driver: budget, child training, history, checkpoints, progress."""

    method = "search"

    def __init__(self, search_space: SearchSpace, dataset: Any, budget: int = 100, *,
                 seed: int = 0, time_budget: Optional[float] = None, epochs: int = 200,
                 patience: int = 20, lr: float = 0.005, weight_decay: float = 5e-4,
                 dropout: float = 0.6, child_time: Optional[float] = None,
                 checkpoint: Optional[str] = None, resume: bool = True,
                 progress: Optional[bool] = None, device: Any = "cpu",
                 on_trial: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        if not isinstance(search_space, SearchSpace):
            raise ValueError(f"{self.method}: search_space must be a SearchSpace (got "
                             f"{type(search_space).__name__})")
        search_space.check()
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"{self.method}: budget must be a positive number of trials "
                             f"(got {budget!r})")
        if time_budget is not None and not time_budget > 0:
            raise ValueError(f"{self.method}: time_budget must be a positive number of seconds "
                             f"(got {time_budget!r})")
        if child_time is not None and not child_time > 0:
            raise ValueError(f"{self.method}: child_time must be a positive number of seconds "
                             f"(got {child_time!r})")
        for name, val in (("epochs", epochs), ("patience", patience)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{self.method}: {name} must be an int >= 1 (got {val!r})")
        self.space, self.budget, self.seed = search_space, budget, seed
        self.time_budget, self.epochs, self.patience = time_budget, epochs, patience
        self.lr, self.weight_decay, self.dropout = lr, weight_decay, dropout
        self.child_time = child_time
        self.device = torch.device(device)
        self.data = search_data(dataset).to(self.device)
        self.num_classes = int(self.data.y.max()) + 1
        self.checkpoint, self.resume = checkpoint, resume
        self.progress, self.on_trial = progress, on_trial
        self.history: List[Dict[str, Any]] = []
        self.best: Optional[Dict[str, Any]] = None
        self.best_val = float("-inf")
        self.elapsed = 0.0
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.scores: Dict[str, float] = {}

    # -- settings and checkpoints --------------------------------------------------------------
    def settings(self) -> Dict[str, Any]:
        space = {c: [str(n) for n in self.space.choices(c)] for c in self.space.component_names}
        return dict(method=self.method, seed=self.seed, epochs=self.epochs,
                    patience=self.patience, lr=self.lr, weight_decay=self.weight_decay,
                    dropout=self.dropout, num_layers=self.space.num_layers, space=space,
                    data=self._fingerprint(),
                    **({} if self.child_time is None else {"child_time": self.child_time}))

    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        for t in (self.data.edge_index, self.data.y, self.data.train_mask, self.data.val_mask):
            h.update(t.cpu().numpy().tobytes())
        h.update(str(tuple(self.data.x.shape)).encode())
        return h.hexdigest()[:16]

    def _state(self) -> Dict[str, Any]:
        return dict(version=STATE_VERSION, settings=self.settings(), history=self.history,
                    best=self.best, best_val=self.best_val, elapsed=self.elapsed,
                    rng=self.rng.getstate(), generator=self.generator.get_state(),
                    scores=self.scores)

    def _load(self, state: Dict[str, Any]) -> None:
        self.history, self.best, self.best_val = state["history"], state["best"], \
            state["best_val"]
        self.elapsed, self.scores = state["elapsed"], state["scores"]
        self.rng.setstate(state["rng"])
        self.generator.set_state(state["generator"])

    def _save(self) -> None:
        if not self.checkpoint:
            return
        from graphkit.utils.io import atomic_write

        state = self._state()
        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def _try_resume(self) -> None:
        if not (self.checkpoint and self.resume and os.path.exists(self.checkpoint)):
            return
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        if state.get("version") != STATE_VERSION or state.get("settings") != self.settings():
            raise ValueError(f"{self.method}: the checkpoint {self.checkpoint} was written by a "
                             f"search with other settings or data; remove it or pass "
                             f"resume=False to start afresh")
        self._load(state)

    # -- children ------------------------------------------------------------------------------
    def build(self, arch: Mapping[str, Any]) -> AutoGNNModel:
        return AutoGNNModel(self.data.num_features, self.num_classes, arch, self.space,
                            dropout=self.dropout).to(self.device)

    def train_child(self, model: AutoGNNModel, epochs: int) -> Dict[str, Any]:
        """Train a child full-batch with Adam for at most ``epochs`` epochs (and ``child_time``
        seconds), stopping after ``patience`` epochs without a better validation accuracy;
        returns its best validation accuracy, that epoch, the epochs run, why it stopped and
        the training time ``train_s``."""
        from graphkit.engine.loops import PatienceStop, train_node_classifier

        t0 = time.perf_counter()
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        out = train_node_classifier(model, self.data, opt, epochs, select="val_acc",
                                    stop=PatienceStop(min(self.patience, epochs),
                                                      key="val_acc"),
                                    time_budget=self.child_time)
        # the search data's test mask is the validation mask: drop the duplicate
        return {"val_acc": float(out["val_acc"]), "epoch": int(out["epoch"]),
                "epochs_run": int(out["epochs_run"]), "stopped": str(out["stopped"]),
                "train_s": time.perf_counter() - t0}

    def _train_arch(self, arch: Mapping[str, Any], model: AutoGNNModel, epochs: int
                    ) -> Dict[str, Any]:
        try:
            return self.train_child(model, epochs)
        except Exception as e:
            raise ValueError(f"{self.method}: the child {arch_key(arch)} built but failed to "
                             f"train: {type(e).__name__}: {e}") from e

    def description(self, arch: Mapping[str, Any]) -> Dict[str, Any]:
        model = self.build(arch)
        return model.description()

    # -- main loop -----------------------------------------------------------------------------
    def _trial(self, trial: int) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def search(self) -> Dict[str, Any]:
        """Run trials until ``budget`` trials (or ``time_budget`` seconds, counted over resumed
        runs too) are spent; returns ``{"best": description, "best_val_acc", "history",
        "trials", "elapsed_s", "settings"}``."""
        from graphkit.engine.log import progress

        self._try_resume()
        bar = progress(total=self.budget, desc=self.method, disable=self.progress is False
                       if self.progress is not None else None, initial=len(self.history))
        try:
            while len(self.history) < self.budget and not self._out_of_time():
                t0 = time.perf_counter()
                trial = len(self.history)
                rec = self._trial(trial)
                dt = time.perf_counter() - t0
                self.elapsed += dt
                rec.update(trial=trial, time_s=dt, elapsed_s=self.elapsed,
                           best_val_acc=self.best_val)
                self.history.append(rec)
                t1 = time.perf_counter()
                self._save()
                self.elapsed += time.perf_counter() - t1  # the checkpoint is search time too
                if bar is not None and hasattr(bar, "update"):
                    bar.update(1)
                    bar.set_postfix(best_val=f"{self.best_val:.2f}",
                                    left=f"{self._time_left():.0f}s")
                if self.on_trial is not None:
                    self.on_trial(rec)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        if self.best is None:
            raise ValueError(f"{self.method}: no trial finished within the time budget")
        return {"method": self.method, "best": self.description(self.best),
                "best_val_acc": self.best_val, "history": self.history,
                "trials": len(self.history), "elapsed_s": self.elapsed,
                "settings": self.settings()}

    def _out_of_time(self) -> bool:
        return self.time_budget is not None and self.elapsed >= self.time_budget

    def _time_left(self) -> float:
        n = len(self.history)
        by_trials = (self.budget - n) * self.elapsed / max(n, 1)
        if self.time_budget is None:
            return by_trials
        return max(0.0, min(by_trials, self.time_budget - self.elapsed))

    def _seed_child(self, trial: int) -> None:
        from graphkit.engine.seed import seed_everything

        seed_everything((self.seed * 1_000_003 + trial) % (2**32 - 1))

    def _record_score(self, arch, val: float) -> bool:
        self.scores[arch_key(arch)] = val
        if val > self.best_val:
            self.best, self.best_val = arch, val
            return True
        return False


class RandomSearch(_Search):
    r"""Random search over a :class:`~graphkit.nas.space.SearchSpace`: every trial trains a
    uniformly sampled architecture from scratch; the best validation accuracy wins. Same
    arguments and result as :class:`AutoGNN` (without the controller and sharing options).

    Args:
        search_space (SearchSpace): the choices.
        dataset: a PyG ``Data`` (or dataset) with ``train_mask`` and ``val_mask``.
        budget (int): number of trials. (default: :obj:`100`)
        seed (int): seed of the sampler and of every child's initialisation.
        time_budget (float, optional): seconds of search (trials and checkpoints); stops
            after the trial that crosses it.
        epochs (int): maximum epochs per child; :obj:`patience` epochs without a better
            validation accuracy stop it. (defaults: :obj:`200`, :obj:`20`)
        child_time (float, optional): seconds of training per child, after which it stops at
            the end of the current epoch and is scored by its best validation accuracy so far
            (keeps one costly child, e.g. a learned aggregation over wide layers, from eating
            the search budget). (default: :obj:`None`, no limit)
        lr, weight_decay, dropout: the children's training. (defaults: 0.005, 5e-4, 0.6)
        checkpoint (str, optional): state file written after every trial; resumed when it
            exists and ``resume`` is true.
        progress (bool, optional): show a progress bar (default: unless in CI / no terminal).
    """

    method = "random-search"

    def _trial(self, trial: int) -> Dict[str, Any]:
        arch = self.space.sample(self.rng)
        self._seed_child(trial)
        t0 = time.perf_counter()
        model = self.build(arch)
        build_s = time.perf_counter() - t0
        out = self._train_arch(arch, model, self.epochs)
        improved = self._record_score(arch, out["val_acc"])
        return dict(arch=arch["layers"], improved=improved, inherited=None, build_s=build_s,
                    **out)


class AutoGNN(_Search):
    r"""Auto-GNN architecture search from `"Auto-GNN: Neural Architecture Search of Graph
    Neural Networks" <https://arxiv.org/abs/1909.03184>`_ (Zhou, Song, Huang and Hu, 2019).
    Not PyG's ``AGNNConv`` (a layer from another paper).

    The *conservative explorer* keeps the best architecture found so far and asks the RNN
    policies of :class:`~graphkit.nas.controller.ConservativeController` for a modification
    of one component class; the child is trained, its validation accuracy is the REINFORCE
    reward (against a moving baseline), and it replaces the best one only when it is better.
    With *constrained parameter sharing* (``share=True``) a child inherits each layer's weights
    from the newest ancestor (chain of best architectures) whose layer is homogeneous with
    its own (see :mod:`graphkit.nas.sharing`); a child that inherited any layer is fine-tuned
    for ``share_epochs`` epochs instead of trained for ``epochs``.

    Args:
        search_space, dataset, budget, seed, time_budget, epochs, patience, lr, weight_decay,
            dropout, child_time, checkpoint, resume, progress: as :class:`RandomSearch`.
        share (bool): constrained parameter sharing. (default: :obj:`True`)
        share_epochs (int): fine-tuning epochs of a child that inherited weights.
            (default: :obj:`20`)
        max_ancestors (int): ancestors whose weights are kept. (default: :obj:`10`)
        resample (int): proposals tried per trial to find an architecture not evaluated yet.
            (default: :obj:`10`)
        controller_kwargs (dict, optional): arguments of the controller.
    """

    method = "autognn"

    def __init__(self, search_space: SearchSpace, dataset: Any, budget: int = 100, *,
                 share: bool = True, share_epochs: int = 20, max_ancestors: int = 10,
                 resample: int = 10, controller_kwargs: Optional[Dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        super().__init__(search_space, dataset, budget, **kwargs)
        if isinstance(share_epochs, bool) or not isinstance(share_epochs, int) \
                or share_epochs < 1:
            raise ValueError(f"autognn: share_epochs must be an int >= 1 (got {share_epochs!r})")
        from graphkit.nas.controller import ConservativeController
        from graphkit.nas.sharing import AncestorWeights

        self.share, self.share_epochs, self.resample = share, share_epochs, resample
        self.controller_kwargs = dict(controller_kwargs or {})
        torch.manual_seed(self.seed)
        self.controller = ConservativeController(search_space, **self.controller_kwargs)
        self.ancestors = AncestorWeights(max_ancestors)

    def settings(self) -> Dict[str, Any]:
        return dict(super().settings(), share=self.share, share_epochs=self.share_epochs,
                    max_ancestors=self.ancestors.max_ancestors, resample=self.resample,
                    controller=self.controller_kwargs)

    def _state(self) -> Dict[str, Any]:
        return dict(super()._state(), controller=self.controller.full_state(),
                    ancestors=self.ancestors.state_dict())

    def _load(self, state: Dict[str, Any]) -> None:
        super()._load(state)
        self.controller.load_full_state(state["controller"])
        self.ancestors.load_state_dict(state["ancestors"])

    def _trial(self, trial: int) -> Dict[str, Any]:
        from graphkit.nas.sharing import inherit

        if self.best is None:  # the first architecture: a random one, trained from scratch
            parent, decision = None, None
            arch = self.space.sample(self.rng)
        else:
            parent = self.best
            for _ in range(self.resample):
                arch, decision = self.controller.propose(self.space, parent, self.generator)
                if arch_key(arch) not in self.scores:
                    break
        key = arch_key(arch)
        self._seed_child(trial)
        build_s = share_s = 0.0
        if key in self.scores:  # every proposal was evaluated before: reuse its score
            out, inherited, model = {"val_acc": self.scores[key], "epoch": 0,
                                     "epochs_run": 0, "stopped": "cached",
                                     "train_s": 0.0}, None, None
        else:
            t0 = time.perf_counter()
            model = self.build(arch)
            t1 = time.perf_counter()
            inherited = inherit(model, self.ancestors) if self.share else None
            build_s, share_s = t1 - t0, time.perf_counter() - t1
            brief = inherited is not None and any(s is not None for s in inherited)
            out = self._train_arch(arch, model, self.share_epochs if brief else self.epochs)
        improved = self._record_score(arch, out["val_acc"])
        if improved and model is not None:
            t0 = time.perf_counter()
            self.ancestors.push(arch, model)
            share_s += time.perf_counter() - t0
        advantage = None
        if decision is not None:
            advantage = self.controller.update(self.space, parent, decision,
                                               out["val_acc"] / 100.0)
        return dict(arch=arch["layers"], improved=improved, inherited=inherited,
                    cached=model is None, advantage=advantage, build_s=build_s,
                    share_s=share_s,
                    changed=None if decision is None
                    else self.controller.components[decision["class"]], **out)


def save_result(result: Mapping[str, Any], path: str) -> None:
    """Write a search result as JSON (atomically)."""
    from graphkit.utils.io import atomic_write_text

    atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
