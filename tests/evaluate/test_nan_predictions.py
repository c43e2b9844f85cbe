"""A NaN prediction is an error naming the key and the row, never a number: NaN compares as
neither higher nor lower than anything, so a sort ranks it first and a metric comes out
silently wrong."""
import math

import numpy as np
import pytest
import torch

from graphkit.evaluate import Evaluator, NodeClassificationEvaluator, accuracy, average_precision, roc_auc
from graphkit.rec.evaluate import full_ranking

NAN, INF = float("nan"), float("inf")


def _binary(n=8, t=1):
    y_true = torch.tensor([[0.0], [1.0], [0.0], [1.0], [1.0], [0.0], [1.0], [0.0]])[:n]
    y_pred = torch.linspace(-1, 1, n).view(-1, 1)
    return y_true.repeat(1, t), y_pred.repeat(1, t)


@pytest.mark.parametrize("name", ["ogbg-molhiv", "ogbg-molpcba"])
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_graph_rocauc_and_ap_reject_non_finite_predictions(name, bad):
    ev = Evaluator(name)
    y_true, y_pred = _binary(t=ev.num_tasks)
    y_pred[3, 0] = bad
    with pytest.raises(ValueError, match=r"'y_pred' is (nan|inf|-inf|NaN) at row 3, column 0"):
        ev.eval({"y_true": y_true, "y_pred": y_pred})
    with pytest.raises(ValueError, match=r"'y_pred' .* at row 3, column 0"):  # numpy input
        ev.eval({"y_true": y_true.numpy(), "y_pred": y_pred.numpy()})


def test_nan_prediction_on_an_unlabelled_entry_is_not_scored():
    # like ogb: only labelled entries are scored, so only they must be finite
    y_true, y_pred = _binary(t=112)
    y_true[3, 5] = NAN
    y_pred[3, 5] = NAN
    clean = y_pred.clone()
    clean[3, 5] = 0.0
    ev = Evaluator("ogbn-proteins")
    assert ev.eval({"y_true": y_true, "y_pred": y_pred}) == ev.eval({"y_true": y_true,
                                                                     "y_pred": clean})
    y_pred[4, 7] = NAN
    with pytest.raises(ValueError, match="'y_pred' is NaN at row 4, column 7"):
        ev.eval({"y_true": y_true, "y_pred": y_pred})


@pytest.mark.parametrize("name,bad", [("ogbg-molesol", NAN), ("ogbg-molesol", INF),
                                      ("ogbn-arxiv", NAN), ("ogbg-ppa", INF)])
def test_acc_and_rmse_reject_non_finite_predictions(name, bad):
    y_true = torch.arange(6, dtype=torch.float64).view(-1, 1)
    y_pred = y_true.clone()
    y_pred[2, 0] = bad
    with pytest.raises(ValueError, match="'y_pred' is .* at row 2, column 0"):
        Evaluator(name).eval({"y_true": y_true, "y_pred": y_pred})


@pytest.mark.parametrize("name", ["ogbl-collab", "ogbl-ddi", "ogbl-vessel"])
def test_link_metrics_reject_nan_scores(name):
    pos, neg = torch.tensor([3.0, 2.0, 1.0]), torch.linspace(-1, 0.5, 200)
    bad = pos.clone()
    bad[1] = NAN
    with pytest.raises(ValueError, match="'y_pred_pos' is NaN at row 1"):
        Evaluator(name).eval({"y_pred_pos": bad, "y_pred_neg": neg})
    bad = neg.clone()
    bad[17] = NAN
    with pytest.raises(ValueError, match="'y_pred_neg' is NaN at row 17"):
        Evaluator(name).eval({"y_pred_pos": pos, "y_pred_neg": bad})


def test_link_mrr_rejects_nan_and_orders_infinities():
    ev = Evaluator("ogbl-citation2")
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([[3.0, 1.0], [1.0, -1.0]])
    bad = pos.clone()
    bad[1] = NAN  # would rank first against every negative
    with pytest.raises(ValueError, match="'y_pred_pos' is NaN at row 1"):
        ev.eval({"y_pred_pos": bad, "y_pred_neg": neg})
    bad = neg.clone()
    bad[1, 0] = NAN
    with pytest.raises(ValueError, match="'y_pred_neg' is NaN at row 1, column 0"):
        ev.eval({"y_pred_pos": pos, "y_pred_neg": bad})
    # infinities only order: -inf positive ranks last, +inf negative above everything
    out = ev.eval({"y_pred_pos": torch.tensor([-INF, 2.0]),
                   "y_pred_neg": torch.tensor([[0.0, 1.0], [INF, 1.0]])})
    assert out["mrr_list"].tolist() == pytest.approx([1 / 3, 1 / 2])


def test_ogbl_vessel_rocauc_rejects_infinite_scores():
    with pytest.raises(ValueError, match="'y_pred_pos' is inf at row 0"):
        Evaluator("ogbl-vessel").eval({"y_pred_pos": torch.tensor([INF, 1.0]),
                                       "y_pred_neg": torch.tensor([0.0, -1.0])})


def test_binary_metric_functions_reject_nan_scores():
    y = torch.tensor([0, 1, 0, 1])
    s = torch.tensor([0.1, NAN, 0.3, 0.4])
    with pytest.raises(ValueError, match="roc_auc: 'y_score' is NaN at row 1"):
        roc_auc(y, s)
    with pytest.raises(ValueError, match="average_precision: 'y_score' is NaN at row 1"):
        average_precision(y, s)


def test_node_accuracy_rejects_nan_predictions_naming_the_row():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, NAN]])
    y = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match="'y_pred' is NaN at row 2, column 1"):
        accuracy(logits, y)
    labels = torch.tensor([0.0, NAN, 0.0])  # predicted labels as floats
    with pytest.raises(ValueError, match="'y_pred' is NaN at row 1"):
        NodeClassificationEvaluator().eval({"y_true": y, "y_pred": labels})
    with pytest.raises(ValueError, match="'y_pred' is NaN at row 1"):
        accuracy(np.array([0.0, math.nan, 0.0]), y.numpy())


@pytest.mark.parametrize("num_items", [12, 5000])  # narrow rows, and wide rows (prefilter)
def test_full_ranking_rejects_nan_scores_naming_user_and_item(num_items):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, num_items, generator=g)
    scores[2, 7] = NAN
    test = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    with pytest.raises(ValueError, match="NaN for user 2 \\(item 7"):
        full_ranking(lambda u: scores[u], 4, num_items, test, ks=(3,), batch_size=2)
    # a NaN on a masked (training) item is never ranked
    train = torch.tensor([[2], [7]])
    res = full_ranking(lambda u: scores[u], 4, num_items, test, exclude=(train,), ks=(3,))
    assert res["num_users"] == 4
    # infinite scores are ordered, not rejected
    scores[2, 7] = INF
    scores[2, 3] = INF
    res = full_ranking(lambda u: scores[u], 4, num_items, test, ks=(1,), return_per_user=True)
    assert res["per_user"]["hit@1"][2].item() == 1.0  # item 3 wins the tie by its index
