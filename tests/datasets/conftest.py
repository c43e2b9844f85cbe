import os
from pathlib import Path

import pytest


def _mirror():
    env = os.environ.get("GRAPHKIT_DATA")
    return Path(env) if env and Path(env).is_dir() else None


@pytest.fixture(scope="session")
def mirror():
    """The offline mirror named by GRAPHKIT_DATA (skips when it is not available)."""
    m = _mirror()
    if m is None:
        pytest.skip("GRAPHKIT_DATA is unset or not a folder: the offline dataset mirror is needed")
    return m


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """One temporary GRAPHKIT_CACHE for the whole session (PyG processing happens once).

    Set GRAPHKIT_TEST_CACHE to a folder to reuse processed files across test runs.
    """
    reuse = os.environ.get("GRAPHKIT_TEST_CACHE")
    path = Path(reuse) if reuse else tmp_path_factory.mktemp("graphkit-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAPHKIT_CACHE", str(path))
    mp.setenv("GRAPHKIT_OFFLINE", "1")
    yield path
    mp.undo()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No mirror, an empty private cache: only what a test puts in place is visible."""
    cache = tmp_path / "cache"
    monkeypatch.delenv("GRAPHKIT_DATA", raising=False)
    monkeypatch.delenv("GRAPHKIT_OFFLINE", raising=False)
    monkeypatch.setenv("GRAPHKIT_CACHE", str(cache))
    return cache
