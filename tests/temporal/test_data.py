import pytest
import torch
from torch_geometric.data import TemporalData

from graphkit.temporal import NegativeSampler, check_events, chronological_split, read_events_csv


def events(src, dst, t, msg=None):
    e = len(src)
    return TemporalData(src=torch.tensor(src), dst=torch.tensor(dst), t=torch.tensor(t),
                        msg=torch.zeros(e, 0) if msg is None else torch.tensor(msg))


def test_check_events_errors():
    assert check_events(events([0, 1], [1, 2], [0, 5])) == 3
    with pytest.raises(ValueError, match="out of time order: event 2 has t=3"):
        check_events(events([0, 1, 0], [1, 2, 2], [0, 5, 3]))
    with pytest.raises(ValueError, match="event 1 has a negative timestamp"):
        check_events(events([0, 1], [1, 2], [0, -5]))
    with pytest.raises(ValueError, match="event 0 has a non-finite timestamp"):
        check_events(events([0, 1], [1, 2], [float("nan"), 1.0]))
    with pytest.raises(ValueError, match="event 1 has dst id 7, beyond the declared 5 nodes"):
        check_events(events([0, 1], [1, 7], [0, 1]), num_nodes=5)
    with pytest.raises(ValueError, match="negative src id"):
        check_events(events([0, -1], [1, 2], [0, 1]))
    with pytest.raises(ValueError, match="no events"):
        check_events(events([], [], []))
    with pytest.raises(ValueError, match="event 1 has NaN or infinite features"):
        check_events(events([0, 1], [1, 2], [0, 1], [[0.0], [float("inf")]]))


def test_read_events_csv(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text("src,dst,t,f1,f2\n0,1,0,0.5,1\n1,2,3,1.5,2\n")
    d = read_events_csv(p)
    assert d.src.tolist() == [0, 1] and d.dst.tolist() == [1, 2] and d.t.tolist() == [0, 3]
    assert d.msg.shape == (2, 2) and d.t.dtype == torch.long
    p.write_text("src,dst,t\n0,1,0\n1,2,3\n")
    assert read_events_csv(p).msg.shape == (2, 0)
    p.write_text("src,dst,t\n0,1,5\n1,2,3\n")
    with pytest.raises(ValueError, match=r"ev.csv: events out of time order: line 3 has t=3"):
        read_events_csv(p)
    p.write_text("src,dst,t\n0,1,5\n1,9,6\n")
    with pytest.raises(ValueError, match="line 3 has dst id 9, beyond the declared 4 nodes"):
        read_events_csv(p, num_nodes=4)
    p.write_text("src,dst,t\n0,1.5,5\n")
    with pytest.raises(ValueError, match="line 2: node ids must be integers"):
        read_events_csv(p)


def test_chronological_split_transductive_and_ties():
    t = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    d = events(list(range(20)), [(i + 1) % 20 for i in range(20)], t)
    s = chronological_split(d)
    assert s.train.sum() + s.val.sum() + s.test.sum() == 20
    assert (d.t[s.train].max() < d.t[s.val].min()) and (d.t[s.val].max() < d.t[s.test].min())
    assert bool(s.val[8]) == bool(s.val[9]) and bool(s.train[8]) == bool(s.train[9])  # tie
    assert not s.test_inductive.any() and not s.new_nodes.any()


def test_chronological_split_inductive_holds_nodes_out():
    g = torch.Generator().manual_seed(0)
    e = 400
    d = TemporalData(src=torch.randint(0, 50, (e,), generator=g), dst=torch.randint(0, 50, (e,), generator=g),
                     t=torch.arange(e), msg=torch.zeros(e, 0))
    s = chronological_split(d, inductive=True, seed=3)
    new = s.new_nodes
    assert int(new.sum()) == 5
    for m in (s.train, s.val):
        assert not (new[d.src[m]] | new[d.dst[m]]).any()
    assert (new[d.src[s.test_inductive]] | new[d.dst[s.test_inductive]]).all()
    assert torch.equal(chronological_split(d, inductive=True, seed=3).new_nodes, new)


def test_empty_split_is_an_error():
    d = events([0, 1, 2], [1, 2, 0], [5, 5, 5])
    with pytest.raises(ValueError, match="split is empty"):
        chronological_split(d)


def test_negatives_never_positive_and_historical():
    s = NegativeSampler(3, torch.Generator().manual_seed(0))
    src = torch.tensor([0, 0, 1])
    dst = torch.tensor([1, 2, 2])
    for _ in range(20):
        neg = s.sample(src, dst, num_random=4)
        pos = set(zip(src.tolist(), dst.tolist()))
        assert all((u, w) not in pos for u, row in zip(src.tolist(), neg.tolist()) for w in row)
    h = NegativeSampler(100, torch.Generator().manual_seed(1))
    h.set_history(torch.tensor([5, 5]), torch.tensor([7, 9]))
    neg = h.sample(torch.tensor([5]), torch.tensor([3]), num_random=0, num_historical=50)
    assert set(neg.view(-1).tolist()) <= {7, 9}
    neg = h.sample(torch.tensor([5]), torch.tensor([7]), num_random=0, num_historical=20)
    assert 7 not in neg.view(-1).tolist()


def test_negative_sampler_deterministic():
    a = NegativeSampler(50, torch.Generator().manual_seed(4)).sample(torch.arange(10), torch.arange(10), 3)
    b = NegativeSampler(50, torch.Generator().manual_seed(4)).sample(torch.arange(10), torch.arange(10), 3)
    assert torch.equal(a, b)


def test_read_events_csv_bad_timestamps_and_empty(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text("src,dst,t\n0,1,0\n1,2,\n")
    with pytest.raises(ValueError, match="ev.csv: line 3 has a non-finite timestamp"):
        read_events_csv(p)
    p.write_text("src,dst,t\n0,1,-4\n1,2,3\n")
    with pytest.raises(ValueError, match="ev.csv: line 2 has a negative timestamp"):
        read_events_csv(p)
    p.write_text("src,dst,t\n")
    with pytest.raises(ValueError, match="no events"):
        read_events_csv(p)


def test_inductive_split_without_held_out_test_event_is_an_error():
    # the only node first seen after the validation time never occurs in test
    d = events([0, 1, 0, 2, 0, 1, 0, 1, 1, 0], [1, 0, 1, 0, 1, 0, 1, 0, 0, 1], list(range(10)))
    with pytest.raises(ValueError, match="(no test event touches a held-out node|split is empty)"):
        chronological_split(d, inductive=True, new_node_ratio=0.34)


def test_read_events_csv_feature_width_changing_between_rows(tmp_path):
    """A row with fewer feature columns than the header is an error naming its line (not a
    silent zero or NaN feature); a row with more is pandas' parser error naming its line."""
    p = tmp_path / "ev.csv"
    p.write_text("src,dst,t,f1,f2\n0,1,1,0.5,0.1\n1,2,2,0.3\n")
    with pytest.raises(ValueError, match="ev.csv: line 3 has NaN or infinite features"):
        read_events_csv(p)
    p.write_text("src,dst,t,f1,f2\n0,1,1,0.5,0.1\n1,2,2,0.3,0.2,0.9\n")
    with pytest.raises(ValueError, match="Expected 5 fields in line 3, saw 6"):
        read_events_csv(p)
