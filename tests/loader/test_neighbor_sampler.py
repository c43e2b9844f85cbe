import itertools

import pytest
import torch
from torch_geometric.data import Data

from graphkit.loader import NeighborLoader, NeighborSampler


def power_law_graph(n=60, m=400, seed=0):
    """Directed graph whose in-degrees follow a heavy tail (some rows far above the fan-out,
    some below, some zero)."""
    g = torch.Generator().manual_seed(seed)
    w = 1.0 / torch.arange(1, n + 1, dtype=torch.float) ** 1.2
    dst = torch.multinomial(w, m, replacement=True, generator=g)
    src = torch.randint(0, n, (m,), generator=g)
    return torch.stack([src, dst]), n


def reference_check(out, edge_index, num_nodes, seeds, fanouts, replace):
    """Slow, loop-based check of one directed sample against the definition."""
    node = out.node.tolist()
    assert node[:out.batch_size] == seeds.tolist()
    assert len(set(node)) == len(node)
    assert sum(out.num_sampled_nodes) == len(node)
    assert sum(out.num_sampled_edges) == out.row.numel() == out.col.numel() == out.edge.numel()
    nbrs = {v: [] for v in range(num_nodes)}  # in-neighbour edge ids per node
    for j, (s, d) in enumerate(edge_index.t().tolist()):
        nbrs[d].append(j)
    # every sampled edge is a true edge, with the right id, flowing neighbour -> target
    for r, c, e in zip(out.row.tolist(), out.col.tolist(), out.edge.tolist()):
        assert (node[r], node[c]) == tuple(edge_index[:, e].tolist())
    node_start = [0] + list(itertools.accumulate(out.num_sampled_nodes))
    edge_start = [0] + list(itertools.accumulate(out.num_sampled_edges))
    known = set(node[:out.batch_size])
    for hop, k in enumerate(fanouts):
        lo, hi = node_start[hop], node_start[hop + 1]
        rows = out.row[edge_start[hop]:edge_start[hop + 1]].tolist()
        cols = out.col[edge_start[hop]:edge_start[hop + 1]].tolist()
        eids = out.edge[edge_start[hop]:edge_start[hop + 1]].tolist()
        assert all(lo <= c < hi for c in cols), "hop edges must point at the previous hop's nodes"
        for t in range(lo, hi):
            mine = [e for c, e in zip(cols, eids) if c == t]
            deg = len(nbrs[node[t]])
            if k == -1:
                assert sorted(mine) == sorted(nbrs[node[t]])
            elif replace:
                assert len(mine) == (k if deg else 0)
            else:
                assert len(mine) == min(k, deg) and len(set(mine)) == len(mine)
            assert set(mine) <= set(nbrs[node[t]])
        new = []  # new nodes in order of first appearance
        for r in rows:
            v = node[r]
            if v not in known:
                known.add(v)
                new.append(v)
        assert node[node_start[hop + 1]:node_start[hop + 2]] == new


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("fanouts", [[3, 2], [5], [-1, 2], [4, -1, 1]])
def test_matches_reference_definition(replace, fanouts):
    ei, n = power_law_graph()
    sampler = NeighborSampler(ei, n, replace=replace)
    g = torch.Generator().manual_seed(1)
    for seeds in (torch.tensor([0, 1, 2]), torch.tensor([59, 3, 17, 0, 40]), torch.arange(n)):
        out = sampler.sample(seeds, fanouts, generator=g)
        reference_check(out, ei, n, seeds, fanouts, replace)


def test_induced_subgraph_when_not_directed():
    ei, n = power_law_graph()
    sampler = NeighborSampler(ei, n, directed=False)
    out = sampler.sample(torch.tensor([0, 5]), [3, 2], generator=torch.Generator().manual_seed(0))
    nodes = out.node.tolist()
    pos = {v: i for i, v in enumerate(nodes)}
    expected = sorted((pos[s], pos[d], j) for j, (s, d) in enumerate(ei.t().tolist())
                      if s in pos and d in pos)
    got = sorted(zip(out.row.tolist(), out.col.tolist(), out.edge.tolist()))
    assert got == expected and len(got) > 0


