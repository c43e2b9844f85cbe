"""Process-level memory settings for training on CPU."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_state = {"applied": None}


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    r"""Let glibc keep freed memory for reuse instead of returning it to the system.

    By default glibc serves every allocation above at most 32 MB with a fresh ``mmap`` and
    unmaps it on free, and gives the top of the heap back once more than twice that is free.
    A training step allocates and frees the same large tensors again and again (full-graph
    embeddings, score blocks, activations), so each of them is page-faulted in anew: one
    fault per 4 KiB on first touch, a large share of a CPU step's time (about 30% of a
    LightGCN step on Gowalla here). This raises the mmap threshold to ``mmap_threshold``
    bytes and the trim threshold to ``trim_threshold``, so freed blocks are reused without
    faults; the process's resident memory then stays near its peak, as with jemalloc or
    tcmalloc.

    It changes the whole process, so the library never calls it on import; graphkit's
    command-line tools and example scripts do (set ``GRAPHKIT_MALLOC_TUNING=0`` to opt
    out). Returns whether the settings were applied: only on Linux with glibc.
    """
    if _state["applied"] is not None:
        return _state["applied"]
    applied = False
    if sys.platform.startswith("linux") and os.environ.get("GRAPHKIT_MALLOC_TUNING", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            applied = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
                mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
        except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
            applied = False
    _state["applied"] = applied
    return applied
