import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")
def test_keep_freed_memory_applies_once_and_can_be_disabled():
    code = ("from graphkit.engine import keep_freed_memory as k; "
            "a = k(); b = k(); print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == out[1]  # idempotent
    import ctypes.util
    if ctypes.util.find_library("c") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert out[0] == "True"
    env_off = dict(__import__("os").environ, GRAPHKIT_MALLOC_TUNING="0")
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env_off).stdout.split()
    assert off == ["False", "False"]
