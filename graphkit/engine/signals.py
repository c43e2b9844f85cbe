"""Stopping a long training run cleanly on Ctrl-C or SIGTERM."""
from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Dict, Sequence


class GracefulStop:
    r"""Turns the first SIGINT (Ctrl-C) or SIGTERM into a request to stop at the next safe point.

    A training loop checks :attr:`requested` at the end of each epoch, checkpoints, and returns
    as if its time budget had run out, so the run resumes from that epoch later. A second
    SIGINT raises :class:`KeyboardInterrupt` at once, as Python normally does; a repeat within
    one second counts as the same request (a terminal's Ctrl-C can reach a process twice, e.g.
    directly and forwarded by a wrapper such as ``timeout``). Handlers are installed only in
    the main thread (Python allows no other) and restored on exit.

    Example::

        with GracefulStop() as stop:
            for epoch in range(epochs):
                train_one_epoch()
                if stop.requested:
                    save_checkpoint(...)
                    break
    """

    def __init__(self, enabled: bool = True,
                 signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.enabled = enabled
        self.signals = tuple(signals)
        self.requested = False
        self._first_at = 0.0
        self._previous: Dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if signum == signal.SIGINT and time.monotonic() - self._first_at > 1.0:
                raise KeyboardInterrupt
            return
        self.requested, self._first_at = True, time.monotonic()
        print(f"\n{signal.Signals(signum).name} received: stopping after this epoch (with a "
              "checkpoint); press Ctrl-C again to abort at once", file=sys.stderr, flush=True)

    def __enter__(self) -> "GracefulStop":
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
