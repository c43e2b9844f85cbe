import json
import math

import pytest
import torch

import graphkit.nn.models.gf_cf as gf_cf_module
from graphkit.nn.models import BSPM, create_recommender, get_recommender
from graphkit.nn.models.bspm import integrate


def interactions(num_users=7, num_items=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = (torch.rand(num_users, num_items, generator=gen) < 0.45).double()
    r[3] = 0  # a user without interactions
    r[:, 5] = 0  # an item without interactions
    return r


def dense_parts(r, rank):
    du, di = r.sum(1), r.sum(0)
    du_isqrt = torch.where(du > 0, du.clamp(min=1).rsqrt(), torch.zeros_like(du))
    di_isqrt = torch.where(di > 0, di.clamp(min=1).rsqrt(), torch.zeros_like(di))
    rn = du_isqrt[:, None] * r * di_isqrt
    v = torch.linalg.svd(rn).Vh[:rank].t()
    return rn.t() @ rn, di_isqrt[:, None] * (v @ v.t()) * di.sqrt()


def rk4_step(a, h):
    """The degree-4 Taylor polynomial of exp(h A): one RK4 step of dx/dt = x A."""
    eye = torch.eye(a.size(0), dtype=a.dtype)
    return eye + h * a + (h * a) @ (h * a) / 2 + torch.linalg.matrix_power(h * a, 3) / 6 \
        + torch.linalg.matrix_power(h * a, 4) / 24


@pytest.mark.parametrize("merge", ["early", "late"])
def test_paper_setting_equals_the_dense_formula(merge):
    r = interactions()
    p, f = dense_parts(r, 3)
    model = BSPM(7, 9, merge=merge, rank=3, item_item="sparse").set_graph(r.nonzero().t())
    blurred, ideal = r @ p, 0.2 * r @ f  # one Euler step from r, T = 1
    sharpen = rk4_step(-p, 2.5)
    ref = (blurred + ideal) @ sharpen if merge == "early" else blurred @ sharpen + ideal
    scores = model.score_all(torch.arange(7))
    torch.testing.assert_close(scores.double(), ref, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(scores).all() and scores[3].abs().max() == 0 and scores[:, 5].abs().max() == 0


def test_time_point_mean_and_several_euler_steps_dense_and_sparse():
    r = interactions(seed=2)
    p, f = dense_parts(r, 2)
    eye = torch.eye(9, dtype=torch.double)
    kw = dict(merge="early", beta=0.3, rank=2, blur_time=1.0, blur_steps=2, sharpen_time=1.2,
              sharpen_steps=3, sharpen_solver="euler", time_point_mean=True)
    b1 = r @ (eye + 0.5 * (p - eye))
    b2 = b1 @ (eye + 0.5 * (p - eye))
    s = b2 + 0.3 * r @ f
    states = [b1, b2]
    for _ in range(3):
        s = s @ (eye - 0.4 * p)
        states.append(s)
    ref = sum(states) / len(states)
    for item_item in ("sparse", "dense"):
        model = BSPM(7, 9, item_item=item_item, **kw).set_graph(r.nonzero().t())
        torch.testing.assert_close(model.score_all(torch.arange(7)).double(), ref, atol=1e-5, rtol=1e-5)


def test_rk4_converges_to_the_matrix_exponential():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=gen, dtype=torch.double) / 3
    x = torch.randn(5, 4, generator=gen, dtype=torch.double)
    exact = torch.linalg.matrix_exp(a) @ x
    out = integrate(lambda z: a @ z, x, 1.0, 20, "rk4")
    torch.testing.assert_close(out, exact, atol=1e-6, rtol=1e-6)
    err10 = (integrate(lambda z: a @ z, x, 1.0, 10, "rk4") - exact).abs().max()
    assert 12 < err10 / (out - exact).abs().max() < 20  # fourth order: halving h divides the error by ~16
    coarse = integrate(lambda z: a @ z, x, 1.0, 20, "euler")
    assert (coarse - exact).abs().max() > 1e-4  # Euler is only first order


def test_sharpening_off_and_no_ideal_term():
    r = interactions()
    p, f = dense_parts(r, 3)
    off = BSPM(7, 9, rank=3, sharpen=False).set_graph(r.nonzero().t())
    torch.testing.assert_close(off.score_all(torch.arange(7)).double(), r @ p + 0.2 * r @ f, atol=1e-5, rtol=1e-5)
    plain = BSPM(7, 9, beta=0.0, rank=3).set_graph(r.nonzero().t())
    assert plain.item_vectors.numel() == 0
    torch.testing.assert_close(plain.score_all(torch.arange(7)).double(), r @ p @ rk4_step(-p, 2.5),
                               atol=1e-5, rtol=1e-5)


def test_registry_model_args_and_state_dict():
    assert get_recommender("bspm") is BSPM and not BSPM.trainable
    r = interactions()
    model = create_recommender("bspm", 7, 9, merge="late", rank=2).set_graph(r.nonzero().t())
    args = json.loads(json.dumps(model.model_args))
    clone = BSPM(**args)
    clone.load_state_dict(model.state_dict())
    clone.set_graph(r.nonzero().t())
    assert torch.equal(clone.score_all(torch.arange(7)), model.score_all(torch.arange(7)))
    assert model.recommend(torch.tensor([3]), k=3).tolist() == [[0, 1, 2]]  # no history: ties by id
    assert repr(model) == "BSPM(7, 9, merge='late', beta=0.2, rank=2, T_b=1, T_s=2.5)"


@pytest.mark.parametrize("kwargs, message", [
    (dict(sharpen_time=-1.0), "'sharpen_time' must be a non-negative finite number"),
    (dict(blur_time=math.nan), "'blur_time' must be a non-negative finite number"),
    (dict(beta=-0.2), "'beta' must be a non-negative finite number"),
    (dict(beta=math.nan), "'beta' must be a non-negative finite number"),
    (dict(sharpen_steps=0), "'sharpen_steps' must be an integer >= 1"),
    (dict(sharpen_solver="dopri5"), "'sharpen_solver' must be one of"),
    (dict(merge="middle"), "'merge' must be 'early' or 'late'"),
    (dict(sharpen="yes"), "'sharpen' must be True or False"),
    (dict(rank=448), "rank=448 is too large for a 7 x 9"),
])
def test_bad_input(kwargs, message):
    kwargs = {"rank": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        BSPM(7, 9, **kwargs)


@pytest.mark.parametrize("scatter_cost", [0, 10 ** 9])
@pytest.mark.parametrize("merge", ["early", "late"])
def test_cache_panels_and_wide_ideal_blocks_give_the_same_scores(merge, scatter_cost, monkeypatch):
    monkeypatch.setattr(BSPM, "_panel_width", lambda self: 4)
    monkeypatch.setattr(gf_cf_module, "_SCATTER_COST", scatter_cost)
    r = interactions(30, 25, seed=5)
    p, f = dense_parts(r, 4)
    model = BSPM(30, 25, merge=merge, rank=4, item_item="sparse").set_graph(r.nonzero().t())
    assert model._blocking()[0] == 4 and model._blocking()[1] > 4
    blurred, ideal = r @ p, 0.2 * r @ f
    sharpen = rk4_step(-p, 2.5)
    ref = (blurred + ideal) @ sharpen if merge == "early" else blurred @ sharpen + ideal
    torch.testing.assert_close(model.score_all(torch.arange(30)).double(), ref, atol=1e-5, rtol=1e-5)


def test_memory_budget_too_small_for_one_user():
    r = interactions()
    model = BSPM(7, 9, rank=2, memory_budget_mb=1e-5).set_graph(r.nonzero().t())
    with pytest.raises(ValueError, match="memory_budget_mb=1e-05 is too small for one user"):
        model.score_all(torch.tensor([0, 1]))
