import json

import pytest
import torch

from graphkit.nas import AutoGNN, RandomSearch, build_model, default_search_space

FAST = dict(epochs=4, patience=2, progress=False)


def _space():
    # cheap choices only, so that every trial takes milliseconds
    space = default_search_space(learned_aggregations=False)
    for name in ("dagnn", "gin", "sage"):
        space.remove_choice("operator", name)
    for h in (64, 128, 256):
        space.remove_choice("hidden", h)
    return space


@pytest.mark.parametrize("cls", [AutoGNN, RandomSearch])
def test_search_returns_a_json_description_that_rebuilds(graph, cls):
    result = cls(_space(), graph, budget=4, seed=0, **FAST).search()
    assert result["trials"] == 4 and len(result["history"]) == 4
    best = json.loads(json.dumps(result["best"]))
    model = build_model(best)
    assert model(graph.x, graph.edge_index).shape == (graph.num_nodes, 3)
    assert result["best_val_acc"] == max(h["val_acc"] for h in result["history"])
    assert [h["best_val_acc"] for h in result["history"]] == sorted(
        h["best_val_acc"] for h in result["history"])
    json.dumps(result)  # the whole result is plain JSON


def test_autognn_keeps_the_best_and_shares(graph):
    result = AutoGNN(_space(), graph, budget=8, seed=1, share_epochs=1, **FAST).search()
    hist = result["history"]
    assert hist[0]["changed"] is None and all(h["changed"] for h in hist[1:])
    shared = [h for h in hist if h["inherited"] and any(s is not None for s in h["inherited"])]
    assert all(h["epochs_run"] <= 1 for h in shared)  # inherited children are fine-tuned briefly
    off = AutoGNN(_space(), graph, budget=3, seed=1, share=False, **FAST).search()
    assert all(h["inherited"] is None for h in off["history"])


def test_selection_never_reads_test_labels(graph):
    a = AutoGNN(_space(), graph, budget=4, seed=0, **FAST).search()
    other = graph.clone()
    test = other.test_mask
    other.y[test] = (other.y[test] + 1) % 3  # different test labels
    b = AutoGNN(_space(), other, budget=4, seed=0, **FAST).search()
    assert [h["val_acc"] for h in a["history"]] == [h["val_acc"] for h in b["history"]]
    assert a["best"] == b["best"]


