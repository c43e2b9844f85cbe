"""Small helpers for ``torch.distributed`` (DDP) runs started with ``torchrun``.

Scripts call :func:`init_distributed` once; without ``torchrun`` (no ``WORLD_SIZE`` in the
environment) it does nothing and every helper behaves as in a single process, so the same
script runs unchanged with and without ``torchrun --nproc_per_node=N``.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Optional

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
