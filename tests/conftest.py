"""Fixtures shared by the whole suite."""
import importlib.util
import pathlib
from types import ModuleType

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_example(name: str) -> ModuleType:
    """A fresh module object of ``examples/<name>.py`` (the scripts are not a package)."""
    path = ROOT / "examples" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no example script {path}")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_example():
    """``load_example("dagnn")`` imports ``examples/dagnn.py`` afresh and returns the module."""
    return _load_example
