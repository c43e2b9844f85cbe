import os

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import from_networkx

from graphkit.nn.models.ppgn import PPGN
from graphkit.transforms.equivariant_polynomials import EquivariantPolynomials

PLUS = EquivariantPolynomials(degree=6, level="edge", subset="ppgn++", pairs=True, log=True,
                              dtype=torch.float64)


def nxdata(g, feats=2, seed=0):
    d = from_networkx(nx.convert_node_labels_to_integers(g))
    d.num_nodes = g.number_of_nodes()
    gen = torch.Generator().manual_seed(seed)
    d.x = torch.rand(d.num_nodes, feats, generator=gen, dtype=torch.float64)
    d.edge_attr = torch.rand(d.edge_index.size(1), 3, generator=gen, dtype=torch.float64)
    return d


def model(**kw):
    torch.manual_seed(0)
    args = dict(in_channels=2, hidden_channels=8, out_channels=3, num_layers=2,
                edge_channels=3)
    args.update(kw)
    return PPGN(**args).double().eval()


def run(m, d):
    b = getattr(d, "batch", None)
    return m(d.x, d.edge_index, b, d.edge_attr, getattr(d, "poly_pair_index", None),
             getattr(d, "poly_pair_attr", None))


def test_shape_repr_and_reset():
    m = model()
    d = nxdata(nx.cycle_graph(5))
    out = run(m, d)
    assert out.shape == (1, 3)
    assert repr(m) == "PPGN(2, 8, 3, num_layers=2)"
    assert repr(model(pair_channels=4)) == "PPGN(2, 8, 3, num_layers=2, pair_channels=4)"
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m.reset_parameters()
    assert any(not torch.equal(state[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("readout", ["sum", "mean"])
def test_invariant_to_node_permutation(readout):
    d = nxdata(nx.gnp_random_graph(9, 0.4, seed=1))
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(2))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(9)
    d2 = Data(x=d.x[perm], edge_index=inv[d.edge_index], edge_attr=d.edge_attr, num_nodes=9)
    m = model(readout=readout)
    assert torch.allclose(run(m, d), run(m, d2), atol=1e-10)
    m = model(readout=readout, pair_channels=4)
    assert torch.allclose(run(m, PLUS(d)), run(m, PLUS(d2)), atol=1e-10)


def test_batch_equals_single_graphs():
    graphs = [PLUS(nxdata(g, seed=k)) for k, g in enumerate(
        [nx.cycle_graph(4), nx.complete_graph(6), nx.path_graph(2), nx.petersen_graph()])]
    for pc in (0, 4):
        m = model(pair_channels=pc)
        singles = torch.cat([run(m, g) for g in graphs])
        batched = run(m, Batch.from_data_list(graphs))
        assert torch.allclose(singles, batched, atol=1e-10)


def test_separates_what_1wl_cannot():
    # a 6-cycle and two triangles: both 2-regular on 6 nodes
    m = model(in_channels=0, edge_channels=0)
    a = m(None, from_networkx(nx.cycle_graph(6)).edge_index, torch.zeros(6, dtype=torch.long))
    two = nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    b = m(None, from_networkx(two).edge_index, torch.zeros(6, dtype=torch.long))
    assert (a - b).abs().max() > 1e-6


@pytest.mark.skipif(not os.environ.get("GRAPHKIT_DATA"), reason="needs the dataset mirror")
def test_ppgn_plus_plus_separates_shrikhande_and_rook_graph_ppgn_does_not():
    from graphkit import datasets

    g1, g2 = datasets.load("SR", family="sr16622")
    outs = {}
    for pc in (0, 4):
        m = model(in_channels=0, edge_channels=0, pair_channels=pc, hidden_channels=16)
        outs[pc] = [m(None, g.edge_index, torch.zeros(16, dtype=torch.long),
                      pair_index=PLUS(g).poly_pair_index, pair_attr=PLUS(g).poly_pair_attr)
                    for g in (g1, g2)]
    scale = outs[0][0].abs().max()
    assert (outs[0][0] - outs[0][1]).abs().max() < 1e-9 * scale  # 2-FWL-equivalent pair
    assert (outs[4][0] - outs[4][1]).abs().max() > 1e-4 * outs[4][0].abs().max()


def test_gradients_reach_edge_and_pair_features():
    d = PLUS(nxdata(nx.complete_graph(4)))
    m = model(pair_channels=4, hidden_channels=2, num_layers=1)
    ea = d.edge_attr.clone().requires_grad_()
    pa = d.poly_pair_attr.clone().requires_grad_()
    x = d.x.clone().requires_grad_()
    f = lambda x, ea, pa: m(x, d.edge_index, None, ea, d.poly_pair_index, pa)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, ea, pa))
    assert torch.autograd.gradgradcheck(f, (x, ea, pa))


