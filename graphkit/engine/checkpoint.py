"""Atomic training checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dictionary of tensors and primitive containers:

* ``"model"``: the model's ``state_dict`` (unwrapped from DDP and ``torch.compile``),
* ``"optimizer"`` / ``"scheduler"``: their ``state_dict`` or ``None``,
* ``"rng"``: the random states of torch (CPU and CUDA), NumPy and Python's ``random``,
* ``"epoch"``: the last completed epoch,
* ``"model_args"``: the JSON string of the model's constructor arguments,
* ``"extra"``: a dictionary of tensors and primitives chosen by the caller.

No pickled Python objects are stored, so :func:`load_checkpoint` uses
``torch.load(weights_only=True)``. Next to ``<name>.pt`` a ``<name>.json`` holds the model
arguments and the epoch for humans and for tools that do not load torch.
"""
from __future__ import annotations

import json
import os
import pathlib
import random
import re
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from graphkit.utils.io import atomic_write, atomic_write_text

PathLike = Union[str, os.PathLike]

FORMAT = "graphkit.checkpoint"
FORMAT_VERSION = 1


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Return the module under ``DistributedDataParallel``/``DataParallel`` and ``torch.compile``
    wrappers, so state-dict keys do not depend on how the model was run."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        elif isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                torch.nn.DataParallel)):
            model = model.module
        else:
            return model


# --------------------------------------------------------------------------- RNG states
def get_rng_state() -> Dict[str, Any]:
    """The random states of torch (CPU, all CUDA devices), NumPy's global generator and
    Python's :mod:`random`, as tensors and primitives."""
    np_state = np.random.get_state()
    if np_state[0] != "MT19937":  # pragma: no cover - numpy's legacy global is always MT19937
        raise RuntimeError(f"unsupported NumPy bit generator {np_state[0]!r}")
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states returned by :func:`get_rng_state`. CUDA states are restored only when
    the same number of CUDA devices is visible."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    npd = state["numpy"]
    np.random.set_state(("MT19937", npd["keys"].numpy().astype(np.uint32), int(npd["pos"]),
                         int(npd["has_gauss"]), float(npd["cached_gaussian"])))
    pyd = state["python"]
    random.setstate((int(pyd["version"]), tuple(int(v) for v in pyd["internal"].tolist()),
                     pyd["gauss_next"]))


# --------------------------------------------------------------------------- validation
_PRIMITIVES = (str, int, float, bool, type(None))


