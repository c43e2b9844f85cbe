import json

import pytest


def test_defaults_search_the_full_space_with_capped_children(load_example):
    ex = load_example("autognn")
    args = ex.parse_args(["--dataset", "Cora"])
    assert args.exclude == [] and args.entry == "autognn-cora"
    assert (args.child_epochs, args.child_patience, args.child_time) == (100, 20, 12.0)
    assert (args.epochs, args.patience, args.runs) == (400, 100, 10)
    space = ex.make_space(args)
    assert "lcm" in space.choices("aggregation") and 256 in space.choices("hidden")
    assert ex.parse_args(["--dataset", "CiteSeer", "--method", "random"]).entry \
        == "randomsearch-citeseer"


def test_exclude_and_bad_flags(load_example):
    ex = load_example("autognn")
    space = ex.make_space(ex.parse_args(["--exclude", "aggregation=lcm", "--exclude",
                                         "hidden=256"]))
    assert "lcm" not in space.choices("aggregation") and 256 not in space.choices("hidden")
    with pytest.raises(ValueError, match="has no choice 'nope'"):
        ex.make_space(ex.parse_args(["--exclude", "operator=nope"]))
    with pytest.raises(ValueError, match="COMPONENT=CHOICE"):
        ex.make_space(ex.parse_args(["--exclude", "operator"]))
    with pytest.raises(ValueError, match="--child-time must be >= 0"):
        ex.parse_args(["--child-time", "-1"])


def test_search_cost_splits_training_from_the_rest(load_example):
    ex = load_example("autognn")
    hist = [dict(train_s=2.0, build_s=0.1, share_s=0.0, epochs_run=30, stopped="early stopping",
                 inherited=[None, None]),
            dict(train_s=6.0, build_s=0.1, share_s=0.05, epochs_run=12, stopped="time budget",
                 inherited=[0, None]),
            dict(train_s=0.0, build_s=0.0, share_s=0.0, epochs_run=0, stopped="cached",
                 inherited=None)]
    cost = ex.search_cost({"history": hist, "elapsed_s": 10.0})
    assert cost == dict(trials=3, children_trained=2, training_fraction=0.8,
                        median_child_s=6.0, children_capped=1, children_inherited=1,
                        build_s=0.2, sharing_s=0.05)


def test_plot_curves_draws_every_search_record(load_example, tmp_path):
    pytest.importorskip("matplotlib")
    ex = load_example("autognn")
    for entry, ds in (("autognn-cora", "Cora"), ("randomsearch-cora", "Cora"),
                      ("autognn-citeseer", "CiteSeer")):
        rec = {"entry": entry, "dataset": ds, "metrics": {"accuracy": {"mean": 80.0}},
               "extra": {"search_curve": [[0, 1.0, 70.0, 70.0], [1, 2.0, 75.0, 75.0]]}}
        (tmp_path / f"{entry}.json").write_text(json.dumps(rec))
    out = tmp_path / "curves.png"
    ex.plot_curves(str(tmp_path), str(out))
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="no autognn-"):
        ex.plot_curves(str(tmp_path / "nothing"), str(tmp_path / "x.png"))
