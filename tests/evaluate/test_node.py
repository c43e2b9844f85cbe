import numpy as np
import pytest
import torch

from graphkit.evaluate import (
    Evaluator,
    NodeClassificationEvaluator,
    accuracy,
    average_precision,
    list_evaluators,
    roc_auc,
)

ogb = pytest.importorskip("ogb")
from ogb.graphproppred import Evaluator as OGBGraph  # noqa: E402
from ogb.linkproppred import Evaluator as OGBLink  # noqa: E402
from ogb.nodeproppred import Evaluator as OGBNode  # noqa: E402


def _ogb(name):
    return {"ogbn": OGBNode, "ogbl": OGBLink, "ogbg": OGBGraph}[name[:4]](name)


def test_names_and_repr():
    names = list_evaluators()
    assert "ogbn-arxiv" in names and "ogbl-citation2" in names and "ogbg-molhiv" in names
    assert repr(Evaluator("ogbn-arxiv")) == "Evaluator('ogbn-arxiv', metric='acc')"
    with pytest.raises(ValueError, match="unknown dataset name 'ogbn-foo'"):
        Evaluator("ogbn-foo")
    for name in names:  # same metric as ogb's metadata
        assert Evaluator(name).eval_metric == _ogb(name).eval_metric


def test_formats_are_documented():
    for name in ("ogbn-arxiv", "ogbl-collab", "ogbl-citation2", "ogbg-molhiv", "ogbg-code2"):
        ev = Evaluator(name)
        assert name in ev.expected_input_format and name in ev.expected_output_format


@pytest.mark.parametrize("as_numpy", [False, True])
def test_node_acc_matches_ogb(as_numpy):
    g = torch.Generator().manual_seed(0)
    y_true = torch.randint(0, 40, (500, 1), generator=g)
    y_pred = torch.where(torch.rand(500, 1, generator=g) < 0.7, y_true,
                         torch.randint(0, 40, (500, 1), generator=g))
    d = {"y_true": y_true, "y_pred": y_pred}
    if as_numpy:
        d = {k: v.numpy() for k, v in d.items()}
    ours = Evaluator("ogbn-arxiv").eval(d)
    ref = _ogb("ogbn-arxiv").eval(d)
    assert ours.keys() == ref.keys()
    assert ours["acc"] == pytest.approx(ref["acc"], abs=1e-12)


def test_proteins_rocauc_matches_ogb_with_ties():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, (300, 112)).astype(np.float32)
    y_true[:, 5] = 1  # a task without negatives is skipped
    y_pred = rng.integers(0, 5, (300, 112)).astype(np.float32)  # many ties
    ours = Evaluator("ogbn-proteins").eval({"y_true": y_true, "y_pred": y_pred})
    ref = _ogb("ogbn-proteins").eval({"y_true": y_true, "y_pred": y_pred})
    assert ours["rocauc"] == pytest.approx(ref["rocauc"], abs=1e-9)


@pytest.mark.parametrize("name", ["ogbg-molhiv", "ogbg-molpcba", "ogbg-molesol", "ogbg-ppa"])
def test_graph_metrics_match_ogb(name):
    rng = np.random.default_rng(2)
    ev, ref_ev = Evaluator(name), _ogb(name)
    n, t = 200, ev.num_tasks
    if ev.eval_metric in ("rocauc", "ap"):
        y_true = rng.integers(0, 2, (n, t)).astype(np.float64)
        y_true[rng.random((n, t)) < 0.2] = np.nan  # unlabelled entries
        y_pred = rng.normal(size=(n, t))
    elif ev.eval_metric == "rmse":
        y_true, y_pred = rng.normal(size=(n, t)), rng.normal(size=(n, t))
    else:
        y_true = rng.integers(0, 37, (n, t))
        y_pred = np.where(rng.random((n, t)) < 0.5, y_true, rng.integers(0, 37, (n, t)))
    d = {"y_true": y_true, "y_pred": y_pred}
    ours, ref = ev.eval(d), ref_ev.eval(d)
    m = ev.eval_metric
    assert ours[m] == pytest.approx(ref[m], abs=1e-9)
    dt = {k: torch.from_numpy(v) for k, v in d.items()}
    assert ev.eval(dt)[m] == pytest.approx(ref[m], abs=1e-9)


def test_code2_f1_matches_ogb():
    ref = [["a", "b"], ["c"], ["d", "e", "f"], []]
    pred = [["a"], ["x"], ["d", "e", "f", "g"], ["z"]]
    d = {"seq_ref": ref, "seq_pred": pred}
    ours, theirs = Evaluator("ogbg-code2").eval(d), _ogb("ogbg-code2").eval(d)
    for k in ("precision", "recall", "F1"):
        assert ours[k] == pytest.approx(float(theirs[k]))


