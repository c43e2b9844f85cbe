import numpy as np
import pytest
import torch

from graphkit.evaluate import Evaluator, accuracy, average_precision_by_task, macro_f1, micro_f1, roc_auc_by_task


def test_f1_single_label_by_hand():
    # classes 0, 1, 2 true; class 3 only predicted.
    y_true = torch.tensor([0, 1, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 3])
    # per class (tp, fp, fn): 0 (1,0,0) -> 1; 1 (1,1,0) -> 2/3; 2 (0,0,2) -> 0; 3 (0,1,0) -> 0
    assert macro_f1(y_pred, y_true) == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
    assert micro_f1(y_pred, y_true) == pytest.approx(0.5) == accuracy(y_pred, y_true)
    # logits (arg-max) and a mask selecting rows 0 and 2: classes 0 and 2 true, 0 and 1 predicted
    logits = torch.nn.functional.one_hot(y_pred, 4).float()
    assert macro_f1(logits, y_true, mask=torch.tensor([0, 2])) == pytest.approx((1 + 0 + 0) / 3)
    mask = torch.tensor([True, True, False, False])
    assert macro_f1(logits, y_true, mask) == micro_f1(logits, y_true, mask) == 1.0


def test_f1_multi_label_by_hand():
    y_true = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, -0.5, 1.0], [0.1, 4.0, -2.0]])
    # predictions (> 0): [[1,0,1],[0,0,1],[1,1,0]]
    # column 0: tp 2 -> 1; column 1: tp 1, fn 1 -> 2/3; column 2: tp 1, fp 1 -> 2/3
    assert macro_f1(logits, y_true) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert micro_f1(logits, y_true) == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    probs = torch.sigmoid(logits)
    assert macro_f1(probs, y_true, threshold=0.5) == macro_f1(logits, y_true)
    assert micro_f1((logits > 0).int(), y_true) == micro_f1(logits, y_true)
    assert micro_f1(logits > 0, y_true.bool(), mask=torch.tensor([0])) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_matches_sklearn(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    # single-label, with a class never predicted and one never true
    y = rng.integers(0, 6, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 7, 200))
    p[p == 2] = 3
    for avg, fn in (("macro", macro_f1), ("micro", micro_f1)):
        assert fn(p, y) == pytest.approx(sk.f1_score(y, p, average=avg), abs=1e-12)
        mask = rng.random(200) < 0.5
        assert fn(torch.from_numpy(p), torch.from_numpy(y), torch.from_numpy(mask)) == \
            pytest.approx(sk.f1_score(y[mask], p[mask], average=avg), abs=1e-12)
    # multi-label (an IMDB-like indicator matrix), one empty column in truth and prediction
    y = (rng.random((150, 5)) < 0.3).astype(np.int64)
    scores = rng.normal(size=(150, 5)) + y
    y[:, 4] = 0
    scores[:, 4] = -1.0
    for avg, fn in (("macro", macro_f1), ("micro", micro_f1)):
        assert fn(scores, y) == pytest.approx(
            sk.f1_score(y, (scores > 0).astype(int), average=avg, zero_division=0), abs=1e-12)


def test_f1_bad_input():
    y = torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match="no nodes selected"):
        macro_f1(y, y, mask=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="predicted labels must lie in"):
        micro_f1(torch.tensor([0, -1, 1]), y)
    with pytest.raises(ValueError, match="labels must lie in \\[0, 2\\)"):
        macro_f1(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), num_classes=2)
    with pytest.raises(ValueError, match="same shape"):
        macro_f1(torch.zeros(3, 4), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="'y_true' must hold 0/1 labels, found 2.0 at row 1, "
                                         "column 0"):
        micro_f1(torch.zeros(2, 2), torch.tensor([[0, 1], [2, 0]]))
    with pytest.raises(ValueError, match="'y_pred' is NaN at row 0, column 1"):
        macro_f1(torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), torch.tensor([[0, 1], [1, 0]]))


@pytest.mark.parametrize("name", ["ogbn-proteins", "ogbg-molpcba", "ogbg-molhiv"])
def test_multitask_roc_auc_and_ap_match_the_evaluator(name):
    rng = np.random.default_rng(3)
    ev = Evaluator(name)
    y_true = rng.integers(0, 2, (120, ev.num_tasks)).astype(np.float64)
    y_true[rng.random(y_true.shape) < 0.2] = np.nan
    y_pred = rng.normal(size=y_true.shape)
    fn = roc_auc_by_task if ev.eval_metric == "rocauc" else average_precision_by_task
    assert fn(y_pred, y_true) == ev.eval({"y_true": y_true, "y_pred": y_pred})[ev.eval_metric]
    mask = rng.random(120) < 0.5
    expected = ev.eval({"y_true": y_true[mask], "y_pred": y_pred[mask]})[ev.eval_metric]
    assert fn(torch.from_numpy(y_pred), torch.from_numpy(y_true), torch.from_numpy(mask)) == \
        pytest.approx(expected, abs=1e-15)


def test_single_task_roc_auc_by_hand():
    # positives score 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered correctly
    y = torch.tensor([1, 0, 1, 0])
    s = torch.tensor([0.9, 0.5, 0.4, 0.1])
    assert roc_auc_by_task(s, y) == pytest.approx(0.75)
    assert roc_auc_by_task(s.view(-1, 1), y.view(-1, 1)) == pytest.approx(0.75)
    # AP: thresholds 0.9 (P=1, R=.5), 0.5, 0.4 (P=2/3, R=1) -> .5 * 1 + .5 * 2/3
    assert average_precision_by_task(s, y) == pytest.approx(0.5 + 0.5 * 2 / 3)
    with pytest.raises(ValueError, match="'y_true' must hold 0/1 labels"):
        roc_auc_by_task(s, torch.tensor([1, 0, 2, 0]))
    with pytest.raises(ValueError, match="no task has both"):
        roc_auc_by_task(s, torch.ones(4))
