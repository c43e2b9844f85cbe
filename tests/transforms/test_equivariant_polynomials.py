import itertools

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import from_networkx, to_dense_adj

from graphkit.transforms import _polynomial_basis as pb
from graphkit.transforms.equivariant_polynomials import (
    EquivariantPolynomials,
    basis_names,
    equivariant_polynomials,
)


def graph(n, p, seed):
    g = nx.gnp_random_graph(n, p, seed=seed)
    d = from_networkx(g)
    d.num_nodes = n
    return g, d


def cols(t, level, names, data):
    out = t(data)
    feats = out.poly_x if level == "node" else out.poly_edge_attr
    return out, {name: feats[:, k].double() for k, name in enumerate(names)}


def simple_paths_from(g, i, length):
    count = 0

    def dfs(path):
        nonlocal count
        if len(path) == length + 1:
            count += 1
            return
        for nb in g[path[-1]]:
            if nb not in path:
                dfs(path + [nb])

    dfs([i])
    return count


def cycles_at(g, length):
    counts = [0] * g.number_of_nodes()
    for cyc in nx.simple_cycles(g, length_bound=length):
        if len(cyc) == length:
            for v in cyc:
                counts[v] += 1
    return counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_node_counts_match_brute_force(seed):
    g, d = graph(11, 0.45, seed)
    t = EquivariantPolynomials(degree=6, level="node")
    _, f = cols(t, "node", t.node_names, d)
    n = g.number_of_nodes()
    deg = torch.tensor([g.degree(i) for i in range(n)], dtype=torch.float64)
    tri = torch.tensor([nx.triangles(g, i) for i in range(n)], dtype=torch.float64)
    assert torch.equal(f["deg"], deg)
    assert torch.equal(f["tri"] / 2, tri)
    c4 = torch.tensor(cycles_at(g, 4), dtype=torch.float64)
    assert torch.equal((f["cyc4"] - f["star2"] - f["walk2"] + f["deg"]) / 2, c4)
    p2 = torch.tensor([simple_paths_from(g, i, 2) for i in range(n)], dtype=torch.float64)
    p3 = torch.tensor([simple_paths_from(g, i, 3) for i in range(n)], dtype=torch.float64)
    assert torch.equal(f["walk2"] - f["deg"], p2)
    assert torch.equal(f["walk3"] - f["walk2"] - f["star2"] + f["deg"] - f["tri"], p3)
    k4 = torch.zeros(n, dtype=torch.float64)
    for clique in nx.enumerate_all_cliques(g):
        if len(clique) == 4:
            k4[clique] += 1
    assert torch.equal(f["k4"] / 6, k4)
    assert k4.sum() > 0 and c4.sum() > 0  # the random graphs exercise the counts


def test_edge_counts_match_brute_force():
    g, d = graph(10, 0.5, 3)
    t = EquivariantPolynomials(degree=6, level="edge", pairs=True)
    out, f = cols(t, "edge", t.edge_names, d)
    src, dst = d.edge_index.tolist()
    for e, (i, j) in enumerate(zip(src, dst)):
        common = set(g[i]) & set(g[j])
        assert f["tri"][e] == len(common)
        assert f["diamond"][e] == sum(1 for a in common for b in common if g.has_edge(a, b))
        cliques = sum(1 for a, b in itertools.combinations(common, 2) if g.has_edge(a, b))
        assert f["k4"][e] == 2 * cliques
    # paths of length 3 between distinct nodes, from the dense pair features
    dense = to_dense_adj(out.poly_pair_index, edge_attr=out.poly_pair_attr,
                         max_num_nodes=10)[0].double()
    a = dense[..., t.edge_names.index("adj")]
    w3 = dense[..., t.edge_names.index("walk3")]
    deg = a.sum(1)
    for i, j in itertools.permutations(range(10), 2):
        brute = sum(1 for p in nx.all_simple_paths(g, i, j, cutoff=3) if len(p) == 4)
        assert w3[i, j] - a[i, j] * (deg[i] + deg[j] - 1) == brute


def test_batched_equals_naive_einsum_definition():
    _, d = graph(9, 0.5, 4)
    adj = to_dense_adj(d.edge_index, max_num_nodes=9)[0].double()
    for level in ("node", "edge"):
        els = pb.select(level, 6, "all")
        naive = pb.evaluate_naive(adj, els)
        node, edge = pb.evaluate_batched(adj[None], els if level == "node" else [],
                                         els if level == "edge" else [])
        fast = node[0] if level == "node" else edge[0]
        for k, el in enumerate(els):
            assert torch.equal(fast[..., k], naive[k]), (level, el.name)