@pytest.mark.parametrize("name", ["ogbl-collab", "ogbl-ddi", "ogbl-ppa", "ogbl-vessel"])
def test_link_hits_and_auc_match_ogb(name):
    g = torch.Generator().manual_seed(3)
    pos = torch.randn(400, generator=g) + 1
    neg = torch.randn(3000, generator=g)
    d = {"y_pred_pos": pos, "y_pred_neg": neg}
    ours, ref = Evaluator(name).eval(d), _ogb(name).eval(d)
    key = Evaluator(name).eval_metric
    assert ours[key] == pytest.approx(float(ref[key]), abs=1e-9)
    small = {"y_pred_pos": pos, "y_pred_neg": neg[:5]}
    if key.startswith("hits@"):  # fewer negatives than K
        assert Evaluator(name).eval(small)[key] == 1.0 == _ogb(name).eval(small)[key]


def test_link_mrr_matches_ogb_torch_path_and_works_on_numpy():
    g = torch.Generator().manual_seed(4)
    pos = torch.randint(0, 5, (100,), generator=g).float()  # many ties
    neg = torch.randint(0, 5, (100, 20), generator=g).float()
    ours = Evaluator("ogbl-citation2").eval({"y_pred_pos": pos, "y_pred_neg": neg})
    ref = _ogb("ogbl-citation2").eval({"y_pred_pos": pos, "y_pred_neg": neg})
    for k in ("mrr_list", "hits@1_list", "hits@3_list", "hits@10_list"):
        assert torch.allclose(ours[k], ref[k])
    # ogb's numpy path fails on NumPy 2 (ndarray.sum has no 'dim'); ours converts at the boundary
    out = Evaluator("ogbl-citation2").eval({"y_pred_pos": pos.numpy(), "y_pred_neg": neg.numpy()})
    assert isinstance(out["mrr_list"], np.ndarray)
    assert np.allclose(out["mrr_list"], ref["mrr_list"].numpy())
    # hand-checked: pos 2 vs negs [3, 2, 1] -> optimistic rank 2, pessimistic 3 -> 2.5
    one = Evaluator("ogbl-wikikg2").eval({"y_pred_pos": torch.tensor([2.0]),
                                          "y_pred_neg": torch.tensor([[3.0, 2.0, 1.0]])})
    assert one["mrr_list"].item() == pytest.approx(1 / 2.5)


def test_roc_auc_and_ap_against_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 1000)
    s = rng.integers(0, 20, 1000).astype(float)
    assert roc_auc(torch.from_numpy(y), torch.from_numpy(s)) == pytest.approx(
        sk.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(torch.from_numpy(y), torch.from_numpy(s)) == pytest.approx(
        sk.average_precision_score(y, s), abs=1e-12)
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc(torch.ones(4), torch.rand(4))


def test_bad_inputs():
    ev = Evaluator("ogbn-arxiv")
    with pytest.raises(KeyError, match="y_pred"):
        ev.eval({"y_true": torch.zeros(3, 1)})
    with pytest.raises(ValueError, match="same shape"):
        ev.eval({"y_true": torch.zeros(3, 1), "y_pred": torch.zeros(4, 1)})
    with pytest.raises(ValueError, match="2-dimensional"):
        ev.eval({"y_true": torch.zeros(3), "y_pred": torch.zeros(3)})
    with pytest.raises(TypeError, match="numpy ndarray or a torch tensor"):
        ev.eval({"y_true": [1, 2], "y_pred": [1, 2]})
    with pytest.raises(ValueError, match="112 tasks"):
        Evaluator("ogbn-proteins").eval({"y_true": torch.zeros(3, 2), "y_pred": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="num_neg"):
        Evaluator("ogbl-citation2").eval({"y_pred_pos": torch.zeros(3),
                                          "y_pred_neg": torch.zeros(4, 2)})


def test_accuracy_and_node_evaluator():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, y) == 0.75
    assert accuracy(logits, y, mask=torch.tensor([True, True, False, False])) == 1.0
    assert accuracy(logits.argmax(-1), y, mask=torch.tensor([2])) == 0.0
    ev = NodeClassificationEvaluator(num_classes=2)
    assert ev.eval({"y_true": y.view(-1, 1), "y_pred": logits}) == {"acc": 0.75}
    with pytest.raises(ValueError, match="4 labels"):
        accuracy(logits[:3], y)
    with pytest.raises(ValueError, match="labels must lie in"):
        accuracy(logits, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="no nodes selected"):
        accuracy(logits, y, mask=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        accuracy(torch.full((4, 2), float("nan")), y)
    with pytest.raises(ValueError, match="boolean mask has 3 entries"):
        accuracy(logits, y, mask=torch.ones(3, dtype=torch.bool))
