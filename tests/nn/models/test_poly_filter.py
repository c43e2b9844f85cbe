import json
import math

import pytest
import torch

import graphkit.nn.models.gf_cf as gf_cf_module
from graphkit.nn.models import PolyFilter, create_recommender, get_recommender


def interactions(num_users=7, num_items=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = (torch.rand(num_users, num_items, generator=gen) < 0.45).double()
    r[3] = 0
    r[:, 5] = 0
    return r


def item_item(r):
    du, di = r.sum(1), r.sum(0)
    du_isqrt = torch.where(du > 0, du.clamp(min=1).rsqrt(), torch.zeros_like(du))
    di_isqrt = torch.where(di > 0, di.clamp(min=1).rsqrt(), torch.zeros_like(di))
    rn = du_isqrt[:, None] * r * di_isqrt
    return rn.t() @ rn


@pytest.mark.parametrize("coefficients", [[0.0, 2.0, -1.0], [0.5, 1.0], [0.0, 3.0, -3.0, 1.0], [1.0]])
@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_scores_equal_the_dense_polynomial(coefficients, mode):
    r = interactions()
    p = item_item(r)
    ref = sum(c * r @ torch.linalg.matrix_power(p, k) for k, c in enumerate(coefficients))
    model = PolyFilter(7, 9, coefficients=coefficients, item_item=mode).set_graph(r.nonzero().t())
    scores = model.score_all(torch.arange(7))
    torch.testing.assert_close(scores.double(), ref, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(scores).all() and scores[3].abs().max() == 0


def test_needs_no_svd_registry_and_model_args():
    assert get_recommender("polyfilter") is PolyFilter and not PolyFilter.trainable
    r = interactions()
    model = create_recommender("polyfilter", 7, 9, coefficients=(0, 1, 0.0)).set_graph(r.nonzero().t())
    assert model.coefficients == [0.0, 1.0]  # trailing zeros dropped
    assert model.item_vectors.numel() == 0 and sorted(model.state_dict()) == ["graph_key", "item_vectors"]
    args = json.loads(json.dumps(model.model_args))
    clone = PolyFilter(**args).set_graph(r.nonzero().t())
    assert torch.equal(clone.score_all(torch.arange(7)), model.score_all(torch.arange(7)))
    assert repr(model) == "PolyFilter(7, 9, coefficients=[0.0, 1.0])"
    # the budget only changes how users are blocked
    tiny = PolyFilter(7, 9, memory_budget_mb=1.5e-4, item_item="sparse").set_graph(r.nonzero().t())
    assert tiny.block_size() == 1
    torch.testing.assert_close(tiny.score_all(torch.arange(7)), PolyFilter(7, 9).set_graph(
        r.nonzero().t()).score_all(torch.arange(7)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("coefficients, message", [
    ([], "non-empty sequence"),
    ("012", "non-empty sequence"),
    ([0.0, math.nan], r"coefficients\[1\] must be a finite number"),
    ([math.inf], r"coefficients\[0\] must be a finite number"),
    ([0.0, 0.0], "all zero"),
])
def test_bad_coefficients(coefficients, message):
    with pytest.raises(ValueError, match=message):
        PolyFilter(7, 9, coefficients=coefficients)


@pytest.mark.parametrize("scatter_cost", [0, 10 ** 9])
def test_cache_panels_give_the_same_scores(scatter_cost, monkeypatch):
    monkeypatch.setattr(PolyFilter, "_panel_width", lambda self: 4)
    monkeypatch.setattr(gf_cf_module, "_SCATTER_COST", scatter_cost)
    r = interactions(30, 25, seed=6)
    p = item_item(r)
    coefficients = [0.5, 2.0, -1.0]
    ref = sum(c * r @ torch.linalg.matrix_power(p, k) for k, c in enumerate(coefficients))
    model = PolyFilter(30, 25, coefficients=coefficients, item_item="sparse").set_graph(r.nonzero().t())
    assert model._blocking() == (4, 4)
    torch.testing.assert_close(model.score_all(torch.arange(30)).double(), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="too small for one user"):
        PolyFilter(30, 25, memory_budget_mb=1e-6).set_graph(r.nonzero().t()).score_all(torch.tensor([0]))
