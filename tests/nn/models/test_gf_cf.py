import json
import math

import pytest
import torch

import graphkit.nn.models.gf_cf as gf_cf_module
from graphkit.nn.models import GFCF, Recommender, create_recommender, get_recommender


def interactions(num_users=7, num_items=9, seed=0):
    """A small random 0/1 matrix with an isolated user (3) and an isolated item (5)."""
    gen = torch.Generator().manual_seed(seed)
    r = (torch.rand(num_users, num_items, generator=gen) < 0.45).double()
    r[3] = 0
    r[:, 5] = 0
    return r


def dense_reference(r, alpha, rank):
    du, di = r.sum(1), r.sum(0)
    du_isqrt = torch.where(du > 0, du.clamp(min=1).rsqrt(), torch.zeros_like(du))
    di_isqrt = torch.where(di > 0, di.clamp(min=1).rsqrt(), torch.zeros_like(di))
    rn = du_isqrt[:, None] * r * di_isqrt
    p = rn.t() @ rn
    v = torch.linalg.svd(rn).Vh[:rank].t()
    ideal = di_isqrt[:, None] * (v @ v.t()) * di.sqrt()
    return r @ p + alpha * r @ ideal


@pytest.mark.parametrize("item_item", ["sparse", "dense"])
def test_scores_equal_the_dense_formula(item_item):
    r = interactions()
    model = GFCF(7, 9, alpha=0.3, rank=3, item_item=item_item).set_graph(r.nonzero().t())
    assert (model._dense_p is not None) == (item_item == "dense")
    scores = model.score_all(torch.arange(7))
    torch.testing.assert_close(scores.double(), dense_reference(r, 0.3, 3), atol=1e-5, rtol=1e-5)
    # the isolated user and the isolated item score exactly 0, with no NaN anywhere
    assert torch.isfinite(scores).all() and scores[3].abs().max() == 0 and scores[:, 5].abs().max() == 0


def test_sparse_input_duplicates_and_linear_only():
    r = interactions(seed=1)
    pairs = r.nonzero().t()
    doubled = torch.cat([pairs, pairs[:, :4]], dim=1)  # duplicates count once
    a = GFCF(7, 9, alpha=0.0, rank=3).set_graph(doubled)
    b = GFCF(7, 9, alpha=0.0, rank=0).set_graph(r.to_sparse())
    assert a.item_vectors.numel() == 0  # no SVD when the ideal term is off
    ref = dense_reference(r, 0.0, 1)
    torch.testing.assert_close(a.score_all(torch.arange(7)).double(), ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(b.score_all(torch.arange(7)).double(), ref, atol=1e-6, rtol=1e-6)


def test_memory_budget_splits_blocks_and_refuses_one_user_that_does_not_fit():
    r = interactions()
    full = GFCF(7, 9, rank=3).set_graph(r.nonzero().t())
    per_user_mb = (3 * 9 + 7 + 2 * 3) * 4 / 2 ** 20
    small = GFCF(7, 9, rank=3, memory_budget_mb=2.5 * per_user_mb).set_graph(r.nonzero().t())
    assert small.block_size() == 2 and small._dense_p is None
    users = torch.tensor([6, 0, 3, 2, 2])
    torch.testing.assert_close(small.score_all(users), full.score_all(users), atol=1e-6, rtol=0)
    tiny = GFCF(7, 9, rank=3, memory_budget_mb=0.5 * per_user_mb).set_graph(r.nonzero().t())
    with pytest.raises(ValueError, match="memory_budget_mb=.* too small for one user"):
        tiny.score_all(torch.tensor([0]))
    with pytest.raises(ValueError, match="item_item='dense' needs"):
        GFCF(7, 9, rank=3, memory_budget_mb=1e-6, item_item="dense").set_graph(r.nonzero().t())


def test_registry_recommend_and_model_args():
    assert get_recommender("gfcf") is GFCF and not GFCF.trainable and issubclass(GFCF, Recommender)
    r = interactions()
    model = create_recommender("gfcf", 7, 9, alpha=0.5, rank=2).set_graph(r.nonzero().t())
    items = model.recommend(torch.arange(7), k=2)
    seen = r.bool()
    rows = [0, 1, 2, 4, 5, 6]
    assert not seen[rows].gather(1, items[rows]).any()  # training items are masked
    assert items[3].tolist() == [0, 1]  # the isolated user: all scores 0, ties by item id
    args = json.loads(json.dumps(model.model_args))
    assert args == dict(num_users=7, num_items=9, alpha=0.5, rank=2, svd="arpack", svd_niter=8,
                        memory_budget_mb=1024.0, item_item="auto")
    assert repr(model) == "GFCF(7, 9, alpha=0.5, rank=2)"
    with pytest.raises(NotImplementedError, match="trainable=False"):
        model.loss(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))


