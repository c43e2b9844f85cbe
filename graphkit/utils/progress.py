"""When to show progress bars."""
from __future__ import annotations

import os
import sys


def progress_disabled() -> bool:
    """True when progress bars should be hidden: ``CI`` is set or stderr is not a terminal."""
    if os.environ.get("CI"):
        return True
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True
