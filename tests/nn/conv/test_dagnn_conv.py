import pytest
import torch

from graphkit.nn.conv import DAGNNConv

try:
    from torch_geometric import EdgeIndex
except ImportError:  # pragma: no cover
    EdgeIndex = None


def _graph():
    # 0-1, 1-2, 2-0, 2-3 (undirected) plus an isolated node 4
    ei = torch.tensor([[0, 1, 1, 2, 2, 0, 2, 3], [1, 0, 2, 1, 0, 2, 3, 2]])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    return x, ei


def _dense_reference(conv, x, ei, w=None):
    n = x.size(0)
    a = torch.zeros(n, n)
    a[ei[1], ei[0]] = 1.0 if w is None else w
    a = a + torch.eye(n)
    d = a.sum(1).pow(-0.5)
    a_hat = d.view(-1, 1) * a * d.view(1, -1)
    hs = [x]
    for _ in range(conv.K):
        hs.append(a_hat @ hs[-1])
    out = torch.zeros_like(x)
    for h in hs:
        s = torch.sigmoid(h @ conv.proj.weight.t() + conv.proj.bias)
        out = out + s * h
    return out


def test_matches_dense_reference_and_repr():
    torch.manual_seed(0)
    x, ei = _graph()
    conv = DAGNNConv(2, K=3)
    assert repr(conv) == "DAGNNConv(2, K=3)"
    out = conv(x, ei)
    assert out.shape == (5, 2)
    assert torch.allclose(out, _dense_reference(conv, x, ei), atol=1e-6)
    # the isolated node only sees itself: h_k = x for every k
    s = torch.sigmoid(x[4] @ conv.proj.weight.t() + conv.proj.bias)
    assert torch.allclose(out[4], (conv.K + 1) * s * x[4], atol=1e-6)


def test_edge_weights_match_dense_reference():
    torch.manual_seed(1)
    x, ei = _graph()
    w = torch.rand(ei.size(1)) + 0.5
    w = (w + w[[1, 0, 3, 2, 5, 4, 7, 6]]) / 2  # symmetric weights
    conv = DAGNNConv(2, K=2)
    assert torch.allclose(conv(x, ei, w), _dense_reference(conv, x, ei, w), atol=1e-6)


def test_sparse_layouts_agree():
    torch.manual_seed(2)
    x, ei = _graph()
    conv = DAGNNConv(2, K=4)
    expected = conv(x, ei)
    adj_t = torch.sparse_coo_tensor(ei.flip(0), torch.ones(ei.size(1)), (5, 5))
    assert torch.allclose(conv(x, adj_t), expected, atol=1e-6)
    assert torch.allclose(conv(x, adj_t.to_sparse_csr()), expected, atol=1e-6)
    if EdgeIndex is not None:
        e = EdgeIndex(ei, sparse_size=(5, 5))
        assert torch.allclose(conv(x, e), expected, atol=1e-6)


def test_cached_and_reset():
    torch.manual_seed(3)
    x, ei = _graph()
    conv = DAGNNConv(2, K=2, cached=True)
    out1 = conv(x, ei)
    assert conv._cached_adj is not None
    # the cache is used: a different graph gives the same result
    assert torch.allclose(conv(x, ei[:, :2]), out1)
    state = {k: v.clone() for k, v in conv.state_dict().items()}
    conv.reset_parameters()
    assert conv._cached_adj is None
    conv.load_state_dict(state)
    assert torch.allclose(conv(x, ei), out1)
    with pytest.raises(ValueError, match="cached adjacency has 5 nodes"):
        conv(torch.rand(3, 2), ei[:, :2])


def test_gradients_flow_and_no_edges():
    torch.manual_seed(4)
    x, ei = _graph()
    x.requires_grad_(True)
    conv = DAGNNConv(2, K=3, cached=True)
    conv(x, ei).sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    conv2 = DAGNNConv(2, K=3)
    conv2.load_state_dict(conv.state_dict())
    _dense_reference(conv2, ref_x, ei).sum().backward()
    assert torch.allclose(x.grad, ref_x.grad, atol=1e-5)
    assert conv.proj.weight.grad is not None
    # no edges at all: every node keeps its own features
    empty = torch.empty(2, 0, dtype=torch.long)
    out = DAGNNConv(2, K=2)(x.detach(), empty)
    assert out.shape == (5, 2) and torch.isfinite(out).all()


def test_bad_input():
    x, ei = _graph()
    conv = DAGNNConv(2, K=2)
    with pytest.raises(ValueError, match="in_channels=2"):
        conv(torch.rand(5, 3), ei)
    with pytest.raises(ValueError, match=r"out of range \[0, 5\)"):
        conv(x, torch.tensor([[0, 7], [1, 0]]))
    with pytest.raises(ValueError, match=r"shape \[2, num_edges\]"):
        conv(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        conv(torch.tensor([[float("nan"), 0.0]] * 5), ei)
    with pytest.raises(ValueError, match="edge_weight"):
        conv(x, ei, torch.ones(3))
    with pytest.raises(ValueError, match="does not match the 5 nodes"):
        conv(x, torch.sparse_coo_tensor(ei, torch.ones(ei.size(1)), (6, 6)))
    with pytest.raises(ValueError, match="'K' must be a non-negative int"):
        DAGNNConv(2, K=-1)
    with pytest.raises(ValueError, match="'in_channels' must be a positive int"):
        DAGNNConv(0, K=2)


def test_compile_smoke():
    torch.manual_seed(5)
    x, ei = _graph()
    conv = DAGNNConv(2, K=2, cached=True)
    expected = conv(x, ei)
    compiled = torch.compile(conv, backend="eager")
    assert torch.allclose(compiled(x, ei), expected, atol=1e-6)
