"""`graphkit rec` on the command line: the evaluation protocol shared by `recommend` and
`evaluate`, input formats, and clear errors for bad input."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphkit.cli import main
from graphkit.rec.io import load_model_dir

TRAIN = ["--model", "lightgcn", "--epochs", "4", "--eval-every", "2", "--batch-size", "256", "--lr", "0.01",
         "--embedding-dim", "8", "--no-progress"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """Two taste clusters of 30 users over 20 items each, with ratings and timestamps."""
    rng = np.random.default_rng(1)
    rows = []
    for u in range(60):
        group = "A" if u < 30 else "B"
        for i in rng.choice(20, size=10, replace=False):
            rows.append((f"u{u}", f"{group}{i}", int(rng.integers(1, 6)), int(rng.integers(0, 10**6))))
    path = tmp_path_factory.mktemp("data") / "events.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating", "ts"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(events, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--time-col", "ts", "--valid-ratio", "0.2", "--out", str(out)] + TRAIN) == 0
    return out


def _pairs(graph, part):
    t = getattr(graph, part)
    return pd.DataFrame({"user": graph.user_ids[t[0].numpy()], "item": graph.item_ids[t[1].numpy()]})


def _evaluate_json(capsys, *args):
    capsys.readouterr()
    assert main(["rec", "evaluate", "--k", "20", "--json", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


def _export_top20(model_dir, graph, tmp_path):
    """`rec recommend --k 20` for every test user, and Recall@20 / NDCG@20 recomputed from the
    exported lists: ``(recs, test items per user, recall, ndcg)``."""
    test = _pairs(graph, "test")
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(test["user"].unique()) + "\n")
    recs_path = tmp_path / "recs.csv"
    assert main(["rec", "recommend", "--model-dir", str(model_dir), "--users-file", str(users_file),
                 "--k", "20", "--out", str(recs_path)]) == 0
    recs = pd.read_csv(recs_path)
    hits = recs.merge(test.assign(hit=1.0), on=["user", "item"], how="left").fillna({"hit": 0.0})
    n_test = test.groupby("user").size()
    found = hits.groupby("user")["hit"].sum().reindex(n_test.index, fill_value=0.0)
    recall = (found / n_test).mean()
    hits["gain"] = hits["hit"] / np.log2(hits["rank"] + 1)
    dcg = hits.groupby("user")["gain"].sum().reindex(n_test.index, fill_value=0.0)
    idcg = n_test.clip(upper=20).map(lambda n: (1 / np.log2(np.arange(2, n + 2))).sum())
    return recs, n_test, recall, (dcg / idcg).mean()


def test_exported_recommendations_reproduce_evaluate_metrics(model_dir, tmp_path, capsys):
    """Recall@20 / NDCG@20 recomputed from `rec recommend --k 20` equal `rec evaluate`'s: both
    exclude every interaction the model has seen (training and validation)."""
    model, graph, _ = load_model_dir(str(model_dir))
    recs, n_test, recall, ndcg = _export_top20(model_dir, graph, tmp_path)
    valid = _pairs(graph, "valid")
    assert not recs.merge(valid, on=["user", "item"]).shape[0]  # no validation item is recommended
    res = _evaluate_json(capsys, "--model-dir", model_dir)
    assert res["num_users"] == len(n_test)
    assert abs(res["recall@20"] - recall) < 1e-6 and abs(res["ndcg@20"] - ndcg) < 1e-6
    assert res["recall@20"] > 0


def test_export_reproduces_evaluate_when_ranked_without_score_blocks(tmp_path, capsys):
    """With 9,000 items the embedding model ranks through DotProductScorer.topk in both
    `rec evaluate` and `rec recommend`: the exported lists still give the same metrics."""
    from graphkit.utils.ranking import DotProductScorer

    rng = np.random.default_rng(2)
    rows = [(f"u{u}", f"i{(u % 2) * 4500 + int(i)}") for u in range(80) for i in rng.choice(4500, 12, replace=False)]
    rows += [(f"u{u}", f"i{i}") for u, i in zip(range(9000), range(9000))]  # every item seen once
    events = tmp_path / "wide.csv"
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(events, index=False)
    out = tmp_path / "m"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--out", str(out)] + TRAIN[:6] + ["--embedding-dim", "8", "--no-progress"]) == 0
    model, graph, _ = load_model_dir(str(out))
    assert graph.num_items == 9000 and DotProductScorer(*model.embeddings()).ranks_without_scores(20)
    _, n_test, recall, _ = _export_top20(out, graph, tmp_path)
    res = _evaluate_json(capsys, "--model-dir", out)
    assert res["num_users"] == len(n_test) and abs(res["recall@20"] - recall) < 1e-6


def test_evaluate_data_drops_seen_pairs_and_takes_rating_filters(model_dir, tmp_path, capsys):
    model, graph, _ = load_model_dir(str(model_dir))
    saved = _evaluate_json(capsys, "--model-dir", model_dir)
    test = _pairs(graph, "test").assign(rating=5)
    seen = _pairs(graph, "train").head(25).assign(rating=5)          # can never be recommended
    low = test.sample(frac=1.0, random_state=0).head(10).assign(rating=1)  # duplicates, filtered out
    f = tmp_path / "other.csv"
    pd.concat([test, seen, _pairs(graph, "valid").head(4).assign(rating=4), low]).to_csv(f, index=False)
    res = _evaluate_json(capsys, "--model-dir", model_dir, "--data", f, "--user-col", "user",
                         "--item-col", "item", "--rating-col", "rating", "--min-rating", "4")
    err = capsys.readouterr().err
    assert res == saved
    # the notes went to stderr before the JSON was read; run again to read them
    assert main(["rec", "evaluate", "--model-dir", str(model_dir), "--data", str(f), "--user-col", "user",
                 "--item-col", "item", "--rating-col", "rating", "--min-rating", "4"]) == 0
    err = capsys.readouterr().err
    assert "25 pairs also in the model's training" in err and "4 pairs also in the model's validation" in err


def test_evaluate_with_nothing_left_to_evaluate_is_an_error(model_dir, tmp_path, capsys):
    model, graph, _ = load_model_dir(str(model_dir))
    f = tmp_path / "seen.csv"
    _pairs(graph, "train").head(30).to_csv(f, index=False)
    assert main(["rec", "evaluate", "--model-dir", str(model_dir), "--data", str(f),
                 "--user-col", "user", "--item-col", "item"]) == 2
    err = capsys.readouterr().err
    assert "no pairs left to evaluate" in err and "30 pairs also in the model's training" in err
    g = tmp_path / "strangers.csv"
    pd.DataFrame({"user": ["x", "y"], "item": ["A1", "zz"]}).to_csv(g, index=False)
    assert main(["rec", "evaluate", "--model-dir", str(model_dir), "--data", str(g),
                 "--user-col", "user", "--item-col", "item"]) == 2
    assert "2 events with users/items unknown" in capsys.readouterr().err


def test_bad_paths_and_files_give_messages_not_tracebacks(model_dir, events, tmp_path, capsys):
    base = ["--user-col", "user", "--item-col", "item", "--out", str(tmp_path / "o")] + TRAIN
    assert main(["rec", "train", "--data", str(tmp_path)] + base) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["rec", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o")] + TRAIN) == 2
    assert "is a directory" in capsys.readouterr().err  # said before asking for column names
    binary = tmp_path / "blob.csv"
    binary.write_bytes((model_dir / "model.pt").read_bytes())  # a binary file named like a table
    assert main(["rec", "train", "--data", str(binary)] + base) == 2
    err = capsys.readouterr().err
    assert "blob.csv" in err and "not a text table" in err
    assert main(["rec", "recommend", "--model-dir", str(model_dir), "--users-file",
                 str(tmp_path / "missing.txt")]) == 2
    assert "--users-file" in capsys.readouterr().err
    nested = tmp_path / "new" / "folder" / "recs.csv"
    assert main(["rec", "recommend", "--model-dir", str(model_dir), "--users", "u1", "--k", "3",
                 "--out", str(nested)]) == 0
    assert len(pd.read_csv(nested)) == 3


def test_weights_of_another_run_are_named(model_dir, events, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    assert main(["rec", "train", "--data", str(events), "--user-col", "user", "--item-col", "item",
                 "--out", str(other)] + TRAIN[:-3] + ["--embedding-dim", "4", "--no-progress"]) == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(model_dir, mixed)
    shutil.copy(other / "model.pt", mixed / "model.pt")
    for cmd in (["recommend", "--users", "u1"], ["evaluate"]):
        assert main(["rec", *cmd, "--model-dir", str(mixed)]) == 2
        err = capsys.readouterr().err
        assert "model.pt" in err and "another run" in err and "Traceback" not in err


def test_parquet_round_trip(events, tmp_path, capsys):
    df = pd.read_csv(events)
    pq = tmp_path / "events.parquet"
    df.to_parquet(pq)
    out_pq, out_csv = tmp_path / "pq", tmp_path / "csv"
    cols = ["--user-col", "user", "--item-col", "item", "--time-col", "ts"]
    assert main(["rec", "train", "--data", str(pq), *cols, "--out", str(out_pq)] + TRAIN) == 0
    assert main(["rec", "train", "--data", str(events), *cols, "--out", str(out_csv)] + TRAIN) == 0
    _, g_pq, meta_pq = load_model_dir(str(out_pq))
    _, g_csv, meta_csv = load_model_dir(str(out_csv))
    assert list(g_pq.user_ids) == list(g_csv.user_ids) and list(g_pq.item_ids) == list(g_csv.item_ids)
    for part in ("train", "valid", "test"):
        assert torch.equal(getattr(g_pq, part), getattr(g_csv, part))
    assert meta_pq["test_metrics"] == meta_csv["test_metrics"]


def test_user_item_lists_text_format(tmp_path, capsys):
    """The LightGCN/UltraGCN layout (`user item item ...` per line) reads with --data x.txt."""
    rng = np.random.default_rng(0)
    train_lines, test_lines = [], []
    for u in range(25):
        items = rng.choice(np.arange(12) + (0 if u < 12 else 12), size=7, replace=False)
        train_lines.append(" ".join(map(str, [u, *items[:5]])))
        test_lines.append(" ".join(map(str, [u, *items[5:]])))
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join(train_lines) + "\n")
    test.write_text("\n".join(test_lines) + "\n")
    out = tmp_path / "m"
    assert main(["rec", "train", "--data", str(train), "--test-data", str(test), "--out", str(out)] + TRAIN) == 0
    model, graph, meta = load_model_dir(str(out))
    assert meta["split"] == "given" and graph.num_users == 25
    assert graph.num_train + graph.valid.size(1) == 125
    assert set(graph.user_ids.tolist()) == set(range(25))
    pairs = _pairs(graph, "test")
    expect = {(u, int(i)) for line in test_lines for u, *its in [list(map(int, line.split()))] for i in its}
    assert set(map(tuple, pairs.to_numpy().tolist())) <= expect and len(pairs) > 0
    # an explicit --format lists refuses column flags, which have no meaning there
    assert main(["rec", "train", "--data", str(train), "--format", "lists", "--user-col", "user",
                 "--out", str(tmp_path / "x")] + TRAIN) == 2
    assert "--format lists" in capsys.readouterr().err
    # a table needs its columns
    assert main(["rec", "train", "--data", str(train), "--format", "table", "--out", str(tmp_path / "y")]
                + TRAIN) == 2
    assert "--user-col and --item-col are needed" in capsys.readouterr().err


def test_resuming_with_other_data_of_the_same_size_is_refused(events, tmp_path, capsys):
    df = pd.read_csv(events)
    renamed = tmp_path / "renamed.csv"
    df.assign(item=df["item"].str.lower()).to_csv(renamed, index=False)  # same size, other ids
    out = tmp_path / "m"
    cols = ["--user-col", "user", "--item-col", "item", "--out", str(out)]
    assert main(["rec", "train", "--data", str(events), *cols] + TRAIN) == 0
    before = (out / "model.pt").read_bytes()
    capsys.readouterr()
    assert main(["rec", "train", "--data", str(renamed), *cols] + TRAIN) == 2
    err = capsys.readouterr().err
    assert "other data" in err and "item_ids" in err and "user_ids" not in err
    assert (out / "model.pt").read_bytes() == before
    # the same data with more epochs continues the run, says so and reports the total time
    assert main(["rec", "train", "--data", str(events), *cols] + TRAIN[:3] + ["6"] + TRAIN[4:]) == 0
    text = capsys.readouterr().out
    assert "resuming the run in" in text and "4 epoch(s) done" in text and "over 2 sittings" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["sittings"] == 2 and meta["epochs_run"] == 6
