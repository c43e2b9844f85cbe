"""The LightGCN leaderboard script's entry names (no training)."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("lightgcn_example", ROOT / "examples" / "lightgcn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_names_say_what_differs_from_the_paper():
    entry_for = _example().entry_for
    assert entry_for("Gowalla", fast=False, changed={}, select="test") == "lightgcn-gowalla"
    assert entry_for("ML-1M", fast=True, changed={}, select="valid") == "lightgcn-ml-1m-fast-valid"
    assert entry_for("Gowalla", fast=False, changed={"negative_candidates": 64},
                     select="valid") == "lightgcn-gowalla-neg64-valid"
    assert entry_for("Yelp2018", fast=False, changed={"lr": 5e-4, "num_layers": 2},
                     select="test") == "lightgcn-yelp2018-lr0.0005-layers2"
