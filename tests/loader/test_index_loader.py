import pytest
import torch

from graphkit.loader import IndexLoader


def test_ordered_batches_cover_everything():
    batches = list(IndexLoader(10, 4))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(IndexLoader(10, 4)) == 3 and len(IndexLoader(10, 4, drop_last=True)) == 2


def test_shuffle_is_seeded_per_epoch_and_resumable():
    loader = IndexLoader(50, 8, shuffle=True, seed=3)
    e0 = torch.cat(list(loader))
    e1 = torch.cat(list(loader))
    assert torch.equal(torch.sort(e0).values, torch.arange(50))
    assert not torch.equal(e0, e1)
    again = IndexLoader(50, 8, shuffle=True, seed=3)
    again.set_epoch(1)
    assert torch.equal(torch.cat(list(again)), e1)
    torch.manual_seed(0)
    a = torch.cat(list(IndexLoader(50, 8, shuffle=True)))
    torch.manual_seed(0)
    assert torch.equal(a, torch.cat(list(IndexLoader(50, 8, shuffle=True))))


def test_tensor_rows_and_masks():
    x, y = torch.arange(12).view(6, 2), torch.arange(6) * 10
    out = list(IndexLoader((x, y), 4))
    assert torch.equal(out[0][0], x[:4]) and torch.equal(out[1][1], y[4:])
    mask = torch.tensor([True, False, True, True, False])
    assert [b.tolist() for b in IndexLoader(mask, 2)] == [[0, 2], [3]]
    ids = torch.tensor([7, 3, 5])
    assert torch.cat(list(IndexLoader(ids, 2, shuffle=True, seed=0))).sort().values.tolist() == [3, 5, 7]


@pytest.mark.parametrize("uneven,sizes", [("drop", [3, 3]), ("wrap", [3, 3, 2])])
def test_rank_shards_partition_global_batches(uneven, sizes):
    # 15 items, global batch 6, 2 ranks: the last batch of 3 does not split evenly
    full = list(IndexLoader(15, 6, shuffle=True, seed=1, rank=0, world_size=1))
    shards = [list(IndexLoader(15, 6, shuffle=True, seed=1, rank=r, world_size=2, uneven=uneven))
              for r in range(2)]
    assert [b.numel() for b in shards[0]] == [b.numel() for b in shards[1]] == sizes
    for i in range(2):
        assert torch.equal(full[i], torch.cat([shards[0][i], shards[1][i]]))
    if uneven == "wrap":  # the tail is padded with the epoch's first item
        tail = torch.cat([shards[0][2], shards[1][2]])
        assert torch.equal(tail, torch.cat([full[2], full[0][:1]]))


def test_bad_input():
    with pytest.raises(ValueError, match="does not split evenly over world_size=2"):
        IndexLoader(15, 6, rank=0, world_size=2)
    with pytest.raises(ValueError, match="not a multiple of world_size=4"):
        IndexLoader(16, 6, rank=0, world_size=4)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        IndexLoader(16, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        IndexLoader(16, 0)
    with pytest.raises(ValueError, match="tensor 1 has 3 rows, tensor 0 has 4"):
        IndexLoader((torch.zeros(4), torch.zeros(3)), 2)
    with pytest.raises(ValueError, match="uneven"):
        IndexLoader(4, 2, uneven="pad")
    with pytest.raises(ValueError, match=">= 0"):
        IndexLoader(-1, 2)
    assert list(IndexLoader(0, 3)) == []
