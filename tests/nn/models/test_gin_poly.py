import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import from_networkx

from graphkit.nn.models.gin_poly import GINPoly
from graphkit.transforms.equivariant_polynomials import EquivariantPolynomials

T = EquivariantPolynomials(degree=4, log=True)


def data(g, seed=0):
    d = from_networkx(g)
    d.num_nodes = g.number_of_nodes()
    d.x = torch.rand(d.num_nodes, 3, generator=torch.Generator().manual_seed(seed))
    return T(d)


def make(**kw):
    torch.manual_seed(0)
    args = dict(in_channels=3, poly_channels=T.num_node_features, hidden_channels=16,
                out_channels=2, num_layers=3, edge_poly_channels=T.num_edge_features)
    args.update(kw)
    return GINPoly(**args)


def run(m, b):
    return m(b.x, b.edge_index, b.batch, b.poly_x, b.poly_edge_attr, b.num_graphs)


def test_shapes_training_and_repr():
    b = Batch.from_data_list([data(nx.cycle_graph(5)), data(nx.petersen_graph(), 1)])
    m = make()
    out = run(m, b)
    assert out.shape == (2, 2)
    out.sum().backward()
    assert m.convs[0].lin.weight.grad is not None  # edge polynomials reach GINE's projection
    assert repr(m) == "GINPoly(3, poly=8, edge_poly=7, 16, 2, num_layers=3)"
    plain = make(poly_channels=0, edge_poly_channels=0)
    assert plain(b.x, b.edge_index, b.batch, num_graphs=2).shape == (2, 2)


def test_invariant_to_node_permutation_in_eval_mode():
    g = nx.gnp_random_graph(10, 0.4, seed=2)
    d = data(g)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(10)
    d2 = T(Data(x=d.x[perm], edge_index=inv[d.edge_index], num_nodes=10))
    m = make().eval()
    b1, b2 = Batch.from_data_list([d]), Batch.from_data_list([d2])
    assert torch.allclose(run(m, b1), run(m, b2), atol=1e-5)


def test_polynomials_separate_graphs_plain_gin_cannot():
    # two triangles vs a 6-cycle: equal for 1-WL (so for plain GIN), different triangle counts
    g1 = nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    g2 = nx.cycle_graph(6)
    b = Batch.from_data_list([data(g1), data(g2)])
    b.x = torch.ones_like(b.x)
    plain = make(poly_channels=0, edge_poly_channels=0).eval()
    out = plain(b.x, b.edge_index, b.batch, num_graphs=2)
    assert torch.allclose(out[0], out[1], atol=1e-6)
    poly = make().eval()
    poly.poly_norm.running_var.fill_(1.0)
    out = run(poly, b)
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_bad_input():
    for kw in (dict(in_channels=0, poly_channels=0), dict(hidden_channels=0),
               dict(pool="max"), dict(num_layers=0)):
        with pytest.raises(ValueError):
            make(**kw)
    b = Batch.from_data_list([data(nx.cycle_graph(4))])
    m = make()
    with pytest.raises(ValueError, match="poly_x of shape"):
        m(b.x, b.edge_index, b.batch, None, b.poly_edge_attr)
    with pytest.raises(ValueError, match="poly_edge_attr of shape"):
        m(b.x, b.edge_index, b.batch, b.poly_x, b.poly_edge_attr[:, :2])
    with pytest.raises(ValueError, match="expected x of shape"):
        m(b.x[:, :1], b.edge_index, b.batch, b.poly_x, b.poly_edge_attr)


def test_graphs_without_edges_single_node_self_loops_and_directed():
    e = torch.empty(2, 0, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    graphs = [T(Data(x=torch.rand(3, 3, generator=gen), edge_index=e, num_nodes=3)),
              T(Data(x=torch.rand(1, 3, generator=gen), edge_index=e, num_nodes=1))]
    b = Batch.from_data_list(graphs)
    assert not b.poly_x.any() and b.poly_edge_attr.shape == (0, T.num_edge_features)
    m = make()
    out = run(m, b)  # training mode: batch norm over the 4 nodes and 0 edges
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    assert torch.isfinite(m.edge_norm.running_mean).all()
    m.eval()
    one = Batch.from_data_list(graphs[1:])
    assert torch.isfinite(run(m, one)).all()
    m.train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        run(m, one)  # batch norm needs two nodes in training mode
    # Self-loops: the transform drops them from the counts but keeps edge_index (and one
    # poly_edge_attr row per edge, the diagonal value at the loop).
    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 1, 2]])
    d = T(Data(x=torch.rand(3, 3, generator=gen), edge_index=ei, num_nodes=3))
    assert d.poly_edge_attr.size(0) == 5
    assert torch.equal(d.poly_x, T(Data(edge_index=ei[:, :4], num_nodes=3)).poly_x)
    assert torch.isfinite(run(m.eval(), Batch.from_data_list([d]))).all()
    # Directed edges: the transform refuses them unless directed="allow"; the model takes any
    # edge_index (messages flow source -> target).
    ed = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="directed"):
        T(Data(edge_index=ed, num_nodes=3))
    td = EquivariantPolynomials(degree=4, log=True, directed="allow")
    dd = Batch.from_data_list([td(Data(x=torch.rand(3, 3, generator=gen), edge_index=ed,
                                       num_nodes=3))])
    rev = dd.clone()
    rev.edge_index = ed.flip(0)
    rev.poly_edge_attr = td(Data(edge_index=ed.flip(0), num_nodes=3)).poly_edge_attr
    rev.poly_x = td(Data(edge_index=ed.flip(0), num_nodes=3)).poly_x
    assert not torch.allclose(run(m, dd), run(m, rev))
