import pytest
import torch
from torch_geometric.data import TemporalData

from graphkit.loader import TemporalBatcher


def events(n=23):
    g = torch.Generator().manual_seed(0)
    t = torch.sort(torch.randint(0, 50, (n,), generator=g)).values
    return TemporalData(src=torch.randint(0, 5, (n,), generator=g),
                        dst=torch.randint(5, 9, (n,), generator=g), t=t,
                        msg=torch.randn(n, 3, generator=g))


def test_chronological_consecutive_batches():
    data = events()
    batches = list(TemporalBatcher(data, 5))
    assert [b.num_events for b in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([b.e_id for b in batches]), torch.arange(23))
    assert torch.equal(torch.cat([b.t for b in batches]), data.t)
    assert torch.equal(torch.cat([b.msg for b in batches]), data.msg)
    for a, b in zip(batches, batches[1:]):
        assert a.t.max() <= b.t.min()


def test_negatives_are_seeded_and_in_destination_range():
    data = events()
    loader = TemporalBatcher(data, 10, neg_sampling_ratio=1.0, seed=0)
    first = [b.neg_dst for b in loader]
    assert [x.numel() for x in first] == [10, 10, 3]
    assert all(((x >= 5) & (x <= 8)).all() for x in first)
    loader.set_epoch(0)
    assert all(torch.equal(x, b.neg_dst) for x, b in zip(first, loader))


def test_bad_input():
    data = events()
    data.t[7] = data.t[6] - 1
    with pytest.raises(ValueError, match="not in chronological order: event 7"):
        TemporalBatcher(data, 4)
    data = events()
    data.t[0] = -1
    with pytest.raises(ValueError, match=r"event 0 has a negative timestamp \(-1\)"):
        TemporalBatcher(data, 4)
    data = events()
    data.dst[4] = 9
    with pytest.raises(ValueError, match="event 4 has dst id 9, beyond the declared 9 nodes"):
        TemporalBatcher(data, 4, num_nodes=9)
    assert len(TemporalBatcher(data, 4)) == 6  # no declared count: any non-negative id
    data.src[2] = -3
    with pytest.raises(ValueError, match="event 2 has src id -3"):
        TemporalBatcher(data, 4)
    with pytest.raises(ValueError, match="no events"):
        TemporalBatcher(TemporalData(src=torch.zeros(0, dtype=torch.long),
                                     dst=torch.zeros(0, dtype=torch.long),
                                     t=torch.zeros(0, dtype=torch.long)), 4)
    with pytest.raises(ValueError, match="batch_size"):
        TemporalBatcher(events(), 0)
    bad = events()
    bad.t = bad.t.double()
    bad.t[3] = float("nan")
    with pytest.raises(ValueError, match="timestamp of event 3 is nan"):
        TemporalBatcher(bad, 4)
