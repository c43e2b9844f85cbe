"""Process-level memory settings for training on CPU."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Allocations at or above this many bytes get their own ``mmap`` and go back to the system
#: when freed (full-graph arrays of large data sets, score blocks); smaller ones are reused.
DEFAULT_MMAP_THRESHOLD = 64 << 20
#: At most this many freed bytes are kept at the top of the heap for reuse.
DEFAULT_KEEP_BYTES = 512 << 20
_INT_MAX = (1 << 31) - 1

_state = {"applied": None}


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 0


def keep_freed_memory(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD,
                      trim_threshold: int = DEFAULT_KEEP_BYTES) -> bool:
    r"""Let glibc keep a bounded amount of freed memory for reuse instead of returning it to
    the system.

    By default glibc serves every allocation above at most 32 MB with a fresh ``mmap`` and
    unmaps it on free, and gives the top of the heap back once more than twice that is free.
    A training step allocates and frees the same tensors again and again (full-graph
    embeddings, sparse-product outputs, activations), so each of them is page-faulted in
    anew: one fault per 4 KiB on first touch, a large share of a CPU step's time (about 30% of
    a LightGCN step on Gowalla here, whose tensors are tens of MB). This serves allocations
    below ``mmap_threshold`` bytes from the heap and keeps up to ``trim_threshold`` freed
    bytes there, so those tensors are reused without faults.

    What it keeps is capped, so it never holds more than ``trim_threshold`` (and at most 1/16
    of the machine's memory) beyond what the program uses: allocations of ``mmap_threshold``
    bytes or more (the arrays of a data set with tens of millions of interactions) still get
    their own mapping and are returned on free. Keeping such arrays on the heap instead
    (thresholds of 1-2 GB) made the peak of building a 64M-interaction data set twice its
    untuned value, through heap fragmentation.

    It changes the whole process, so the library never calls it on import; graphkit's
    command-line tools and example scripts do (set ``GRAPHKIT_MALLOC_TUNING=0`` to opt
    out). Returns whether the settings were applied: only on Linux with glibc. The first call
    decides; later calls return its result.

    Args:
        mmap_threshold (int): bytes from which an allocation gets its own mapping.
            (default: 64 MiB)
        trim_threshold (int): freed bytes kept at the top of the heap. (default: 512 MiB)
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _INT_MAX:
            raise ValueError(f"keep_freed_memory: {name} must be an int in [1, {_INT_MAX}] bytes, got {value!r}")
    if _state["applied"] is not None:
        return _state["applied"]
    physical = _physical_memory()
    if physical:
        trim_threshold = min(trim_threshold, max(physical // 16, 1 << 20))
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