def test_interrupted_search_resumes_where_it_stopped(graph, tmp_path):
    full = AutoGNN(_space(), graph, budget=6, seed=2, **FAST).search()
    ckpt = str(tmp_path / "search.pt")

    def boom(rec):
        if rec["trial"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        AutoGNN(_space(), graph, budget=6, seed=2, checkpoint=ckpt, on_trial=boom,
                **FAST).search()
    seen = []
    resumed = AutoGNN(_space(), graph, budget=6, seed=2, checkpoint=ckpt,
                      on_trial=lambda r: seen.append(r["trial"]), **FAST).search()
    assert seen == [3, 4, 5]  # trials 0-2 were read back
    strip = lambda h: {k: v for k, v in h.items() if not k.endswith("_s")}  # noqa: E731
    assert [strip(h) for h in resumed["history"]] == [strip(h) for h in full["history"]]
    with pytest.raises(ValueError, match="other settings"):
        AutoGNN(_space(), graph, budget=6, seed=3, checkpoint=ckpt, **FAST).search()
    again = AutoGNN(_space(), graph, budget=2, seed=3, checkpoint=ckpt, resume=False, **FAST)
    assert again.search()["trials"] == 2


def test_bad_input(graph):
    with pytest.raises(ValueError, match="budget must be a positive number of trials"):
        AutoGNN(_space(), graph, budget=0)
    with pytest.raises(ValueError, match="budget must be a positive number of trials"):
        RandomSearch(_space(), graph, budget=0)
    no_val = graph.clone()
    del no_val.val_mask
    with pytest.raises(ValueError, match="no validation mask 'val_mask'"):
        RandomSearch(_space(), no_val, budget=2)
    empty_val = graph.clone()
    empty_val.val_mask = torch.zeros_like(graph.val_mask)
    with pytest.raises(ValueError, match="'val_mask' must be a non-empty boolean mask"):
        AutoGNN(_space(), empty_val, budget=2)
    with pytest.raises(ValueError, match="time_budget"):
        AutoGNN(_space(), graph, budget=2, time_budget=0)
    for budget in (-1, True, 2.5):
        with pytest.raises(ValueError, match="budget must be a positive number of trials"):
            RandomSearch(_space(), graph, budget=budget)
    int_val = graph.clone()
    int_val.val_mask = graph.val_mask.nonzero().view(-1)  # indices, not a mask
    with pytest.raises(ValueError, match="'val_mask' must be a non-empty boolean mask"):
        RandomSearch(_space(), int_val, budget=2)
    no_train = graph.clone()
    del no_train.train_mask
    with pytest.raises(ValueError, match="no 'train_mask'"):
        AutoGNN(_space(), no_train, budget=2)
    with pytest.raises(ValueError, match="search_space must be a SearchSpace"):
        RandomSearch({"operator": {}}, graph, budget=2)


def test_progress_bar_shows_trials_best_and_time_left(graph, capsys):
    RandomSearch(_space(), graph, budget=2, seed=0, epochs=2, patience=1,
                 progress=True).search()
    err = capsys.readouterr().err
    assert "2/2" in err and "best_val=" in err and "left=" in err


def test_time_budget_stops_the_search(graph):
    result = RandomSearch(_space(), graph, budget=1000, seed=0, time_budget=1e-6,
                          **FAST).search()
    assert result["trials"] == 1


@pytest.mark.parametrize("cls", [AutoGNN, RandomSearch])
def test_a_choice_that_fails_to_build_stops_the_search_with_its_name(graph, cls):
    space = _space()

    def broken(i, o, **kw):
        raise RuntimeError("cannot build")

    space.add_choice("operator", "broken", broken)
    for name in list(space.choices("operator")):
        if name != "broken":
            space.remove_choice("operator", name)
    with pytest.raises(ValueError, match="layer 0: operator 'broken' failed to build"):
        cls(space, graph, budget=2, **FAST).search()


class _FailsInForward(torch.nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.lin = torch.nn.Linear(i, o)

    def forward(self, x, edge_index):
        raise RuntimeError("kernel missing")


@pytest.mark.parametrize("cls", [AutoGNN, RandomSearch])
def test_a_choice_that_builds_but_fails_to_train_names_the_child(graph, cls):
    space = _space()
    space.add_choice("operator", "fails", lambda i, o, **kw: _FailsInForward(i, o))
    for name in list(space.choices("operator")):
        if name != "fails":
            space.remove_choice("operator", name)
    with pytest.raises(ValueError, match=r"the child .*\"operator\": \"fails\".* failed to "
                                         r"train: RuntimeError: kernel missing"):
        cls(space, graph, budget=2, **FAST).search()


@pytest.mark.parametrize("cls", [AutoGNN, RandomSearch])
def test_an_empty_search_space_is_refused_by_both_searches(graph, cls):
    from graphkit.nas import SearchSpace

    with pytest.raises(ValueError, match="search space is empty"):
        cls(SearchSpace(), graph, budget=2)
    space = _space()
    for name in list(space.choices("hidden")):
        space.remove_choice("hidden", name)
    with pytest.raises(ValueError, match=r"\['hidden'\] have no choices"):
        cls(space, graph, budget=2)


def test_child_time_caps_every_child_and_trials_report_their_costs(graph):
    result = RandomSearch(_space(), graph, budget=3, seed=0, epochs=50, patience=50,
                          child_time=1e-9, progress=False).search()
    for h in result["history"]:
        # the first epoch ends after the cap: each child stops there, scored on that epoch
        assert h["epochs_run"] == 1 and h["stopped"] == "time budget"
        assert h["train_s"] > 0 and h["build_s"] > 0 and h["train_s"] <= h["time_s"]
    uncapped = RandomSearch(_space(), graph, budget=1, seed=0, epochs=5, patience=50,
                            progress=False).search()
    assert uncapped["history"][0]["epochs_run"] == 5
    auto = AutoGNN(_space(), graph, budget=3, seed=0, child_time=1e-9, **FAST).search()
    assert all(h["share_s"] >= 0 and h["epochs_run"] <= 1 for h in auto["history"])
    with pytest.raises(ValueError, match="child_time must be a positive number"):
        RandomSearch(_space(), graph, budget=2, child_time=0)
