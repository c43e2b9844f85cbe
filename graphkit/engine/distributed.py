"""Small helpers for ``torch.distributed`` (DDP) runs started with ``torchrun``.

Scripts call :func:`init_distributed` once; without ``torchrun`` (no ``WORLD_SIZE`` in the
environment) it does nothing and every helper behaves as in a single process, so the same
script runs unchanged with and without ``torchrun --nproc_per_node=N``.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Optional

import torch
import torch.distributed as dist


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"init_distributed: environment variable {name}={value!r} "
                         f"is not an integer") from None


def is_distributed() -> bool:
    """True when a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in non-distributed runs)."""
    return get_rank() == 0


def init_distributed(backend: Optional[str] = None, timeout_s: float = 1800.0) -> torch.device:
    r"""Initialise the default process group from ``torchrun``'s environment variables.

    Reads ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. The
    backend defaults to ``nccl`` when CUDA is available and ``gloo`` otherwise; on GPU the
    process is bound to ``cuda:LOCAL_RANK``. Without ``WORLD_SIZE`` (plain ``python``), or with
    ``WORLD_SIZE=1``, nothing is initialised.

    Returns:
        torch.device: The device this process should use.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if world_size <= 1 or is_distributed():
        return device
    if not dist.is_available():
        raise RuntimeError("init_distributed: torch.distributed is not available in this build")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"init_distributed: WORLD_SIZE={world_size} but {name} is not set "
                             f"(start the script with torchrun)")
    if backend is None:
        backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    return device


def launched_with_torchrun() -> bool:
    """True when the environment asks for more than one process (``WORLD_SIZE > 1``, as
    ``torchrun --nproc_per_node=N`` with ``N > 1`` or several nodes sets it)."""
    return _env_int("WORLD_SIZE", 1) > 1


def ensure_distributed() -> Optional[torch.device]:
    r"""Initialise the process group when the script was started by ``torchrun`` with more than
    one process and nobody has done so yet; the training loops call it, so scripts built on them
    need no code of their own to run under ``torchrun``.

    Returns:
        torch.device or None: the device this rank should use (``cuda:LOCAL_RANK`` on GPU,
        else CPU), or ``None`` in a single-process run.
    """
    if not launched_with_torchrun():
        return None
    return init_distributed()


def setup_device(requested: str = "auto") -> torch.device:
    r"""The device a script should use, creating the process group first under ``torchrun``.

    In a single process this is :func:`graphkit.utils.resolve_device` of ``requested``. Under
    ``torchrun`` with ``"auto"`` or ``"cuda"`` each rank gets ``cuda:LOCAL_RANK`` (or the CPU
    without a GPU); an explicit ``"cpu"`` or ``"cuda:i"`` is kept.
    """
    from graphkit.utils import resolve_device

    rank_device = ensure_distributed()
    if rank_device is not None and str(requested).strip().lower() in ("auto", "cuda"):
        return rank_device
    return resolve_device(requested)


def wrap_ddp(module: torch.nn.Module, find_unused_parameters: bool = False,
             broadcast_buffers: bool = True) -> torch.nn.Module:
    r"""``module`` wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` when a process
    group is initialised and it has trainable parameters; otherwise ``module`` itself.

    The wrapper broadcasts rank 0's parameters and buffers on construction, so every replica
    starts equal, and averages the gradients over the ranks during ``backward``. On CUDA the
    module must already sit on this rank's device (:func:`init_distributed`'s return value).
    ``broadcast_buffers=False`` skips re-sending rank 0's buffers before every forward (for
    buffers that are equal on every rank by construction, such as a cached graph).
    """
    if not is_distributed() or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(p.device for p in module.parameters())
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    kwargs = {}
    if not broadcast_buffers:  # newer torch names it forward_sync_buffers
        import inspect

        params = inspect.signature(DistributedDataParallel.__init__).parameters
        kwargs["forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"] = False
    return DistributedDataParallel(module, device_ids=ids,
                                   find_unused_parameters=find_unused_parameters, **kwargs)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (a stop decision all ranks
    must take together); ``flag`` itself without a process group."""
    if not is_distributed():
        return bool(flag)
    dev = (torch.device("cuda", torch.cuda.current_device())
           if dist.get_backend() == "nccl" else torch.device("cpu"))
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects; tensors come back on CPU
    under gloo). Without a process group ``obj`` is returned."""
    if not is_distributed():
        return obj
    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def split_for_rank(items: torch.Tensor, rank: Optional[int] = None,
                   world_size: Optional[int] = None) -> torch.Tensor:
    r"""This rank's contiguous part of ``items`` (split along dimension 0).

    The ``n`` items are cut into ``world_size`` parts whose sizes differ by at most one (the
    first ``n mod world_size`` ranks get one more), as :func:`torch.tensor_split` does; with
    ``n < world_size`` some ranks get an empty part.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if world_size == 1:
        return items
    return torch.tensor_split(items, world_size)[rank]


def print0(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only (every rank prints in a single-process run, i.e. rank 0)."""
    if is_main_process():
        print(*args, **kwargs)


def barrier() -> None:
    """Wait for all processes (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def all_reduce_mean(value):
    r"""The mean of ``value`` over all processes.

    Accepts a tensor (returned as a new tensor, reduced element-wise) or a Python number
    (returned as a float). Without a process group the value is returned unchanged.
    """
    is_tensor = isinstance(value, torch.Tensor)
    if not is_distributed():
        return value.clone() if is_tensor else float(value)
    if is_tensor:
        t = value.detach().clone()
    else:
        dev = (torch.device("cuda", torch.cuda.current_device())
               if dist.get_backend() == "nccl" else torch.device("cpu"))
        t = torch.tensor(float(value), dtype=torch.float64, device=dev)
    if not t.is_floating_point():
        t = t.double()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return t if is_tensor else float(t.item())


def cleanup_distributed(barrier: bool = True) -> None:
    """Destroy the process group if one was initialised.

    With ``barrier=True`` every rank first waits for the others, so no rank tears the group down
    while another still communicates through it (gloo then aborts the other process). Pass
    ``barrier=False`` on an error path, where the other ranks may never arrive."""
    if is_distributed():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