def _check_storable(obj: Any, where: str) -> None:
    """Raise TypeError unless ``obj`` is made only of tensors and primitive containers."""
    if isinstance(obj, _PRIMITIVES) or isinstance(obj, torch.Tensor):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: dictionary keys must be str or int, "
                                f"got {type(k).__name__}")
            _check_storable(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_storable(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: cannot store a {type(obj).__name__} in a checkpoint "
                    f"(only tensors, str/int/float/bool/None, lists, tuples and dicts load "
                    f"with weights_only=True)")


def _model_args_json(model_args: Any) -> str:
    if not isinstance(model_args, dict):
        raise TypeError(f"save_checkpoint: model_args must be a dict, "
                        f"got {type(model_args).__name__}")
    try:
        return json.dumps(model_args, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save_checkpoint: model_args must be JSON-serialisable "
                        f"(str/int/float/bool/None, lists, dicts): {exc}") from None


# --------------------------------------------------------------------------- save / load
def save_checkpoint(path: PathLike, *, model: torch.nn.Module,
                    optimizer: Optional[torch.optim.Optimizer] = None, epoch: int,
                    model_args: Dict[str, Any], extra: Optional[Dict[str, Any]] = None,
                    scheduler: Optional[Any] = None) -> pathlib.Path:
    r"""Atomically write a training checkpoint to ``path`` (and ``<path stem>.json``).

    The file is written to a temporary file in the same folder and renamed, so an interrupted
    write leaves the previous checkpoint intact.

    Args:
        path (str or os.PathLike): The checkpoint file (conventionally ``*.pt``).
        model (torch.nn.Module): The model; DDP and ``torch.compile`` wrappers are removed.
        optimizer (torch.optim.Optimizer, optional): Its state is saved too.
            (default: :obj:`None`)
        epoch (int): The last completed epoch; training resumes at ``epoch + 1``.
        model_args (dict): JSON-serialisable constructor arguments of the model.
        extra (dict, optional): Anything else to keep (best validation so far, a tracker's
            :meth:`~graphkit.engine.RunTracker.state_dict`, a data-loader generator state),
            made of tensors and primitive containers. (default: :obj:`None`)
        scheduler (optional): A learning-rate scheduler whose ``state_dict`` is saved.
            (default: :obj:`None`)

    Returns:
        pathlib.Path: The written checkpoint path.

    .. note::
        Under DDP (``torchrun``), save from the main process only
        (``if is_main_process(): ...``, then :func:`~graphkit.engine.barrier`). The random
        states stored are those of the saving process; a random stream that is not global
        (a :class:`torch.Generator` passed to a sampler) must go into ``extra``, e.g.
        ``extra={"generator": gen.get_state()}``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"save_checkpoint: model must be a torch.nn.Module, "
                        f"got {type(model).__name__}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise TypeError(f"save_checkpoint: epoch must be an int, got {type(epoch).__name__}")
    args_json = _model_args_json(model_args)
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise TypeError(f"save_checkpoint: extra must be a dict, got {type(extra).__name__}")
    _check_storable(extra, "save_checkpoint: extra")
    opt_state = optimizer.state_dict() if optimizer is not None else None
    sched_state = scheduler.state_dict() if scheduler is not None else None
    if opt_state is not None:
        _check_storable(opt_state, "save_checkpoint: optimizer state")
    if sched_state is not None:
        _check_storable(sched_state, "save_checkpoint: scheduler state")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "model_args": args_json,
        "model": unwrap_model(model).state_dict(),
        "optimizer": opt_state,
        "scheduler": sched_state,
        "rng": get_rng_state(),
        "extra": extra,
    }
    path = pathlib.Path(path)
    atomic_write(path, lambda f: torch.save(payload, f))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "epoch": int(epoch),
            "model_args": json.loads(args_json), "checkpoint": path.name}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_checkpoint(path: PathLike, *, model: Optional[torch.nn.Module] = None,
                    optimizer: Optional[torch.optim.Optimizer] = None,
                    map_location: Union[str, torch.device, None] = "cpu",
                    scheduler: Optional[Any] = None, restore_rng: bool = True,
                    strict: bool = True) -> Dict[str, Any]:
    r"""Load a checkpoint written by :func:`save_checkpoint` with
    ``torch.load(weights_only=True)``.

    Loads the state into ``model``/``optimizer``/``scheduler`` when given and restores the random
    states (torch, CUDA, NumPy, Python) unless ``restore_rng=False``.

    Returns:
        dict: ``{"epoch", "model_args" (dict), "extra", "model_state", "optimizer_state",
        "scheduler_state", "rng", "path"}`` (``"rng"``: the stored random states, for
        :func:`set_rng_state`, e.g. on the ranks of a DDP run that did not read the file).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"load_checkpoint: {path} is not a loadable graphkit checkpoint "
                         f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"load_checkpoint: {path} is not a graphkit checkpoint "
                         f"(missing format marker {FORMAT!r})")
    missing = [k for k in ("epoch", "model_args", "model", "rng") if k not in ckpt]
    if missing:
        raise ValueError(f"load_checkpoint: {path} is missing {', '.join(missing)}")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"load_checkpoint: {path} has format version {ckpt['format_version']}, "
                         f"newer than supported ({FORMAT_VERSION})")
    if model is not None:
        unwrap_model(model).load_state_dict(ckpt["model"], strict=strict)
    if optimizer is not None:
        if ckpt.get("optimizer") is None:
            raise ValueError(f"load_checkpoint: {path} holds no optimizer state")
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        if ckpt.get("scheduler") is None:
            raise ValueError(f"load_checkpoint: {path} holds no scheduler state")
        scheduler.load_state_dict(ckpt["scheduler"])
    if restore_rng:
        set_rng_state(ckpt["rng"])
    return {
        "epoch": int(ckpt["epoch"]),
        "model_args": json.loads(ckpt["model_args"]),
        "extra": ckpt.get("extra") or {},
        "model_state": ckpt["model"],
        "optimizer_state": ckpt.get("optimizer"),
        "scheduler_state": ckpt.get("scheduler"),
        "rng": ckpt["rng"],
        "path": path,
    }


