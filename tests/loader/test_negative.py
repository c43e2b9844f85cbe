import pytest
import torch

from graphkit.loader import BPRLoader, sample_bpr_triples, sample_negatives
from graphkit.utils import PairIndex

PAIRS = torch.tensor([[0, 0, 0, 1, 1, 2, 3, 3], [0, 1, 2, 2, 3, 0, 4, 1]])


def index():
    return PairIndex(PAIRS, 4, 5)


def test_one_home_rec_sampling_reexports():
    import graphkit.loader.negative as home
    import graphkit.rec.sampling as rec

    assert rec.sample_bpr_triples is home.sample_bpr_triples
    assert rec.sample_negatives is home.sample_negatives
    assert sample_bpr_triples is home.sample_bpr_triples


@pytest.mark.parametrize("mode,num_neg,expected", [
    ("user", 1, ([3, 0, 1, 2, 3, 3], [1, 1, 2, 0, 4, 4], [3, 3, 0, 1, 0, 2])),
    ("interaction", 3, ([3, 1, 0, 3, 1, 1], [4, 3, 1, 1, 2, 2],
                        [[2, 3, 3], [1, 0, 1], [3, 3, 4], [0, 0, 2], [1, 1, 1], [0, 0, 1]])),
])
def test_bpr_triples_bit_identical_for_fixed_seed(mode, num_neg, expected):
    # values drawn by the samplers' previous home (graphkit/rec/sampling.py) with this seed
    g = torch.Generator().manual_seed(7)
    u, p, n = sample_bpr_triples(index(), 6, 5, generator=g, mode=mode, num_negatives=num_neg)
    assert (u.tolist(), p.tolist(), n.tolist()) == expected


def test_negatives_are_never_positives():
    pi = index()
    g = torch.Generator().manual_seed(0)
    users = torch.tensor([0, 1, 2, 3] * 50)
    neg = sample_negatives(users, 4, pi, 5, generator=g)
    assert neg.shape == (200, 4)
    assert not pi.contains(users, neg).any()


@pytest.mark.parametrize("mode", ["permutation", "user", "interaction"])
def test_bpr_loader_triples_are_valid(mode):
    pi = index()
    loader = BPRLoader(pi, 3, mode=mode, seed=0)
    seen = []
    for users, pos, neg in loader:
        assert pi.contains(users, pos.view(-1, 1)).all()
        assert not pi.contains(users, neg.view(-1, 1)).any()
        seen.append(users * 5 + pos)
    seen = torch.cat(seen)
    assert seen.numel() == 8 and len(loader) == 3
    if mode == "permutation":  # every interaction exactly once per epoch
        assert torch.equal(torch.sort(seen).values, pi.keys)


def test_bpr_loader_reproducible_and_epochs_differ():
    a = [torch.cat(t) for t in BPRLoader(index(), 4, seed=3)]
    b = [torch.cat(t) for t in BPRLoader(index(), 4, seed=3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    loader = BPRLoader(index(), 8, seed=3)
    e0 = [torch.cat(t) for t in loader]
    assert loader.epoch == 1
    loader.set_epoch(0)
    assert all(torch.equal(x, y) for x, y in zip(e0, [torch.cat(t) for t in loader]))


def test_bpr_loader_shards_permutation_over_ranks():
    full = [u * 5 + p for u, p, _ in BPRLoader(index(), 4, seed=1, rank=0, world_size=1)]
    r0 = [u * 5 + p for u, p, _ in BPRLoader(index(), 4, seed=1, rank=0, world_size=2)]
    r1 = [u * 5 + p for u, p, _ in BPRLoader(index(), 4, seed=1, rank=1, world_size=2)]
    for f, a, b in zip(full, r0, r1):
        assert torch.equal(f, torch.cat([a, b]))


def test_bpr_loader_bad_input():
    with pytest.raises(ValueError, match="no interactions"):
        BPRLoader(PairIndex(torch.zeros(2, 0, dtype=torch.long), 2, 2), 4)
    with pytest.raises(ValueError, match="mode"):
        BPRLoader(index(), 4, mode="edges")
    with pytest.raises(ValueError, match="multiple of world_size"):
        BPRLoader(index(), 3, rank=0, world_size=2)
    seven = PairIndex(PAIRS[:, :7], 4, 5)  # 7 = 4 + 3: the last batch of 3 does not split in 2
    with pytest.raises(ValueError, match="does not split evenly"):
        BPRLoader(seven, 4, rank=0, world_size=2)
    assert len(BPRLoader(seven, 4, rank=0, world_size=2, uneven="drop")) == 1
    wrapped = [u.numel() for u, _, _ in BPRLoader(seven, 4, rank=1, world_size=2, uneven="wrap")]
    assert wrapped == [2, 2]
