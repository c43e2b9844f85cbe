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


_RSS_AFTER_FREE = """
import sys, torch
from graphkit.engine.memory import keep_freed_memory
def rss():
    with open('/proc/self/statm') as fh:
        return int(fh.read().split()[1]) * 4096
args = [int(a) for a in sys.argv[1:]]
assert keep_freed_memory(*args)
before = rss()
# a data-set build: arrays of 80-100 MB, allocated and freed in varying sizes
for i in range(6):
    xs = [torch.ones((80 + 4 * i) << 18) for _ in range(2)]
    del xs
print(rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")
def test_keep_freed_memory_returns_large_arrays_and_caps_what_it_keeps():
    import ctypes.util
    import platform
    if not (ctypes.util.find_library("c") and "glibc" in " ".join(platform.libc_ver())):
        pytest.skip("glibc only")

    def kept(*args):
        out = subprocess.run([sys.executable, "-c", _RSS_AFTER_FREE, *map(str, args)], capture_output=True,
                             text=True, check=True)
        return int(out.stdout.split()[-1])

    assert kept() < 40 << 20  # arrays above the 64 MiB threshold go back to the system
    assert kept(1 << 30, (1 << 31) - 1) > 150 << 20  # the former thresholds kept them
    with pytest.raises(ValueError, match="trim_threshold must be an int"):
        from graphkit.engine.memory import keep_freed_memory
        keep_freed_memory(trim_threshold=0)