def test_bad_input():
    for kw in (dict(hidden_channels=0), dict(num_layers=0), dict(readout="max"),
               dict(dropout=1.0), dict(edge_channels=-1), dict(in_channels=True)):
        with pytest.raises(ValueError):
            model(**kw)
    m = model()
    d = nxdata(nx.cycle_graph(4))
    with pytest.raises(ValueError, match="node features of shape"):
        m(d.x[:, :1], d.edge_index, None, d.edge_attr)
    with pytest.raises(ValueError, match="edge_attr of size 3 is required"):
        m(d.x, d.edge_index)
    with pytest.raises(ValueError, match=r"edge_attr must have shape \(8, 3\)"):
        m(d.x, d.edge_index, None, d.edge_attr[:5])
    with pytest.raises(ValueError, match="pair_attr of size 4 is required"):
        model(pair_channels=4)(d.x, d.edge_index, None, d.edge_attr)
    big = model(max_nodes=3)
    with pytest.raises(ValueError, match="graph 0 has 4 nodes, above max_nodes=3"):
        big(d.x, d.edge_index, None, d.edge_attr)


def test_graph_without_edges_and_single_node():
    m = model()
    x = torch.rand(3, 2, dtype=torch.float64)
    e = torch.empty(2, 0, dtype=torch.long)
    out = m(x, e, torch.tensor([0, 0, 1]), torch.empty(0, 3, dtype=torch.float64))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_self_loops_directed_and_weighted_edges():
    # Self-loops are diagonal adjacency entries (beside the node features on the diagonal).
    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 1, 2]])  # path 0-1-2 and a loop at 2
    x = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    m = model(edge_channels=0)
    h, _ = m.dense_input(x, ei)
    assert h[0, 2, 2, 0] == 1 and h[0, 1, 1, 0] == 0
    assert not torch.allclose(m(x, ei), m(x, ei[:, :4]))
    # Directed edges: A[i, j] = 1 for i -> j only; the model stays permutation invariant.
    g = nx.gnp_random_graph(7, 0.4, seed=3, directed=True)
    d = from_networkx(g)
    x = torch.rand(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    h, _ = m.dense_input(x, d.edge_index)
    src, dst = d.edge_index
    assert (h[0, src, dst, 0] == 1).all() and not torch.equal(h[0, ..., 0], h[0, ..., 0].T)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(7)
    assert torch.allclose(m(x, d.edge_index), m(x[perm], inv[d.edge_index]), atol=1e-10)
    # Weighted edges: PPGN has no edge_weight argument; weights enter as a 1-channel edge_attr.
    w = torch.rand(d.edge_index.size(1), 1, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(3))
    mw = model(edge_channels=1)
    h, _ = mw.dense_input(x, d.edge_index, edge_attr=w)
    assert torch.equal(h[0, src, dst, 1], w[:, 0])
    assert not torch.allclose(mw(x, d.edge_index, None, w), mw(x, d.edge_index, None, 2 * w))
