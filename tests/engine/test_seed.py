import random

import numpy as np
import pytest
import torch

from graphkit.engine import resolve_device, seed_everything


def _draw():
    return (random.random(), float(np.random.rand()), torch.rand(3),
            torch.nn.functional.dropout(torch.ones(50), 0.5).tolist())


def test_same_seed_same_numbers():
    seed_everything(7)
    a = _draw()
    seed_everything(7)
    b = _draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2]) and a[3] == b[3]
    seed_everything(8)
    c = _draw()
    assert a[0] != c[0] and a[1] != c[1] and not torch.equal(a[2], c[2])


def test_seed_sets_hash_seed(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    seed_everything(3)
    import os
    assert os.environ["PYTHONHASHSEED"] == "3"


@pytest.mark.parametrize("bad, err", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                                      ("1", TypeError), (True, TypeError)])
def test_bad_seed(bad, err):
    with pytest.raises(err, match="seed"):
        seed_everything(bad)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device()
    assert auto == resolve_device(None)
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    else:
        assert auto.type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(TypeError, match="str or torch.device"):
        resolve_device(0)
