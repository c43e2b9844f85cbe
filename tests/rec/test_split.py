import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.rec.data import from_dataframe, read_interactions
from graphkit.rec.split import describe, holdout_validation, random_split, temporal_split


def _df(n_users=20, n_items=30, n=300, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user": rng.integers(0, n_users, n).astype(str),
                         "item": rng.integers(0, n_items, n) * 7,
                         "rating": rng.integers(1, 6, n),
                         "ts": rng.integers(0, 10**6, n)})


def _pairs(t):
    return set(map(tuple, t.t().tolist())) if t is not None else set()


def test_from_dataframe_maps_ids_merges_duplicates_and_filters_ratings():
    df = pd.DataFrame({"u": ["b", "a", "a", "a"], "i": [10, 10, 10, 20], "r": [5, 4, 4, 1]})
    g = from_dataframe(df, "u", "i", rating_col="r", min_rating=3)
    assert list(g.user_ids) == ["a", "b"] and list(g.item_ids) == [10]  # item 20 has no positive
    assert _pairs(g.train) == {(0, 0), (1, 0)}  # duplicate merged, low rating dropped


@pytest.mark.parametrize("split", ["random", "temporal"])
def test_splits_partition_and_keep_a_training_item(split):
    g = from_dataframe(_df(), "user", "item", time_col="ts")
    if split == "random":
        s = random_split(g, test_ratio=0.2, valid_ratio=0.1, seed=1)
    else:
        s = temporal_split(g, test_ratio=0.2, valid_ratio=0.1)
    parts = [_pairs(s.train), _pairs(s.valid), _pairs(s.test)]
    assert sum(map(len, parts)) == g.num_train
    assert set.union(*parts) == _pairs(g.train)
    assert not (parts[0] & parts[2]) and not (parts[1] & parts[2]) and not (parts[0] & parts[1])
    assert set(torch.unique(g.train[0]).tolist()) == set(torch.unique(s.train[0]).tolist())


def test_temporal_split_holds_out_the_latest():
    df = pd.DataFrame({"u": [0] * 5 + [1] * 3, "i": [0, 1, 2, 3, 4, 0, 1, 2],
                       "t": [5, 1, 4, 2, 3, 10, 30, 20]})
    g = from_dataframe(df, "u", "i", time_col="t")
    s = temporal_split(g, test_last_n=1)
    assert _pairs(s.test) == {(0, 0), (1, 1)}
    s = temporal_split(g, time_cut=20)
    assert _pairs(s.test) == {(1, 1), (1, 2)}


def test_holdout_validation_keeps_test():
    g = random_split(from_dataframe(_df(), "user", "item"), test_ratio=0.2)
    h = holdout_validation(g, 0.25, seed=3)
    assert torch.equal(h.test, g.test)
    assert _pairs(h.train) | _pairs(h.valid) == _pairs(g.train)
    assert describe(h)["valid"] == h.valid.size(1)


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_interactions(empty, "u", "i")
    f = tmp_path / "x.csv"
    f.write_text("user,item,rating,ts\n1,2,5,100\n1,3,good,200\n2,3,4,oops\n")
    with pytest.raises(ValueError, match=r"column\(s\) \['usr'\] not found.*available columns"):
        read_interactions(f, "usr", "item")
    with pytest.raises(ValueError, match=r"'rating' must be numeric; row\(s\) 3 hold \['good'\]"):
        read_interactions(f, "user", "item", rating_col="rating")
    with pytest.raises(ValueError, match=r"'ts' has missing or unparseable timestamps on row\(s\) 4"):
        read_interactions(f, "user", "item", time_col="ts")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_interactions(tmp_path / "missing.csv", "u", "i")
    g = from_dataframe(pd.DataFrame({"u": [1], "i": [2]}), "u", "i")
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(g, test_ratio=0.5)


def test_test_file_with_unknown_ids_is_reported():
    train = from_dataframe(pd.DataFrame({"u": ["a", "b"], "i": [1, 2]}), "u", "i")
    test = from_dataframe(pd.DataFrame({"u": ["a", "c", "b"], "i": [2, 1, 9]}), "u", "i",
                          user_ids=train.user_ids, item_ids=train.item_ids)
    assert _pairs(test.train) == {(0, 1)}
    assert test.meta["unknown_id_events_dropped"] == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 12), st.integers(0, 100)), min_size=1, max_size=80),
       st.floats(0.0, 0.9), st.integers(0, 3))
def test_ingestion_and_split_properties(rows, ratio, seed):
    df = pd.DataFrame(rows, columns=["u", "i", "t"])
    g = from_dataframe(df, "u", "i", time_col="t")
    distinct = {(u, i) for u, i, _ in rows}
    assert g.num_train == len(distinct)
    assert {(g.user_ids[u], g.item_ids[i]) for u, i in g.train.t().tolist()} == distinct
    for s in (random_split(g, ratio, seed=seed), temporal_split(g, test_ratio=ratio)):
        assert _pairs(s.train) | _pairs(s.test) == _pairs(g.train)
        assert not _pairs(s.train) & _pairs(s.test)
        # every user keeps a training interaction
        assert set(torch.unique(s.train[0]).tolist()) == set(torch.unique(g.train[0]).tolist())
