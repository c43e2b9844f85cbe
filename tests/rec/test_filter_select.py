import pytest
import torch

from graphkit.rec.data import InteractionGraph
from graphkit.rec.filter_select import filter_grid, sample_users, select_filter


def clustered(seed=0):
    """Users 0-11 like items 0-9, users 12-23 like items 10-19; 2 items per user held out."""
    gen = torch.Generator().manual_seed(seed)
    train, valid = [], []
    for u in range(24):
        base = 0 if u < 12 else 10
        items = base + torch.randperm(10, generator=gen)[:6]
        train += [(u, int(i)) for i in items[:4]]
        valid += [(u, int(i)) for i in items[4:]]
    return InteractionGraph(num_users=24, num_items=20, train=torch.tensor(train).t(),
                            valid=torch.tensor(valid).t())


def test_grids_around_the_given_setting():
    assert [g["alpha"] for g in filter_grid("gfcf", {"rank": 4})] == [0.0, 0.1, 0.3, 0.5, 1.0]
    assert all(g["rank"] == 4 for g in filter_grid("gfcf", {"rank": 4}))
    bspm = filter_grid("bspm", {"sharpen_time": 1.0, "rank": 4})
    assert len(bspm) == 9 and {g["sharpen_time"] for g in bspm} == {0.6, 1.0, 1.4}
    assert {g["beta"] for g in bspm} == {0.1, 0.2, 0.3}  # the model's default beta 0.2, scaled
    assert [g["coefficients"] for g in filter_grid("polyfilter")][1] == [0.0, 2.0, -1.0]
    with pytest.raises(ValueError, match="no validation grid for model 'lightgcn'"):
        filter_grid("lightgcn")


def test_select_returns_the_best_row_and_reuses_the_singular_vectors(monkeypatch):
    import graphkit.nn.models.gf_cf as gf_cf_module

    graph = clustered()
    calls = []
    real = gf_cf_module.top_right_singular_vectors
    monkeypatch.setattr(gf_cf_module, "top_right_singular_vectors",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    grid = filter_grid("gfcf", {"rank": 3})
    lines = []
    best, rows, seconds = select_filter("gfcf", graph, grid, log=lines.append)
    assert len(rows) == 5 and len(lines) == 5 and seconds >= 0
    assert len(calls) == 1  # alpha = 0 needs none; the first alpha > 0 computes them, the rest reuse them
    top = max(r["recall@20"] for r in rows)
    assert best == next(r["settings"] for r in rows if r["recall@20"] == top)  # ties keep the first
    assert rows[0]["recall@20"] > 0.5  # the clusters are recovered


def test_sampled_users_are_seeded_and_sorted():
    graph = clustered()
    a, b = sample_users(graph.valid, 5, seed=1), sample_users(graph.valid, 5, seed=1)
    assert torch.equal(a, b) and a.numel() == 5 and torch.equal(a, a.sort().values)
    assert torch.equal(sample_users(graph.valid, 0), torch.arange(24))
    best, rows, _ = select_filter("polyfilter", graph, filter_grid("polyfilter"), users=a)
    assert len(rows) == 4 and best in [r["settings"] for r in rows]


def test_bad_input():
    graph = clustered()
    no_valid = InteractionGraph(num_users=24, num_items=20, train=graph.train)
    with pytest.raises(ValueError, match="needs a validation part"):
        select_filter("gfcf", no_valid, filter_grid("gfcf", {"rank": 3}))
    with pytest.raises(ValueError, match="grid is empty"):
        select_filter("gfcf", graph, [])
    with pytest.raises(ValueError, match="is a trained model"):
        select_filter("mf", graph, [{"embedding_dim": 4}])
    with pytest.raises(ValueError, match="monitor 'hit@20' is not among"):
        select_filter("gfcf", graph, [{"rank": 3}], monitor="hit@20")
    with pytest.raises(ValueError, match="'alpha' must be a non-negative finite number"):
        select_filter("gfcf", graph, [{"rank": 3, "alpha": -1.0}])
