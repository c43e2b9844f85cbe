import math

import numpy as np
import pytest
import torch

from graphkit.evaluate.regression import mae, rmse


def test_values_by_hand():
    p = torch.tensor([1.0, 2.0, 4.0])
    t = torch.tensor([[1.0], [0.0], [1.0]])
    assert mae(p, t) == pytest.approx(5 / 3)
    assert rmse(p, t) == pytest.approx(math.sqrt(13 / 3))
    assert mae(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        mae(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        rmse(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="'y_pred' is NaN at row 1"):
        mae(torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(ValueError, match="'y_true' is inf at row 0"):
        rmse(torch.zeros(2), torch.tensor([float("inf"), 0.0]))


def test_regression_metrics_by_name_take_a_mask_and_are_errors():
    from graphkit.evaluate import get_metric

    pred, true = torch.tensor([1.0, 2.0, 10.0]), torch.tensor([1.0, 4.0, 0.0])
    mask = torch.tensor([True, True, False])
    assert get_metric("mae")(pred, true, mask) == pytest.approx(1.0)
    assert get_metric("rmse")(pred, true, torch.tensor([0, 1])) == pytest.approx(2 ** 0.5)
    assert not get_metric("mae").higher_is_better and get_metric("accuracy").higher_is_better