def star_forest(copies, degree):
    """``copies`` disjoint stars: centre ``c`` has in-neighbours ``c+1 .. c+degree``."""
    centres = torch.arange(copies) * (degree + 1)
    src = (centres.view(-1, 1) + torch.arange(1, degree + 1)).view(-1)
    dst = centres.repeat_interleave(degree)
    return torch.stack([src, dst]), copies * (degree + 1), centres


def chi_square_p(counts, expected):
    from scipy.stats import chi2

    stat = float(((counts - expected) ** 2 / expected).sum())
    return chi2.sf(stat, counts.numel() - 1)


def test_without_replacement_subsets_are_uniform():
    # degree 5, fan-out 2: each of the C(5, 2) = 10 subsets has probability 1/10
    degree, k, copies, rounds = 5, 2, 500, 8
    ei, n, centres = star_forest(copies, degree)
    sampler = NeighborSampler(ei, n)
    g = torch.Generator().manual_seed(12345)
    subsets = {s: i for i, s in enumerate(itertools.combinations(range(1, degree + 1), k))}
    counts = torch.zeros(len(subsets), dtype=torch.double)
    for _ in range(rounds):
        out = sampler.sample(centres, [k], generator=g)
        slot = (out.node[out.row] - out.node[out.col]).view(copies, k)  # offsets 1..degree
        for row in torch.sort(slot, 1).values.tolist():
            counts[subsets[tuple(row)]] += 1
    assert counts.sum() == copies * rounds
    assert chi_square_p(counts, copies * rounds / len(subsets)) > 1e-3


@pytest.mark.parametrize("replace", [False, True])
def test_neighbour_inclusion_is_uniform(replace):
    degree, k, copies, rounds = 20, 5, 200, 10
    ei, n, centres = star_forest(copies, degree)
    sampler = NeighborSampler(ei, n, replace=replace)
    g = torch.Generator().manual_seed(7)
    counts = torch.zeros(degree, dtype=torch.double)
    for _ in range(rounds):
        out = sampler.sample(centres, [k], generator=g)
        slot = out.node[out.row] - out.node[out.col] - 1
        counts += torch.bincount(slot, minlength=degree).double()
    assert counts.sum() == copies * rounds * k
    assert chi_square_p(counts, copies * rounds * k / degree) > 1e-3


def test_sampled_graphsage_equals_full_graph_with_all_neighbours():
    from torch_geometric.nn.models import GraphSAGE

    ei, n = power_law_graph()
    torch.manual_seed(0)
    x = torch.randn(n, 8)
    data = Data(x=x, edge_index=ei, y=torch.arange(n))
    model = GraphSAGE(8, 16, num_layers=2, out_channels=3).eval()
    full = model(x, ei)
    loader = NeighborLoader(data, [-1, -1], batch_size=7, shuffle=True, seed=0)
    seen = []
    for batch in loader:
        out = model(batch.x, batch.edge_index)[:batch.batch_size]
        torch.testing.assert_close(out, full[batch.n_id[:batch.batch_size]], rtol=1e-5, atol=1e-5)
        assert torch.equal(batch.y, batch.n_id)  # node attributes indexed by n_id
        seen.append(batch.n_id[:batch.batch_size])
    assert torch.equal(torch.sort(torch.cat(seen)).values, torch.arange(n))


def test_loader_batch_format_and_edge_attributes():
    ei, n = power_law_graph()
    data = Data(x=torch.randn(n, 4), edge_index=ei, edge_attr=torch.arange(ei.size(1)).float(),
                train_mask=torch.arange(n) % 3 == 0)
    loader = NeighborLoader(data, [4, 3], input_nodes=data.train_mask, batch_size=8, seed=0)
    batch = next(iter(loader))
    assert batch.batch_size == 8 and batch.input_id.tolist() == list(range(8))
    assert torch.equal(batch.n_id[:8], data.train_mask.nonzero().view(-1)[:8])
    assert torch.equal(batch.edge_attr, batch.e_id.float())
    assert torch.equal(batch.train_mask, data.train_mask[batch.n_id])
    assert batch.num_nodes == batch.n_id.numel() == batch.x.size(0)
    assert len(batch.num_sampled_nodes) == 3 and len(batch.num_sampled_edges) == 2