def test_equivariance_under_permutation():
    _, d = graph(12, 0.35, 5)
    t = EquivariantPolynomials(degree=6, pairs=True)
    out = t(d)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(12)
    d2 = Data(edge_index=inv[d.edge_index], num_nodes=12)  # node v becomes inv[v]
    out2 = t(d2)
    assert torch.equal(out2.poly_x[inv], out.poly_x)
    assert torch.equal(out2.poly_edge_attr, out.poly_edge_attr)  # same edge order
    dense = to_dense_adj(out.poly_pair_index, edge_attr=out.poly_pair_attr, max_num_nodes=12)[0]
    dense2 = to_dense_adj(out2.poly_pair_index, edge_attr=out2.poly_pair_attr,
                          max_num_nodes=12)[0]
    assert torch.equal(dense2[inv][:, inv], dense)


def test_batch_equals_single_graphs_and_pairs_offset():
    graphs = [graph(n, 0.5, s)[1] for n, s in ((5, 0), (9, 1), (1, 2), (7, 3))]
    t = EquivariantPolynomials(degree=6, pairs=True)
    singles = [t(g) for g in graphs]
    batched = t(Batch.from_data_list(graphs))
    assert torch.equal(batched.poly_x, torch.cat([s.poly_x for s in singles]))
    assert torch.equal(batched.poly_edge_attr, torch.cat([s.poly_edge_attr for s in singles]))
    collated = Batch.from_data_list(singles)  # PyG offsets poly_pair_index like edge_index
    assert torch.equal(collated.poly_pair_index, batched.poly_pair_index)
    assert torch.equal(collated.poly_pair_attr, batched.poly_pair_attr)
    node, edge, mask = equivariant_polynomials(collated.edge_index, collated.batch, degree=6)
    assert edge.shape == (4, 9, 9, len(t.edge_names)) and mask.sum() == 22
    assert torch.equal(node.float(), batched.poly_x)


def test_chunked_quartic_path_matches(monkeypatch):
    import graphkit.transforms.equivariant_polynomials as mod

    graphs = [graph(n, 0.5, s)[1] for n, s in ((6, 0), (8, 1), (7, 2))]
    b = Batch.from_data_list(graphs)
    full = equivariant_polynomials(b.edge_index, b.batch, degree=6)
    monkeypatch.setattr(mod, "_CHUNK_ENTRIES", 300)  # forces one graph per chunk
    chunked = equivariant_polynomials(b.edge_index, b.batch, degree=6)
    assert torch.equal(full[0], chunked[0]) and torch.equal(full[1], chunked[1])


def test_names_degree_subset_and_options():
    assert basis_names(3, "node") == ["deg", "star2", "walk2", "tri", "walk3"]
    assert basis_names(6, "edge", "ppgn++") == ["diamond", "k4", "diamond_sub_outer",
                                                 "diamond_sub_middle"]
    assert basis_names(6, "node", "ppgn++") == ["k4"]
    assert basis_names(4, "node", "ppgn++") == []
    t = EquivariantPolynomials()
    assert t.node_names == ["deg", "star2", "walk2", "tri", "walk3", "cyc4", "walk4", "tri_nb"]
    assert repr(t) == ("EquivariantPolynomials(degree=4, level='both', subset='all', node=8, "
                       "edge=7)")
    _, d = graph(6, 0.6, 0)
    d.x = torch.ones(6, 2)
    out = EquivariantPolynomials(level="node", cat=True)(d)
    assert out.x.shape == (6, 10) and not hasattr(out, "poly_x")
    logged = EquivariantPolynomials(log=True)(d)
    raw = EquivariantPolynomials()(d)
    assert torch.allclose(logged.poly_x, torch.log1p(raw.poly_x))
    assert "poly_x" not in d  # the input is not modified
    for bad in (dict(degree=0), dict(degree=7), dict(level="pair"), dict(subset="x"),
                dict(self_loops="drop"), dict(directed="no"), dict(max_nodes=0),
                dict(level="node", pairs=True)):
        with pytest.raises(ValueError):
            EquivariantPolynomials(**bad)


def test_graphs_without_edges_single_node_and_empty():
    t = EquivariantPolynomials(degree=6, pairs=True)
    out = t(Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=4))
    assert out.poly_x.shape == (4, 12) and not out.poly_x.any()
    assert out.poly_edge_attr.shape == (0, 12) and out.poly_pair_index.shape == (2, 0)
    one = t(Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=1))
    assert one.poly_x.shape == (1, 12) and not one.poly_x.any()
    empty = t(Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=0))
    assert empty.poly_x.shape == (0, 12)


