import pytest
import torch
from torch_geometric.data import HeteroData

from graphkit.hetero import RandomProjectionFeatures, rphgnn_precompute, sparse_random_projection


def small_graph(with_reverse: bool = True) -> HeteroData:
    data = HeteroData()
    data["paper"].x = torch.tensor([[1., 0., 0.], [0., 1., 0.], [0., 0., 1.], [1., 1., 0.]])
    data["author"].x = torch.tensor([[1., 2.], [3., 4.], [5., 6.]])
    data["venue"].num_nodes = 2
    writes = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 3]])
    data["author", "writes", "paper"].edge_index = writes
    if with_reverse:
        data["paper", "written_by", "author"].edge_index = writes.flip(0)
    data["paper", "in", "venue"].edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    data["paper", "cites", "paper"].edge_index = torch.tensor([[0, 1], [1, 2]])
    return data


def mean_adj(rows, cols, n_rows, n_cols):
    a = torch.zeros(n_rows, n_cols)
    a[rows, cols] = 1.0
    return a / a.sum(1, keepdim=True).clamp(min=1)


def test_one_hop_groups_are_exact_odd_even_means():
    data = small_graph()
    out = rphgnn_precompute(data, "paper", num_hops=1, embedding_dim=4, seed=0,
                            out_dtype=torch.float32)
    assert isinstance(out, RandomProjectionFeatures)
    # the reverse edge type is the transpose of writes: dropped
    assert out.relations == [("author", "writes", "paper"), ("paper", "in", "venue"),
                             ("paper", "cites", "paper")]
    assert out.keys == [("odd", "author__writes__paper"), ("even", "author__writes__paper"),
                        ("odd", "venue__rev_in__paper"), ("even", "venue__rev_in__paper"),
                        ("odd", "paper__cites__paper"), ("even", "paper__cites__paper")]
    xp, xa = data["paper"].x, data["author"].x
    p_pa = mean_adj([0, 1, 1, 3], [0, 0, 1, 2], 4, 3)   # paper <- author
    p_ap = mean_adj([0, 0, 1, 2], [0, 1, 1, 3], 3, 4)   # author <- paper
    writes_odd, writes_even = out.groups[0], out.groups[1]
    assert writes_odd.shape == (4, 1, 2) and writes_even.shape == (4, 2, 3)
    torch.testing.assert_close(writes_odd[:, 0], p_pa @ xa)
    torch.testing.assert_close(writes_even[:, 0], xp)       # raw input first
    torch.testing.assert_close(writes_even[:, 1], p_pa @ (p_ap @ xp))
    # paper 2 has no author: its odd message is zero
    assert writes_odd[2].abs().sum() == 0
    # featureless venue: random features of width embedding_dim
    assert out.groups[2].shape == (4, 1, 4)
    # the citation relation is symmetrised
    sym = mean_adj([0, 1, 1, 2], [1, 0, 2, 1], 4, 4)
    torch.testing.assert_close(out.groups[4][:, 0], sym @ xp)
    torch.testing.assert_close(out.groups[5][:, 1], sym @ (sym @ xp))
    assert out.time_s > 0 and out.peak_rss_mb > 0
    assert out.group_shapes == [(1, 2), (2, 3), (1, 4), (2, 3), (1, 3), (2, 3)]


def test_same_result_without_the_reverse_edge_type_and_seeded():
    a = rphgnn_precompute(small_graph(True), "paper", num_hops=3, embedding_dim=4, seed=1)
    b = rphgnn_precompute(small_graph(False), "paper", num_hops=3, embedding_dim=4, seed=1)
    assert a.keys == b.keys
    for g, h in zip(a.groups, b.groups):
        assert g.dtype == torch.float16 and g.shape[1] in (3, 4)
        torch.testing.assert_close(g, h)
    c = rphgnn_precompute(small_graph(), "paper", num_hops=3, embedding_dim=4, seed=2)
    assert any(not torch.equal(g, h) for g, h in zip(a.groups, c.groups))


@pytest.mark.parametrize("sparsity", [3.0, "sqrt"])
def test_later_hops_are_squashed_to_fixed_width(sparsity):
    data = small_graph()
    out = rphgnn_precompute(data, "paper", num_hops=4, embedding_dim=4, seed=0, sparsity=sparsity,
                            include_input=False, out_dtype=torch.float32)
    for (c, w), (kind, _) in zip(out.group_shapes, out.keys):
        assert c == 4
    assert all(torch.isfinite(g).all() for g in out.groups)
    # after a squash every row is a sum of unit vectors: bounded by the number of messages
    assert float(out.groups[1][:, 1:].abs().max()) <= 6.0 + 1e-4


def test_sparse_random_projection_values():
    r = sparse_random_projection(200, 300, 3.0, torch.Generator().manual_seed(0))
    vals = torch.unique(r)
    torch.testing.assert_close(vals, torch.tensor([-(3 ** 0.5), 0.0, 3 ** 0.5]))
    assert 0.25 < float((r != 0).float().mean()) < 0.42
    with pytest.raises(ValueError, match="sparsity"):
        sparse_random_projection(2, 2, 0.5)


def test_bad_input_names_the_type():
    data = small_graph()
    with pytest.raises(ValueError, match="'movie'"):
        rphgnn_precompute(data, "movie")
    bad = small_graph()
    bad["paper", "cites", "paper"].edge_index = torch.empty(2, 0, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\('paper', 'cites', 'paper'\) has no edges"):
        rphgnn_precompute(bad, "paper")
    bad = small_graph()
    bad["paper", "to", "ghost"].edge_index = torch.tensor([[0], [0]])
    with pytest.raises(ValueError, match="unknown node type 'ghost'|'ghost' has neither"):
        rphgnn_precompute(bad, "paper")
    bad = small_graph()
    bad["author", "writes", "paper"].edge_index = torch.tensor([[0, 7], [0, 1]])
    with pytest.raises(ValueError, match="source id 7 outside \\[0, 3\\) of node type 'author'"):
        rphgnn_precompute(bad, "paper")
    bad = small_graph()
    bad["author"].x = torch.tensor([[1., float("nan")], [3., 4.], [5., 6.]])
    with pytest.raises(ValueError, match="node type 'author': features of node 0 are NaN"):
        rphgnn_precompute(bad, "paper")
    bad = small_graph()
    bad["paper"].x = torch.ones(3, 3)
    bad["paper"].num_nodes = 4
    with pytest.raises(ValueError, match="node type 'paper': features have 3 rows for 4"):
        rphgnn_precompute(bad, "paper")
    lonely = small_graph()
    lonely["genre"].x = torch.ones(2, 2)
    with pytest.raises(ValueError, match="'genre' takes part in no relation"):
        rphgnn_precompute(lonely, "genre")
    with pytest.raises(ValueError, match="num_hops"):
        rphgnn_precompute(small_graph(), "paper", num_hops=0)