class Checkpointer:
    r"""Numbered checkpoints in a folder, with resume.

    Files are ``<dir>/<prefix>-<epoch:06d>.pt`` (+ ``.json``); only the newest ``keep_last``
    are kept (``keep_last=None`` keeps all).

    .. code-block:: python

        ckpt = Checkpointer("runs/dagnn-cora/seed0", keep_last=1)
        start = ckpt.resume(model, optimizer)          # 0 when there is no checkpoint
        for epoch in range(start, epochs):
            train_one_epoch()
            ckpt.save(epoch, model=model, optimizer=optimizer, model_args=args)

    Args:
        directory (str or os.PathLike): Where checkpoints go.
        keep_last (int, optional): How many checkpoints to keep. (default: :obj:`1`)
        prefix (str, optional): File-name prefix. (default: :obj:`"checkpoint"`)
    """

    def __init__(self, directory: PathLike, keep_last: Optional[int] = 1,
                 prefix: str = "checkpoint") -> None:
        if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f"Checkpointer: keep_last must be a positive int or None, "
                             f"got {keep_last!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"Checkpointer: prefix {prefix!r} must be a plain file-name part")
        self.directory = pathlib.Path(directory)
        self.keep_last = keep_last
        self.prefix = prefix
        self._pattern = re.compile(re.escape(prefix) + r"-(\d+)\.pt")
        self.last_state: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({str(self.directory)!r}, "
                f"keep_last={self.keep_last})")

    def path_for(self, epoch: int) -> pathlib.Path:
        return self.directory / f"{self.prefix}-{int(epoch):06d}.pt"

    def checkpoints(self) -> List[pathlib.Path]:
        """Existing checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = self._pattern.fullmatch(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found)]

    def latest(self) -> Optional[pathlib.Path]:
        """The newest checkpoint, or ``None``."""
        found = self.checkpoints()
        return found[-1] if found else None

    def save(self, epoch: int, *, model: torch.nn.Module,
             optimizer: Optional[torch.optim.Optimizer] = None,
             model_args: Dict[str, Any], extra: Optional[Dict[str, Any]] = None,
             scheduler: Optional[Any] = None) -> pathlib.Path:
        """Write the checkpoint for ``epoch`` (last completed) and prune old ones."""
        path = save_checkpoint(self.path_for(epoch), model=model, optimizer=optimizer,
                               epoch=epoch, model_args=model_args, extra=extra,
                               scheduler=scheduler)
        if self.keep_last is not None:
            for old in self.checkpoints()[:-self.keep_last]:
                if old != path:
                    old.unlink(missing_ok=True)
                    old.with_suffix(".json").unlink(missing_ok=True)
        return path

    def resume(self, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
               *, scheduler: Optional[Any] = None,
               map_location: Union[str, torch.device, None] = "cpu", default: int = 0) -> int:
        """Load the newest checkpoint into ``model``/``optimizer`` (and RNG states) and return
        the epoch to start from (``saved epoch + 1``), or ``default`` when there is none.
        The loaded dictionary is kept in :attr:`last_state` (e.g. for ``extra``)."""
        latest = self.latest()
        if latest is None:
            self.last_state = None
            return default
        self.last_state = load_checkpoint(latest, model=model, optimizer=optimizer,
                                          scheduler=scheduler, map_location=map_location)
        return self.last_state["epoch"] + 1
