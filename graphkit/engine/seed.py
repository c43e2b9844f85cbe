"""Seeding; :func:`resolve_device` lives in :mod:`graphkit.utils` and is re-exported here."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from graphkit.utils.device import resolve_device  # noqa: F401  (re-exported by graphkit.engine)

_MAX_SEED = 2**32 - 1


def seed_everything(seed: int) -> None:
    r"""Seed Python's :mod:`random`, NumPy's global generator and PyTorch (CPU and all CUDA
    devices), and set ``PYTHONHASHSEED`` for child processes.

    Two calls with the same seed followed by the same operations on the same device give the
    same numbers. This does not switch on :func:`torch.use_deterministic_algorithms`; some CUDA
    kernels (scatter-add, for one) stay non-deterministic on GPU.

    Args:
        seed (int): A non-negative integer below :math:`2^{32}`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed_everything: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed_everything: seed must be in [0, 2**32 - 1], got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