def test_state_dict_round_trip_reuses_the_singular_vectors(monkeypatch):
    r = interactions()
    pairs = r.nonzero().t()
    model = GFCF(7, 9, rank=3).set_graph(pairs)
    state = model.state_dict()
    assert sorted(state) == ["graph_key", "item_vectors"] and state["item_vectors"].shape == (9, 3)
    clone = GFCF(**model.model_args)
    clone.load_state_dict(state)

    def no_svd(*args, **kwargs):
        raise AssertionError("the SVD was recomputed")

    monkeypatch.setattr(gf_cf_module, "top_right_singular_vectors", no_svd)
    clone.set_graph(pairs.flip(1))  # same pairs, other order: same graph
    assert torch.equal(clone.score_all(torch.arange(7)), model.score_all(torch.arange(7)))
    other = pairs[:, 1:]  # another graph: the stored vectors must not be reused
    with pytest.raises(AssertionError, match="recomputed"):
        clone.set_graph(other)
    # cached matrices follow .double()
    model.double()
    assert model.item_vectors.dtype == torch.float64
    torch.testing.assert_close(model.score_all(torch.arange(7)).double(), dense_reference(r, 0.3, 3),
                               atol=1e-5, rtol=1e-5)


def test_lowrank_solver_matches_arpack_on_a_small_matrix():
    r = interactions(20, 15, seed=3)
    pairs = r.nonzero().t()
    exact = GFCF(20, 15, rank=4).set_graph(pairs)
    approx = GFCF(20, 15, rank=4, svd="lowrank", svd_niter=4).set_graph(pairs)
    torch.testing.assert_close(approx.score_all(torch.arange(20)), exact.score_all(torch.arange(20)),
                               atol=1e-4, rtol=1e-4)


def test_bad_input():
    r = interactions()
    with pytest.raises(ValueError, match="rank=9 is too large for a 7 x 9"):
        GFCF(7, 9, rank=9)
    with pytest.raises(ValueError, match="'rank' must be an integer >= 0"):
        GFCF(7, 9, rank=-1)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="'alpha' must be a non-negative finite number"):
            GFCF(7, 9, alpha=bad, rank=2)
    with pytest.raises(ValueError, match="'memory_budget_mb' must be a positive"):
        GFCF(7, 9, memory_budget_mb=0)
    with pytest.raises(ValueError, match="'item_item'"):
        GFCF(7, 9, item_item="huge")
    with pytest.raises(ValueError, match="'svd'"):
        GFCF(7, 9, rank=2, svd="qr")
    with pytest.raises(RuntimeError, match="set_graph"):
        GFCF(7, 9, rank=2).score_all(torch.tensor([0]))
    model = GFCF(7, 9, rank=2)
    with pytest.raises(ValueError, match="no interactions"):
        model.set_graph(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="item ids must lie in"):
        model.set_graph(torch.tensor([[0], [9]]))
    model.set_graph(r.nonzero().t())
    with pytest.raises(ValueError, match="'users' contains id 7"):
        model.score_all(torch.tensor([7]))


@pytest.mark.parametrize("scatter_cost", [0, 10 ** 9])  # the raw rows' first product: scattered / streamed
def test_cache_panels_and_wide_ideal_blocks_give_the_same_scores(scatter_cost, monkeypatch):
    # the sparse products run on panels of 3 users, the ideal term on wider blocks of them
    monkeypatch.setattr(GFCF, "_panel_width", lambda self: 3)
    monkeypatch.setattr(gf_cf_module, "_SCATTER_COST", scatter_cost)
    r = interactions(40, 30, seed=4)
    model = GFCF(40, 30, alpha=0.3, rank=5, item_item="sparse").set_graph(r.nonzero().t())
    panel, wide = model._blocking()
    assert panel == 3 and wide > panel and wide % panel == 0
    users = torch.cat([torch.randperm(40, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 3, 0])])
    ref = dense_reference(r, 0.3, 5)[users]
    torch.testing.assert_close(model.score_all(users).double(), ref, atol=1e-5, rtol=1e-5)
    # a budget that fits the panel but not a wider block: the ideal term is then per panel
    per_user_mb = model._work_bytes() / 2 ** 20
    narrow = GFCF(40, 30, alpha=0.3, rank=5, item_item="sparse", memory_budget_mb=3.5 * per_user_mb)
    narrow.load_state_dict(model.state_dict())
    narrow.set_graph(r.nonzero().t())
    assert narrow._blocking() == (3, 3)
    torch.testing.assert_close(narrow.score_all(users).double(), ref, atol=1e-5, rtol=1e-5)
    model.double()  # the cached vectors follow .double(); scores stay float32
    torch.testing.assert_close(model.score_all(users).double(), ref, atol=1e-5, rtol=1e-5)


def test_dense_svd_solver_matches_arpack_and_checks_its_memory():
    r = interactions(20, 15, seed=3)
    pairs = r.nonzero().t()
    exact = GFCF(20, 15, rank=4).set_graph(pairs)
    dense = GFCF(20, 15, rank=4, svd="dense").set_graph(pairs)
    torch.testing.assert_close(dense.score_all(torch.arange(20)), exact.score_all(torch.arange(20)),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="svd='dense' needs about .* MB .* use svd='arpack'"):
        GFCF(20, 15, rank=4, svd="dense", memory_budget_mb=1e-3).set_graph(pairs)


@pytest.mark.parametrize("budget", [-1.0, math.nan, math.inf, "1024"])
def test_bad_memory_budget(budget):
    with pytest.raises(ValueError, match="'memory_budget_mb' must be"):
        GFCF(7, 9, rank=2, memory_budget_mb=budget)