def test_self_loops_removed_kept_or_rejected():
    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 1, 2]])  # path 0-1-2 and a loop at 2
    plain = EquivariantPolynomials(level="node")(Data(edge_index=ei[:, :4], num_nodes=3))
    removed = EquivariantPolynomials(level="node")(Data(edge_index=ei, num_nodes=3))
    assert torch.equal(plain.poly_x, removed.poly_x)
    kept = EquivariantPolynomials(level="node", self_loops="keep")(Data(edge_index=ei, num_nodes=3))
    assert kept.poly_x[2, 0] == 2  # the loop counts as an adjacency entry A[2, 2] = 1
    with pytest.raises(ValueError, match="self-loop at node 2"):
        EquivariantPolynomials(self_loops="error")(Data(edge_index=ei, num_nodes=3))


def test_directed_and_weighted_edges():
    ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 3]])
    d = Data(edge_index=ei, num_nodes=4)
    with pytest.raises(ValueError, match="directed"):
        EquivariantPolynomials()(d)
    out = EquivariantPolynomials(degree=6, directed="allow", level="node")(d)
    adj = to_dense_adj(ei, max_num_nodes=4)[0].double()
    naive = pb.evaluate_naive(adj, pb.select("node", 6, "all"))
    assert torch.equal(out.poly_x.double(), torch.stack(naive, -1))
    assert out.poly_x[0, 3] == 1  # tri: the directed 3-cycle 0 -> 1 -> 2 -> 0 closes once
    g = nx.gnp_random_graph(8, 0.5, seed=7, directed=True)
    d = from_networkx(g)
    d.num_nodes = 8
    out = EquivariantPolynomials(degree=6, directed="allow", pairs=True, dtype=torch.float64)(d)
    adj = to_dense_adj(d.edge_index, max_num_nodes=8)[0].double()
    naive = torch.stack(pb.evaluate_naive(adj, pb.select("edge", 6, "all")), -1)
    dense = to_dense_adj(out.poly_pair_index, edge_attr=out.poly_pair_attr, max_num_nodes=8)[0]
    assert torch.equal(dense, naive) and not torch.equal(naive, naive.transpose(0, 1))

    _, d = graph(7, 0.6, 1)
    d.w = torch.rand(d.edge_index.size(1), generator=torch.Generator().manual_seed(0))
    from torch_geometric.utils import to_undirected

    d.edge_index, d.w = to_undirected(d.edge_index, d.w, reduce="max")
    out = EquivariantPolynomials(degree=6, weight_attr="w", level="edge", dtype=torch.float64)(d)
    adj = to_dense_adj(d.edge_index, edge_attr=d.w.double(), max_num_nodes=7)[0]
    naive = torch.stack(pb.evaluate_naive(adj, pb.select("edge", 6, "all")), -1)
    assert torch.allclose(out.poly_edge_attr, naive[d.edge_index[0], d.edge_index[1]])
    d.w[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        EquivariantPolynomials(weight_attr="w", directed="allow")(d)
    with pytest.raises(ValueError, match="no attribute 'weight'"):
        EquivariantPolynomials(weight_attr="weight")(d)


def test_too_many_nodes_is_a_clear_error():
    d = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=40)
    with pytest.raises(ValueError, match="graph 0 has 40 nodes, above max_nodes=32"):
        EquivariantPolynomials(max_nodes=32)(d)
    b = Batch.from_data_list([Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=3),
                              d])
    with pytest.raises(ValueError, match="graph 1 has 40 nodes"):
        EquivariantPolynomials(max_nodes=32)(b)


def test_prefix_lets_two_transforms_share_a_graph():
    _, d = graph(7, 0.5, 2)
    d = EquivariantPolynomials(degree=3)(d)
    d = EquivariantPolynomials(degree=6, level="edge", subset="ppgn++", pairs=True, prefix="pp")(d)
    assert d.poly_edge_attr.size(1) == 4 and d.pp_edge_attr.size(1) == 4
    assert d.poly_x.size(1) == 5 and "pp_x" not in d
    b = Batch.from_data_list([d, d])
    assert int(b.pp_pair_index.max()) >= 7  # offset like an index
    with pytest.raises(ValueError, match="prefix"):
        EquivariantPolynomials(prefix="a b")
