"""JSON-lines logging and progress bars."""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import pathlib
from typing import Any, Dict, Iterable, Optional, Union

from graphkit.utils.progress import progress_disabled  # noqa: F401  (re-exported)

PathLike = Union[str, os.PathLike]


def _to_jsonable(value: Any) -> Any:
    """Tensors/NumPy scalars → Python numbers, non-finite floats → ``None`` (strict JSON)."""
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch.Tensor
        value = value.detach().cpu().tolist()
    elif hasattr(value, "tolist") and type(value).__module__ == "numpy":
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (pathlib.PurePath, _dt.datetime, _dt.date)):
        return str(value)
    raise TypeError(f"JSONLLogger: cannot log a value of type {type(value).__name__}")


class JSONLLogger:
    r"""Append one JSON object per :meth:`log` call to a ``.jsonl`` file.

    Each line is flushed immediately, so a killed run keeps everything logged so far. Tensors
    and NumPy values are converted to Python numbers; NaN/inf become ``null`` (strict JSON).

    .. code-block:: python

        with JSONLLogger("runs/cora/log.jsonl") as log:
            log.log(epoch=1, loss=0.69, valid=0.71)

    Args:
        path (str or os.PathLike): The output file; parent folders are created.
        mode (str, optional): ``"a"`` appends (a resumed run continues the same log), ``"w"``
            truncates. (default: :obj:`"a"`)
        timestamp (bool, optional): Add a ``"time"`` field (UTC, ISO 8601) unless given.
            (default: :obj:`True`)
        enabled (bool, optional): When :obj:`False` nothing is written (e.g. on non-main DDP
            ranks). (default: :obj:`True`)
    """

    def __init__(self, path: PathLike, mode: str = "a", timestamp: bool = True,
                 enabled: bool = True) -> None:
        if mode not in ("a", "w"):
            raise ValueError(f"JSONLLogger: mode must be 'a' or 'w', got {mode!r}")
        self.path = pathlib.Path(path)
        self.timestamp = timestamp
        self.enabled = enabled
        self._file = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, mode, encoding="utf-8")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({str(self.path)!r})"

    def log(self, **fields: Any) -> None:
        """Write ``fields`` as one JSON line."""
        if not self.enabled:
            return
        if self._file is None:
            raise ValueError(f"JSONLLogger: {self.path} is closed")
        record = {k: _to_jsonable(v) for k, v in fields.items()}
        if self.timestamp and "time" not in record:
            record["time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "JSONLLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass


def read_jsonl(path: PathLike) -> list:
    """Read a JSON-lines file into a list of dicts (blank lines skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
    return out


def finished_runs(path: Optional[PathLike], settings: Dict[str, Any]) -> Dict[int, Dict[str, Any]]:
    """The runs recorded in a per-run JSON-lines log whose ``"settings"`` equal ``settings``,
    keyed by their ``"run"`` number: what a resumed experiment may skip.

    A missing file (or ``path=None``) gives ``{}``. A last line cut short by a killed process is
    ignored (that run is simply run again); an invalid line anywhere else is an error naming the
    file and line.
    """
    if path is None or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    done: Dict[int, Dict[str, Any]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if lineno == len(lines):  # unterminated last line: an interrupted write
                break
            raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if rec.get("settings") == settings:
            done[int(rec["run"])] = rec
    return done


def append_run(path: Optional[PathLike], record: Dict[str, Any]) -> None:
    """Append one finished run to a per-run JSON-lines log as a single write of one line.

    A last line cut short by an earlier killed process is removed first, so the log stays
    one valid JSON object per line."""
    if path is None:
        return
    line = (json.dumps(_to_jsonable(record)) + "\n").encode("utf-8")
    with open(path, "ab+") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(max(size - 1, 0))
            if f.read(1) != b"\n":  # drop the partial line
                f.seek(0)
                data = f.read()
                f.truncate(data.rfind(b"\n") + 1)
        f.seek(0, os.SEEK_END)
        f.write(line)
        f.flush()


def progress(iterable: Optional[Iterable] = None, desc: Optional[str] = None,
             total: Optional[int] = None, disable: Optional[bool] = None, **kwargs: Any):
    r"""A :mod:`tqdm` progress bar over ``iterable``.

    Hidden when ``disable`` is :obj:`True`, or when it is :obj:`None` (default) and the
    environment variable ``CI`` is set or stderr is not a terminal. Falls back to the bare
    iterable when :mod:`tqdm` is not installed.
    """
    if disable is None:
        disable = progress_disabled()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True, **kwargs)
