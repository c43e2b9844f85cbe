"""The UltraGCN leaderboard script's record helpers (no training)."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("ultragcn_example", ROOT / "examples" / "ultragcn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    cfg = example.config_for(example.parse_args(["--dataset", "Gowalla", "--lr", "1e-3"]))
    assert cfg["overrides"] == {"lr": 1e-3}
    assert example.variant_key(cfg) == "gowalla-lr0.001"
    cfg = example.config_for(example.parse_args(["--dataset", "Gowalla", "--lr", "1e-4"]))
    assert example.variant_key(cfg) == "gowalla"  # the authors' own value is no override
