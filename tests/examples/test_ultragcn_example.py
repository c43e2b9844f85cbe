"""The UltraGCN leaderboard script: record helpers, shared flags, entry names, and short runs on
a dataset without an authors' config."""
import importlib.util
import math
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("ultragcn_example", ROOT / "examples" / "ultragcn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _have(name):
    from graphkit.datasets import DatasetNotFoundError, get_path

    try:
        get_path(name, download=False)
    except DatasetNotFoundError:
        return False
    return True


def test_trajectory_counts_epochs_trained_and_training_time(example):
    state = dict(epoch_times=[10.0, 20.0, 30.0],
                 history=[dict(epoch=0, test={"recall@20": 0.123456, "ndcg@20": 0.1}),
                          dict(epoch=2, test={"recall@20": 0.2, "ndcg@20": 0.15},
                               valid={"recall@20": 0.3, "ndcg@20": 0.25})])
    assert example._trajectory(state, "test") == [[1, 10.0, 0.1235, 0.1], [3, 60.0, 0.2, 0.15]]


def test_trajectory_of_an_evaluation_without_timing_has_no_time(example):
    # checkpoints from before epoch times were kept: the time column is unknown, not zero
    state = dict(epoch_times=[], history=[dict(epoch=4, valid={"recall@20": 0.3, "ndcg@20": 0.25})])
    assert example._trajectory(state, "valid") == [[5, None, 0.3, 0.25]]


def test_an_overridden_setting_names_the_entry_and_checkpoint_folder(example):
    args = example.parse_args(["--dataset", "Gowalla", "--lr", "1e-3"])
    cfg = example.config_for(args)
    assert cfg["overrides"] == {"lr": 1e-3}
    assert example.variant_key(cfg) == "gowalla-lr0.001"
    assert example.entry_for(args, cfg) == "ultragcn-gowalla-lr0.001"
    args = example.parse_args(["--dataset", "Gowalla", "--lr", "1e-3", "--select", "valid"])
    assert example.entry_for(args, example.config_for(args)) == "ultragcn-gowalla-lr0.001-valid"
    cfg = example.config_for(example.parse_args(["--dataset", "Gowalla", "--lr", "1e-4"]))
    assert example.variant_key(cfg) == "gowalla"  # the authors' own value is no override


def test_shared_flags_spelling_units_and_defaults(example):
    args = example.parse_args([])
    assert (args.dataset, args.select, args.seed, args.epochs) == ("ML-1M", "test", 0, 2000)
    assert args.resume and args.record and args.time_budget is None
    args = example.parse_args(["--select", "valid", "--time-budget", "90", "--no-resume", "--no-record"])
    assert args.time_budget == 90.0 and not args.resume and not args.record  # seconds
    assert example.entry_for(args, example.config_for(args)) == "ultragcn-ml-1m-valid"
    for old in (["--selection", "valid"], ["--resume"]):
        with pytest.raises(SystemExit):
            example.parse_args(old)


def test_every_registered_recommendation_dataset_has_a_config(example):
    names = example.recommendation_datasets()
    assert {"Gowalla", "Yelp2018", "ML-1M", "MovieLens-100K", "LastFM", "Amazon-CDs",
            "Amazon-Electronics"} <= set(names)
    for name in names:
        cfg = example.config_for(example.parse_args(["--dataset", name]))
        assert cfg["name"] == name and cfg["overrides"] == {}
    cds = example.config_for(example.parse_args(["--dataset", "amazoncds"]))  # registry alias
    assert (cds["num_negatives"], cds["lambda_"], cds["patience"]) == (1000, 1.0, 15)  # authors' config
    assert set(cds["paper"]) == {"recall@20", "ndcg@20"}
    ml100k = example.config_for(example.parse_args(["--dataset", "ml-100k"]))
    assert ml100k["paper"] == {} and ml100k["key"] == "movielens-100k"
    with pytest.raises(SystemExit):
        example.parse_args(["--dataset", "Cora"])


@pytest.mark.skipif(not _have("MovieLens-100K"), reason="MovieLens-100K files not available offline")
def test_one_epoch_on_a_dataset_without_a_paper_figure_then_resume(example, tmp_path, capsys):
    from graphkit.engine.records import load_record

    common = ["--dataset", "MovieLens-100K", "--threads", "1", "--out", str(tmp_path / "results"),
              "--checkpoint-dir", str(tmp_path / "ckpt")]
    example.main(common + ["--epochs", "1"])
    record = load_record(tmp_path / "results" / "ultragcn-movielens-100k.json")
    assert record["dataset"] == "MovieLens-100K" and record["runs"] == 1
    for name in ("recall@20", "ndcg@20", "precision@20", "f1@20"):
        m = record["metrics"][name]
        assert m["paper"] is None and m["tolerance"] is None
        assert len(m["values"]) == 1 and 0 < m["values"][0] < 1 and math.isfinite(m["values"][0])
    assert record["extra"]["epochs_trained"] == [1] and record["extra"]["finished"] == [True]
    assert any("no authors' config" in d for d in record["deviations"])
    # resume is on by default: a longer cap continues the finished run's checkpoint ...
    example.main(common + ["--epochs", "2", "--no-record"])
    assert "resumed from" in capsys.readouterr().out
    # ... and --no-resume starts afresh
    example.main(common + ["--epochs", "1", "--no-resume", "--no-record"])
    assert "resumed from" not in capsys.readouterr().out
