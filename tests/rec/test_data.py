import numpy as np
import pytest
import torch

from graphkit.rec.data import InteractionGraph, data_fingerprint, read_table, read_user_item_table


def test_read_table_names_the_file_for_directories_and_binary_files(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        read_table(tmp_path)
    blob = tmp_path / "events.csv"
    torch.save({"w": torch.arange(100.0)}, blob)  # a binary file named like a table
    with pytest.raises(ValueError, match=r"events\.csv: not a text table"):
        read_table(blob)


def test_read_user_item_table(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("0 3 4\n\n2 1\n5\n")  # a user without items contributes no pair
    df = read_user_item_table(f)
    assert df["user"].tolist() == [0, 0, 2] and df["item"].tolist() == [3, 4, 1]
    f.write_text("0 a b\n")
    with pytest.raises(ValueError, match=r"train\.txt, line 1: expected integer ids"):
        read_user_item_table(f)
    f.write_text("7\n")
    with pytest.raises(ValueError, match="no interactions found"):
        read_user_item_table(f)


def test_data_fingerprint_tracks_pairs_and_id_maps():
    def graph(**kw):
        args = dict(num_users=3, num_items=4, train=torch.tensor([[0, 1, 2], [1, 2, 3]]),
                    test=torch.tensor([[0], [0]]), user_ids=np.array(["a", "b", "c"]),
                    item_ids=np.array([10, 11, 12, 13]))
        args.update(kw)
        return InteractionGraph(**args)

    base = data_fingerprint(graph())
    assert base == data_fingerprint(graph())
    assert base["valid"] == "none" and len(base["train"]) == 16
    changed = {
        "train": graph(train=torch.tensor([[0, 1, 2], [1, 2, 0]])),
        "test": graph(test=torch.tensor([[1], [0]])),
        "user_ids": graph(user_ids=np.array(["a", "b", "d"])),
        "item_ids": graph(item_ids=np.array([10, 11, 12, 14])),
    }
    for key, g in changed.items():
        fp = data_fingerprint(g)
        assert [k for k in fp if fp[k] != base[k]] == [key]