def test_loader_seeded_and_reproducible():
    ei, n = power_law_graph()
    data = Data(edge_index=ei, num_nodes=n)

    def run(seed):
        return [b.e_id for b in NeighborLoader(data, [3, 3], batch_size=16, shuffle=True, seed=seed)]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.numel() == y.numel() and torch.equal(x, y) for x, y in zip(a, c))


def test_loader_shards_seeds_over_ranks():
    ei, n = power_law_graph()
    data = Data(edge_index=ei, num_nodes=n)
    kw = dict(batch_size=10, shuffle=True, seed=4, drop_last=True)
    full = [b.n_id[:b.batch_size] for b in NeighborLoader(data, [2], rank=0, world_size=1, **kw)]
    r0 = [b.n_id[:b.batch_size] for b in NeighborLoader(data, [2], rank=0, world_size=2, **kw)]
    r1 = [b.n_id[:b.batch_size] for b in NeighborLoader(data, [2], rank=1, world_size=2, **kw)]
    assert len(full) == len(r0) == len(r1) == 6
    for f, a, b in zip(full, r0, r1):
        assert torch.equal(f, torch.cat([a, b]))


def test_graph_without_edges_gives_seed_only_batches():
    sampler = NeighborSampler(torch.zeros(2, 0, dtype=torch.long), 4)
    for replace in (False, True):
        sampler.replace = replace
        out = sampler.sample(torch.tensor([2, 0]), [3, 2])
        assert out.node.tolist() == [2, 0] and out.row.numel() == 0
        assert out.num_sampled_nodes == [2, 0, 0]


def test_bad_input():
    ei, n = power_law_graph()
    sampler = NeighborSampler(ei, n)
    with pytest.raises(ValueError, match=r"seed node 60 at position 1 is outside \[0, 60\)"):
        sampler.sample(torch.tensor([0, 60]), [2])
    with pytest.raises(ValueError, match="seed node -1 at position 0"):
        sampler.sample(torch.tensor([-1]), [2])
    with pytest.raises(ValueError, match="duplicates"):
        sampler.sample(torch.tensor([3, 3]), [2])
    with pytest.raises(ValueError, match="integer ids"):
        sampler.sample(torch.tensor([0.0]), [2])
    with pytest.raises(ValueError, match="fan-out of hop 1 is 0"):
        sampler.sample(torch.tensor([0]), [2, 0])
    with pytest.raises(ValueError, match="fan-out of hop 0 is -3"):
        sampler.sample(torch.tensor([0]), [-3])
    with pytest.raises(ValueError, match="num_neighbors is empty"):
        sampler.sample(torch.tensor([0]), [])
    with pytest.raises(ValueError, match="list of fan-outs"):
        sampler.sample(torch.tensor([0]), 5)
    with pytest.raises(ValueError, match="the graph is empty"):
        NeighborSampler(torch.zeros(2, 0, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="the graph is empty"):
        NeighborLoader(Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=0), [2])
    with pytest.raises(ValueError, match=r"edge 1 of edge_index is \(1, 9\)"):
        NeighborSampler(torch.tensor([[0, 1], [1, 9]]), 5)
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        NeighborSampler(torch.tensor([0, 1]), 5)
    data = Data(edge_index=ei, num_nodes=n)
    with pytest.raises(ValueError, match="seed node 99"):
        NeighborLoader(data, [2], input_nodes=torch.tensor([1, 99]))
    with pytest.raises(ValueError, match="does not split evenly"):
        # 59 seeds = 7 * 8 + 3: the last batch of 3 does not split over 2 ranks
        NeighborLoader(data, [2], input_nodes=torch.arange(59), batch_size=8, rank=0,
                       world_size=2)
