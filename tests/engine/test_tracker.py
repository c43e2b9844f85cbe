import math

import numpy as np
import pytest
import torch

from graphkit.engine import RunTracker, mean_std


def test_best_valid_and_tie_rule():
    t = RunTracker()
    t.add(0, valid=0.5, test=0.40, epoch=0)
    t.add(0, valid=0.7, test=0.60, epoch=1)
    t.add(0, valid=0.7, test=0.99, epoch=2)  # tie on valid: the earliest entry wins
    t.add(0, valid=0.6, test=0.95, epoch=3)
    b = t.best(0)
    assert b["epoch"] == 1 and b["test"] == 0.60 and b["valid"] == 0.7
    with pytest.raises(KeyError, match="no entries for run 3"):
        t.best(3)


def test_summary_matches_numpy():
    rng = np.random.default_rng(0)
    t = RunTracker()
    expected = []
    for run in range(5):
        valid = rng.random(20)
        test = rng.random(20)
        for e in range(20):
            t.add(run, valid=torch.tensor(valid[e]), test=float(test[e]), train=1.0, epoch=e)
        expected.append(test[int(np.argmax(valid))])
    s = t.summary()
    assert s["runs"] == 5 and t.runs == [0, 1, 2, 3, 4]
    assert np.allclose(s["test_values"], expected)
    assert s["test"][0] == pytest.approx(np.mean(expected), abs=1e-12)
    assert s["test"][1] == pytest.approx(np.std(expected, ddof=1), abs=1e-12)
    assert s["train"] == (1.0, 0.0)
    assert t.best_test_values() == s["test_values"]


def test_format_and_single_run():
    t = RunTracker()
    t.add(0, valid=85.0, test=84.0)
    t.add(1, valid=86.0, test=85.0)
    assert t.format() == "Valid: 85.50 ± 0.71 | Test: 84.50 ± 0.71 (2 runs)"
    one = RunTracker()
    one.add(0, valid=1.0, test=2.0)
    assert one.summary()["test"] == (2.0, 0.0)
    assert one.format(digits=1) == "Valid: 1.0 ± 0.0 | Test: 2.0 ± 0.0 (1 run)"
    assert repr(one) == "RunTracker(mode='max', runs=1)"


def test_min_mode_and_nan():
    t = RunTracker(mode="min")
    t.add(0, valid=0.9, test=0.8)
    t.add(0, valid=0.7, test=0.75)
    t.add(0, valid=float("nan"), test=0.1)
    assert t.best(0)["test"] == 0.75
    m = RunTracker()
    m.add(0, valid=float("nan"), test=0.1)
    m.add(0, valid=0.2, test=0.3)
    assert m.best(0)["test"] == 0.3


def test_state_dict_roundtrip_and_errors():
    t = RunTracker()
    t.add(2, valid=0.1, test=0.2, epoch=4)
    u = RunTracker()
    u.load_state_dict(t.state_dict())
    assert u.best(2) == t.best(2) and u.runs == [2]
    with pytest.raises(ValueError, match="mode"):
        RunTracker(mode="best")
    with pytest.raises(ValueError, match="run must be a non-negative int"):
        t.add(-1, valid=0.1, test=0.1)
    with pytest.raises(TypeError, match="valid must be a number"):
        t.add(0, valid="0.1", test=0.1)
    with pytest.raises(ValueError, match="no entries"):
        RunTracker().summary()


def test_mean_std():
    assert mean_std([0.7, 0.7, 0.7]) == (0.7, 0.0)
    m, s = mean_std([1, 2, 3, 4])
    assert m == 2.5 and s == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert all(math.isnan(v) for v in mean_std([1.0, float("nan")]))
    with pytest.raises(ValueError):
        mean_std([])
