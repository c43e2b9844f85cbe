"""Device names to :class:`torch.device`, checked."""
from __future__ import annotations

from typing import Union

import torch


def resolve_device(device: Union[str, torch.device, None] = "auto") -> torch.device:
    r"""Turn a device name into a :class:`torch.device`.

    ``"auto"`` (or ``None``) picks ``cuda`` when a GPU is visible, then Apple ``mps``, else
    ``cpu``. Explicit names (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) are checked: asking
    for a device that is not there raises a :class:`ValueError` instead of failing later inside a
    kernel.

    Args:
        device (str or torch.device, optional): The device name. (default: :obj:`"auto"`)
    """
    if device is None:
        device = "auto"
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        name = device.strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            dev = torch.device(name)
        except RuntimeError as exc:
            raise ValueError(f"resolve_device: unknown device {device!r} ({exc})") from None
    else:
        raise TypeError(f"resolve_device: device must be a str or torch.device, "
                        f"got {type(device).__name__}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"resolve_device: {device!s} requested but CUDA is not available "
                             f"(use 'cpu' or 'auto')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"resolve_device: {device!s} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"resolve_device: {device!s} requested but MPS is not available")
    return dev
