"""The LightGCN leaderboard script: shared flags, entry names, and a one-epoch run on a dataset
without a paper figure."""
import importlib.util
import json
import math
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("lightgcn_example", ROOT / "examples" / "lightgcn.py")
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


def test_entry_names_say_what_differs_from_the_paper(example):
    entry_for = example.entry_for
    assert entry_for("Gowalla", fast=False, changed={}, select="test") == "lightgcn-gowalla"
    assert entry_for("ML-1M", fast=True, changed={}, select="valid") == "lightgcn-ml-1m-fast-valid"
    assert entry_for("Gowalla", fast=False, changed={"negative_candidates": 64},
                     select="valid") == "lightgcn-gowalla-neg64-valid"
    assert entry_for("Yelp2018", fast=False, changed={"lr": 5e-4, "num_layers": 2},
                     select="test") == "lightgcn-yelp2018-lr0.0005-layers2"
    assert entry_for("MovieLens-100K", fast=False, changed={}, select="test") == "lightgcn-movielens-100k"


def test_shared_flags_spelling_units_and_defaults(example):
    args, changed, _ = example.parse_args([])
    assert (args.dataset, args.select, args.seed, args.epochs) == ("ML-1M", "test", 2020, 1000)
    assert args.resume and args.record and args.time_budget is None and changed == {}
    args, changed, _ = example.parse_args(["--dataset", "ml-100k", "--select", "valid", "--time-budget", "90",
                                           "--no-resume", "--no-record", "--negative-candidates", "8"])
    assert args.dataset == "MovieLens-100K"  # registry aliases are accepted
    assert args.time_budget == 90.0 and not args.resume and not args.record
    assert changed == {"negative_candidates": 8}
    args, changed, _ = example.parse_args(["--fast"])
    assert (args.batch_size, args.lr, changed) == (8192, 5e-3, {})


def test_every_registered_recommendation_dataset_is_accepted(example):
    names = example.recommendation_datasets()
    assert {"Gowalla", "Yelp2018", "ML-1M", "MovieLens-100K", "LastFM", "Amazon-CDs",
            "Amazon-Electronics"} <= set(names)
    for name in names:
        assert example.parse_args(["--dataset", name])[0].dataset == name
    with pytest.raises(SystemExit):
        example.parse_args(["--dataset", "Cora"])  # registered, but not a recommendation dataset
    with pytest.raises(SystemExit):
        example.parse_args(["--selection", "valid"])  # the old spelling is gone


@pytest.mark.skipif(not _have("MovieLens-100K"), reason="MovieLens-100K files not available offline")
def test_one_epoch_on_a_dataset_without_a_paper_figure(example, tmp_path):
    from graphkit.engine.records import load_record

    rc = example.main(["--dataset", "MovieLens-100K", "--epochs", "1", "--eval-every", "1", "--threads", "1",
                       "--select", "valid", "--out", str(tmp_path / "results"),
                       "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert rc == 0
    path = tmp_path / "results" / "lightgcn-movielens-100k-valid.json"
    record = load_record(path)  # schema-checked, entry id equals the file name
    assert record["dataset"] == "MovieLens-100K" and record["runs"] == 1
    for name in ("recall@20", "ndcg@20"):
        m = record["metrics"][name]
        assert m["paper"] is None and m["tolerance"] is None
        assert len(m["values"]) == 1 and 0 < m["values"][0] < 1 and math.isfinite(m["values"][0])
    assert record["extra"]["per_run"][0]["epochs_run"] == 1
    assert any("no published LightGCN figure" in d for d in record["deviations"])
    assert json.loads(path.read_text())["extra"]["hyper_parameters"]["time_budget"] is None


def test_scaled_recipe_flag_entry_and_refusals(example):
    from types import SimpleNamespace

    args, changed, _ = example.parse_args(["--recipe", "scaled", "--select", "valid"])
    assert args.recipe == "scaled" and changed == {}
    assert example.entry_for("ML-1M", fast=False, changed=changed, select="valid",
                             recipe=args.recipe) == "lightgcn-ml-1m-scaled-valid"
    assert example.entry_for("Gowalla", fast=False, changed={"negative_candidates": 8}, select="test",
                             recipe="scaled") == "lightgcn-gowalla-scaled-neg8"
    assert example.parse_args([])[0].recipe == "paper"  # the paper recipe stays the default
    for extra in (["--lr", "2e-3"], ["--batch-size", "8192"], ["--fast"]):
        with pytest.raises(SystemExit):
            example.parse_args(["--recipe", "scaled", *extra])
    # the threshold is removed: ML-1M's validation split (716,282 pairs) gets m = 3, not the paper recipe
    recipe = example.scaled_recipe(SimpleNamespace(num_train=716_282, num_users=6_022, num_items=3_043))
    assert (recipe.name, recipe.scale, recipe.batch_size, recipe.steps_per_epoch) == ("scaled", 3, 6144, 117)
    assert recipe.lr == pytest.approx(1e-3 * math.sqrt(3))


@pytest.mark.skipif(not _have("MovieLens-100K"), reason="MovieLens-100K files not available offline")
def test_scaled_recipe_states_batch_lr_and_steps_in_the_record(example, tmp_path, capsys):
    from graphkit.engine.records import load_record

    rc = example.main(["--dataset", "MovieLens-100K", "--recipe", "scaled", "--epochs", "1", "--eval-every", "1",
                       "--threads", "1", "--select", "valid", "--out", str(tmp_path / "results"),
                       "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert rc == 0
    assert "recipe: " in capsys.readouterr().out  # the recipe's describe() line
    record = load_record(tmp_path / "results" / "lightgcn-movielens-100k-scaled-valid.json")
    recipe = record["extra"]["per_run"][0]["recipe"]
    # ~80k pairs: m = 1, so the forced recipe is the paper's batch and lr, said as such
    assert (recipe["scale"], recipe["batch_size"], recipe["lr"]) == (1, 2048, 1e-3)
    assert recipe["steps_per_epoch"] == math.ceil(recipe["num_train"] / 2048)
    [text] = [d for d in record["deviations"] if d.startswith("scaled recipe")]
    assert "batch 2048 = 1 x 2048" in text and f"{recipe['steps_per_epoch']} steps per epoch" in text
    assert record["extra"]["hyper_parameters"]["recipe"] == "scaled"
