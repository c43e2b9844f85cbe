import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphkit.cli import main
from graphkit.rec.io import load_model_dir


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """Two taste clusters: users u0..u19 like items A*, users u20..u39 like items B*."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        group = "A" if u < 20 else "B"
        for i in rng.choice(15, size=8, replace=False):
            rows.append((f"u{u}", f"{group}{i}", int(rng.integers(3, 6)), int(rng.integers(0, 10**6))))
    path = tmp_path_factory.mktemp("data") / "events.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating", "ts"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(events, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    code = main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--time-col", "ts", "--model", "lightgcn", "--epochs", "20", "--eval-every", "5",
                 "--batch-size", "256", "--lr", "0.01", "--embedding-dim", "16", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    return out


def test_train_writes_a_complete_model_dir(model_dir):
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["model"] == "lightgcn" and meta["split"] == "temporal"
    assert meta["test_metrics"]["recall@20"] > 0
    model, graph, _ = load_model_dir(str(model_dir))
    assert graph.num_users == 40 and graph.valid is not None
    assert (model_dir / "history.jsonl").exists()


def test_recommend_learns_the_clusters_and_masks_seen(model_dir, tmp_path, capsys):
    out = tmp_path / "recs.csv"
    assert main(["rec", "recommend", "--model-dir", str(model_dir), "--users", "u1", "u25", "nobody",
                 "--k", "5", "--out", str(out)]) == 0
    recs = pd.read_csv(out)
    assert set(recs["user"]) == {"u1", "u25"} and (recs.groupby("user").size() == 5).all()
    assert "unknown user" in capsys.readouterr().err
    # recommendations follow the user's cluster
    assert (recs[recs.user == "u1"]["item"].str[0] == "A").mean() >= 0.6
    assert (recs[recs.user == "u25"]["item"].str[0] == "B").mean() >= 0.6
    model, graph, _ = load_model_dir(str(model_dir))
    uid = int(np.flatnonzero(graph.user_ids == "u1")[0])
    seen = set(graph.item_ids[graph.train[1][graph.train[0] == uid].numpy()])
    assert not seen & set(recs[recs.user == "u1"]["item"])


def test_recommend_lists_only_unseen_items_when_k_exceeds_them(model_dir, tmp_path):
    """With --k equal to the catalogue, each user gets exactly the items the model has not seen
    (neither in training nor in validation), ranked 1..n."""
    model, graph, _ = load_model_dir(str(model_dir))
    out = tmp_path / "all.csv"
    assert main(["rec", "recommend", "--model-dir", str(model_dir), "--all-users",
                 "--k", str(graph.num_items), "--out", str(out)]) == 0
    recs = pd.read_csv(out)
    assert set(recs["user"]) == set(graph.user_ids)
    known = torch.cat([graph.train, graph.valid], dim=1)
    seen_per_user = np.bincount(known[0].numpy(), minlength=graph.num_users)
    for u in (0, 7, 25, 39):
        mine = recs[recs.user == graph.user_ids[u]]
        seen = set(graph.item_ids[known[1][known[0] == u].numpy()])
        assert len(mine) == graph.num_items - seen_per_user[u]
        assert mine["rank"].tolist() == list(range(1, len(mine) + 1))
        assert mine["item"].is_unique and not seen & set(mine["item"])
        assert np.isfinite(mine["score"]).all() and (np.diff(mine["score"].to_numpy()) <= 1e-6).all()


def test_evaluate_command(model_dir, capsys):
    assert main(["rec", "evaluate", "--model-dir", str(model_dir), "--k", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 <= res["recall@5"] <= 1 and res["num_users"] > 0


def test_model_dir_from_another_version_is_rejected(model_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "old"
    shutil.copytree(model_dir, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["format"] = 0
    (bad / "model.json").write_text(json.dumps(meta))
    assert main(["rec", "recommend", "--model-dir", str(bad), "--users", "u1"]) == 2
    assert "format 0" in capsys.readouterr().err
    (bad / "model.json").unlink()
    assert main(["rec", "evaluate", "--model-dir", str(bad)]) == 2
    assert "model.json missing" in capsys.readouterr().err


def test_bad_csv_gives_a_clear_error_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text("user,item,rating\n1,2,5\n1,3,x\n")
    out = tmp_path / "out"
    code = main(["rec", "train", "--data", str(f), "--user-col", "user", "--item-col", "item",
                 "--rating-col", "rating", "--min-rating", "4", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'rating'" in err and "row(s) 3" in err
    assert not out.exists()
    code = main(["rec", "train", "--data", str(f), "--user-col", "uid", "--item-col", "item", "--out", str(out)])
    assert code == 2 and "not found" in capsys.readouterr().err


def test_given_split_with_unknown_test_ids(tmp_path, capsys, events):
    df = pd.read_csv(events)
    mine = set(df[df.user == "u1"]["item"])
    new, old = sorted(set(df["item"]) - mine)[0], sorted(mine)[0]
    test = tmp_path / "test.csv"
    pd.DataFrame({"user": ["u1", "u1", "stranger"], "item": [new, old, "A2"], "rating": [5, 5, 5],
                  "ts": [1, 2, 3]}).to_csv(test, index=False)
    base = ["rec", "train", "--data", str(events), "--test-data", str(test), "--user-col", "user",
            "--item-col", "item", "--model", "mf", "--epochs", "2", "--eval-every", "1", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "given")]) == 0
    out = capsys.readouterr().out
    assert "1 test events with users/items absent" in out and "1 test pairs also in training" in out
    _, graph, _ = load_model_dir(str(tmp_path / "given"))
    assert graph.test.size(1) == 1
    # a test file with nothing left after dropping is an error, not metrics of 0
    pd.DataFrame({"user": ["u1", "stranger"], "item": [old, "A2"]}).to_csv(test, index=False)
    assert main(base + ["--out", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no test pairs left" in err and "1 test pairs also in training" in err


def test_ultragcn_through_the_cli(events, tmp_path):
    out = tmp_path / "ultra"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "ultragcn", "--epochs", "2", "--eval-every", "1", "--embedding-dim", "8",
                 "--num-negatives", "7", "--lambda", "0.5", "--gamma", "0", "--num-neighbors", "3",
                 "--out", str(out), "--no-progress"]) == 0
    model, graph, meta = load_model_dir(str(out))
    assert meta["model"] == "ultragcn" and type(model).__name__ == "UltraGCN"
    assert (model.num_negatives, model.lambda_, model.gamma, model.num_neighbors) == (7, 0.5, 0.0, 3)
    top = model.recommend(torch.tensor([0]), k=3)
    assert top.shape == (1, 3)


def test_ultragcn_settings_are_checked(events, tmp_path, capsys):
    base = ["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
            "--epochs", "1", "--no-progress"]
    assert main(base + ["--model", "mf", "--num-negatives", "5", "--out", str(tmp_path / "a")]) == 2
    assert "--num-negatives: UltraGCN settings given with --model mf" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main(base + ["--model", "ultragcn", "--gamma", "-1", "--out", str(tmp_path / "b")]) == 2
    assert "'gamma' must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "b" / "model.json").exists()


def test_negative_candidates_flag(events, tmp_path, capsys):
    base = ["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
            "--epochs", "2", "--eval-every", "1", "--embedding-dim", "8", "--no-progress"]
    assert main(base + ["--model", "ultragcn", "--negative-candidates", "4", "--out", str(tmp_path / "u")]) == 2
    assert "--negative-candidates applies to lightgcn and mf" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
    assert main(base + ["--model", "mf", "--negative-candidates", "4", "--out", str(tmp_path / "m")]) == 0
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert "negative_candidates" in json.dumps(info)


def test_resuming_an_out_dir_with_other_settings_is_refused(events, tmp_path, capsys):
    base = ["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
            "--epochs", "2", "--eval-every", "1", "--embedding-dim", "8", "--no-progress",
            "--model", "lightgcn", "--out", str(tmp_path / "m")]
    assert main(base) == 0
    before = (tmp_path / "m" / "model.pt").read_bytes()
    capsys.readouterr()
    assert main(base + ["--negative-candidates", "4"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume from" in err and "negative_candidates: checkpoint 1, now 4" in err
    assert "--no-resume" in err
    assert (tmp_path / "m" / "model.pt").read_bytes() == before      # nothing overwritten
    assert main(base + ["--negative-candidates", "4", "--no-resume"]) == 0


def test_threads_flag_sets_torch_threads(model_dir, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["rec", "evaluate", "--model-dir", str(model_dir), "--k", "5", "--json", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["rec", "evaluate", "--model-dir", str(model_dir), "--threads", "0"])
    assert "--threads: must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("name,flags", [("gfcf", ["--rank", "4", "--alpha", "0.3"]),
                                        ("bspm", ["--rank", "4", "--sharpen-steps", "2"]),
                                        ("polyfilter", ["--coefficients", "0,2,-1"])])
def test_graph_filters_train_evaluate_and_recommend_without_training(events, tmp_path, capsys, name, flags):
    out = tmp_path / name
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--time-col", "ts", "--model", name, *flags, "--out", str(out), "--no-progress"]) == 0
    assert "nothing to train" in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text())
    assert meta["model"] == name and meta["epochs_run"] == 0
    # the two taste clusters are recovered without any training
    assert meta["test_metrics"]["recall@20"] > 0.5
    model, graph, _ = load_model_dir(str(out))
    assert not model.trainable
    assert main(["rec", "evaluate", "--model-dir", str(out), "--k", "20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["recall@20"] == pytest.approx(meta["test_metrics"]["recall@20"], abs=1e-6)
    recs = tmp_path / f"{name}.csv"
    assert main(["rec", "recommend", "--model-dir", str(out), "--users", "u0", "--k", "5",
                 "--out", str(recs)]) == 0
    items = pd.read_csv(recs)["item"].tolist()
    assert len(items) == 5 and all(i.startswith("A") for i in items)


def test_filter_flags_are_checked_against_the_model(events, tmp_path, capsys):
    code = main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "lightgcn", "--rank", "8", "--out", str(tmp_path / "x")])
    assert code == 2 and "--rank applies to --model gfcf / bspm, not lightgcn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
              "--model", "polyfilter", "--coefficients", "1,x", "--out", str(tmp_path / "y")])
    assert "expected comma-separated numbers" in capsys.readouterr().err


def test_train_states_the_recipe_chosen_from_the_data_size(events, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "lightgcn", "--epochs", "1", "--embedding-dim", "8", "--out", str(out),
                 "--no-progress", "--max-memory", "2"]) == 0
    text = capsys.readouterr().out
    assert "recipe: paper (batch 2048, lr 0.001, 1 steps per epoch" in text and "of 2.0 GB" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["train_settings"]["batch_size"] == 2048 and meta["train_settings"]["lr"] == 1e-3


@pytest.mark.parametrize("budget, message", [("0", "--max-memory must be a positive number"),
                                             ("0.000001", "need about .* GB to train LightGCN, more than")])
def test_train_refuses_a_budget_the_recipe_cannot_fit_before_training(events, tmp_path, capsys, budget, message):
    import re
    out = tmp_path / "m"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "lightgcn", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--max-memory", budget]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (out / "checkpoints").exists()


@pytest.mark.parametrize("name", ["gfcf", "bspm", "polyfilter"])
def test_graph_filter_settings_selected_on_validation(events, tmp_path, capsys, name):
    out = tmp_path / name
    flags = ["--rank", "4"] if name != "polyfilter" else []
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--time-col", "ts", "--model", name, *flags, "--select", "valid", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "selected on validation recall@20" in printed
    meta = json.loads((out / "model.json").read_text())
    chosen = meta["filter_selection"]
    assert len(chosen["grid"]) == {"gfcf": 5, "bspm": 9, "polyfilter": 4}[name] and chosen["seconds"] >= 0
    best = max(chosen["grid"], key=lambda row: row["recall@20"])
    assert chosen["best"] == best["settings"]
    # the saved model is the selected one
    model, _, _ = load_model_dir(str(out))
    for key, value in chosen["best"].items():
        assert model.model_args[key] == value
    assert meta["test_metrics"]["recall@20"] > 0.5


def test_select_valid_is_refused_for_trained_models_and_without_validation(events, tmp_path, capsys):
    code = main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "lightgcn", "--select", "valid", "--out", str(tmp_path / "x")])
    assert code == 2 and "--select valid applies to --model gfcf / bspm / polyfilter" in capsys.readouterr().err
    code = main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "gfcf", "--rank", "4", "--valid-ratio", "0", "--select", "valid",
                 "--out", str(tmp_path / "y")])
    assert code == 2 and "--select valid needs a validation part" in capsys.readouterr().err


def test_ultragcn_train_refuses_a_budget_its_estimate_exceeds_before_any_work(events, tmp_path, capsys):
    out = tmp_path / "u"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "ultragcn", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--max-memory", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "to train UltraGCN (dim 64, batch 1024, 200 negatives), more than the 10 MB budget" in err
    assert "--batch-size or --num-negatives" in err and "--embedding-dim" in err
    assert not out.exists()  # refused before the model folder, set_graph or any step


def test_ultragcn_train_states_its_estimate_and_the_validation_sample(events, tmp_path, capsys):
    out = tmp_path / "u"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "ultragcn", "--epochs", "2", "--eval-every", "1", "--embedding-dim", "8",
                 "--num-negatives", "5", "--valid-users", "6", "--out", str(out), "--no-progress",
                 "--max-memory", "4"]) == 0
    text = capsys.readouterr().out
    assert "recipe: as given (batch 1024, lr 0.001, 1 steps per epoch, 5 negatives per pair, 10 item-item " \
           "neighbours; estimated training memory" in text and "of 4.0 GB" in text
    assert "validation: a random sample of 6 of the" in text and "(seed 0, the same at every evaluation" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["valid_users"]["evaluated"] == 6 and meta["valid_users"]["sampled"] is True
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["valid_num_users"] for h in history] == [6, 6]
    model, graph, _ = load_model_dir(str(out))
    assert meta["test_metrics"]["num_users"] == torch.unique(graph.test[0]).numel()  # every test user


def test_valid_users_defaults_to_all_on_small_data_and_is_checked(events, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--model", "mf", "--epochs", "1", "--embedding-dim", "8", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "validation: all" in text and "(at most 100,000: no sample by default)" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["valid_users"]["sampled"] is False and meta["valid_users"]["evaluated"] == meta["valid_users"]["of"]
    with pytest.raises(SystemExit):
        main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
              "--valid-users", "some", "--out", str(tmp_path / "x")])
    assert "expected a positive number of users or 'all'" in capsys.readouterr().err
