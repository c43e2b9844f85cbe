import subprocess
import sys

import pytest
import torch

import graphkit.evaluate as ev
from graphkit.evaluate import Evaluator, get_metric, hits_at_k, list_metrics, mrr


def test_names():
    assert list_metrics() == sorted(list_metrics("label") + list_metrics("link")
                                    + list_metrics("ranking"))
    assert list_metrics("label") == ["accuracy", "ap", "macro_f1", "mae", "micro_f1", "rmse", "roc_auc"]
    assert list_metrics("link") == ["hits@K", "mrr"]
    assert list_metrics("ranking") == ["f1@K", "hit@K", "map@K", "mrr@K", "ndcg@K",
                                       "precision@K", "recall@K"]
    with pytest.raises(ValueError, match="unknown kind 'foo'"):
        list_metrics("foo")


def test_get_metric_resolves_names_to_the_functions():
    m = get_metric("recall@20")
    assert (m.name, m.kind, m.fn, m.k, m.per_user) == ("recall@20", "ranking",
                                                        ev.recall_at_k, 20, True)
    assert get_metric("accuracy").fn is ev.accuracy and get_metric("accuracy").k is None
    assert get_metric("macro_f1").fn is ev.macro_f1 and get_metric("micro_f1").fn is ev.micro_f1
    assert get_metric("roc_auc").fn is ev.roc_auc_by_task
    assert get_metric("ap").fn is ev.average_precision_by_task
    assert get_metric("mrr").fn is ev.mrr and get_metric("mrr@10").fn is ev.mrr_at_k
    assert get_metric("hits@50").fn is ev.hits_at_k and get_metric("hit@5").fn is ev.hit_at_k
    assert get_metric("f1@20").per_user is False
    for name in list_metrics():  # every listed name resolves
        m = get_metric(name.replace("@K", "@3"))
        assert m.kind in ("label", "link", "ranking")
        assert m.higher_is_better == (name not in ("mae", "rmse"))


def test_get_metric_errors():
    with pytest.raises(ValueError, match="unknown metric 'auc'; available: accuracy, ap"):
        get_metric("auc")
    with pytest.raises(ValueError, match="'recall' needs a cut-off, e.g. 'recall@20'"):
        get_metric("recall")
    with pytest.raises(ValueError, match="'accuracy@5' takes no cut-off"):
        get_metric("accuracy@5")
    for bad in ("recall@0", "recall@-1", "recall@x", "ndcg@"):
        with pytest.raises(ValueError, match="must be a positive integer"):
            get_metric(bad)
    with pytest.raises(TypeError, match="must be a string"):
        get_metric(20)


def test_calling_by_name():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    y = torch.tensor([0, 1, 1, 1])
    mask = torch.tensor([True, True, False, True])
    assert get_metric("accuracy")(logits, y, mask) == 1.0
    # predictions [0, 1, 0, 1]: class 0 has F1 2/3, class 1 has 4/5
    assert get_metric("macro_f1")(logits, y) == pytest.approx((2 / 3 + 4 / 5) / 2)
    hits = torch.tensor([[False, True, True]])
    assert get_metric("recall@2")(hits, torch.tensor([4])).tolist() == [0.25]
    assert get_metric("ndcg@1")(hits, torch.tensor([4])).tolist() == [0.0]


def test_link_functions_match_the_evaluator():
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 6, (50,), generator=g).float()
    neg = torch.randint(0, 6, (50, 30), generator=g).float()
    out = Evaluator("ogbl-citation2").eval({"y_pred_pos": pos, "y_pred_neg": neg})
    assert mrr(pos, neg) == pytest.approx(out["mrr_list"].double().mean().item(), abs=1e-12)
    for k in (1, 3, 10):
        assert hits_at_k(pos, neg, k) == pytest.approx(out[f"hits@{k}_list"].mean().item())
        assert get_metric(f"hits@{k}")(pos, neg) == hits_at_k(pos, neg, k)
    shared = torch.randn(100, generator=g)
    assert get_metric("hits@20")(pos, shared) == \
        Evaluator("ogbl-ddi").eval({"y_pred_pos": pos, "y_pred_neg": shared})["hits@20"]
    # by hand: pos 2 against negatives [3, 2, 1] has rank 2.5
    assert mrr(torch.tensor([2.0]), torch.tensor([[3.0, 2.0, 1.0]])) == pytest.approx(0.4)
    assert hits_at_k(torch.tensor([2.0, 0.5]), torch.tensor([3.0, 1.0, 0.0]), 2) == 0.5


def test_import_is_light():
    code = ("import sys, graphkit.evaluate; "
            "heavy = sorted(m for m in ('torch_geometric', 'sklearn', 'scipy', 'pandas', 'ogb') "
            "if m in sys.modules); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
