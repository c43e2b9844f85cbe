"""Atomic file writes: write to a temporary file in the target folder, then rename."""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import IO, Callable, Union

PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> pathlib.Path:
    """Call ``write(fileobj)`` on a temporary file next to ``path`` and rename it to ``path``.

    The rename is atomic on POSIX and Windows (``os.replace``), so readers see either the old
    file or the complete new one, never a partial write. On any error the temporary file is
    removed and ``path`` is left untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> pathlib.Path:
    """Atomically replace the text file ``path`` with ``text``."""
    data = text.encode(encoding)
    return atomic_write(path, lambda f: f.write(data))
