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


def _dense_reference_weighted(conv, x, ei, w):
    """Dense DAGNN reference differentiable in ``w`` (edge weights, self-loops of weight one)."""
    n = x.size(0)
    a = torch.zeros(n, n, dtype=x.dtype).index_put((ei[1], ei[0]), w, accumulate=True)
    a = a + torch.eye(n, dtype=x.dtype)
    d = a.sum(1).pow(-0.5)
    a_hat = d.view(-1, 1) * a * d.view(1, -1)
    hs = [x]
    for _ in range(conv.K):
        hs.append(a_hat @ hs[-1])
    out = torch.zeros_like(x)
    for h in hs:
        out = out + torch.sigmoid(h @ conv.proj.weight.t() + conv.proj.bias) * h
    return out


def _layouts(ei, n):
    """Functions (x, conv, w) -> output for COO, torch.sparse CSR/COO and EdgeIndex input
    that all take the edge weights ``w`` as a dense vector, so gradcheck can perturb them."""
    perm = torch.argsort(ei[1] * n + ei[0])  # CSR order of the (target, source) matrix
    rows, cols = ei[1][perm], ei[0][perm]
    crow = torch.zeros(n + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    fns = {
        "coo": lambda conv, x, w: conv(x, ei, w),
        "csr": lambda conv, x, w: conv(x, torch.sparse_csr_tensor(crow, cols, w[perm], (n, n))),
        "sparse_coo": lambda conv, x, w: conv(x, torch.sparse_coo_tensor(ei.flip(0), w, (n, n))),
    }
    if EdgeIndex is not None:
        e = EdgeIndex(ei, sparse_size=(n, n))
        fns["edge_index"] = lambda conv, x, w: conv(x, e, w)
    return fns


def test_issue_reproducer_edge_weight_gets_a_gradient():
    torch.manual_seed(10)
    conv = DAGNNConv(3, K=2).double()
    x = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    w = torch.ones(3, dtype=torch.double, requires_grad=True)
    conv(x, ei, w).sum().backward()
    ref_w = w.detach().clone().requires_grad_(True)
    ref_x = x.detach().clone().requires_grad_(True)
    _dense_reference_weighted(conv, ref_x, ei, ref_w).sum().backward()
    assert w.grad is not None
    assert torch.allclose(w.grad, ref_w.grad, atol=1e-10)
    assert torch.allclose(x.grad, ref_x.grad, atol=1e-10)


@pytest.mark.parametrize("x_grad", [True, False])
def test_edge_weight_gradient_counts_every_hop(x_grad):
    # With x constant, the gradient w.r.t. the weights still flows through all K hops.
    torch.manual_seed(11)
    x, ei = _graph()
    x = x.double().requires_grad_(x_grad)
    conv = DAGNNConv(2, K=3).double()
    w = (torch.rand(ei.size(1), dtype=torch.double) + 0.5).requires_grad_(True)
    g = torch.randn(5, 2, dtype=torch.double)
    (conv(x, ei, w) * g).sum().backward()
    ref_w = w.detach().clone().requires_grad_(True)
    (_dense_reference_weighted(conv, x.detach(), ei, ref_w) * g).sum().backward()
    assert torch.allclose(w.grad, ref_w.grad, atol=1e-10)


@pytest.mark.parametrize("layout", ["coo", "csr", "sparse_coo", "edge_index"])
def test_gradcheck_and_gradgradcheck_on_edge_weight_and_x(layout):
    torch.manual_seed(12)
    x, ei = _graph()
    n = x.size(0)
    fns = _layouts(ei, n)
    if layout not in fns:
        pytest.skip("EdgeIndex not available")
    fn = fns[layout]
    conv = DAGNNConv(2, K=2).double()
    x = x.double().requires_grad_(True)
    w = (torch.rand(ei.size(1), dtype=torch.double) + 0.5).requires_grad_(True)
    f = lambda xx, ww: fn(conv, xx, ww)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))
    # only x needs grad (the fast path): first and second order
    w0 = w.detach()
    assert torch.autograd.gradcheck(lambda xx: f(xx, w0), (x,))
    assert torch.autograd.gradgradcheck(lambda xx: f(xx, w0), (x,))
    # matches the fast path in value
    assert torch.allclose(f(x, w), f(x.detach(), w0), atol=1e-12)


def test_edge_weight_gradient_without_normalization_and_self_loops():
    torch.manual_seed(13)
    x, ei = _graph()
    x = x.double().requires_grad_(True)
    w = (torch.rand(ei.size(1), dtype=torch.double) + 0.5).requires_grad_(True)
    for kwargs in (dict(normalize=False), dict(add_self_loops=False)):
        conv = DAGNNConv(2, K=2, **kwargs).double()
        assert torch.autograd.gradcheck(lambda xx, ww: conv(xx, ei, ww), (x, w))


def test_cached_with_learned_edge_weights_is_an_error():
    x, ei = _graph()
    conv = DAGNNConv(2, K=2, cached=True)
    w = torch.ones(ei.size(1), requires_grad=True)
    with pytest.raises(ValueError, match="cached=True"):
        conv(x, ei, w)
    # without grad (e.g. under no_grad) the weights are plain constants and may be cached
    with torch.no_grad():
        conv(x, ei, w)
    assert conv._cached_adj is not None


def test_cache_follows_dtype_and_device():
    torch.manual_seed(14)
    x, ei = _graph()
    w = torch.rand(ei.size(1)) + 0.5
    conv = DAGNNConv(2, K=3, cached=True)
    out32 = conv(x, ei, w)
    conv.double()
    out64 = conv(x.double(), ei[:, :2])  # the cached graph is still the one used
    ref = DAGNNConv(2, K=3).double()
    ref.load_state_dict(conv.state_dict())
    expected = ref(x.double(), ei, w.double())
    assert out64.dtype == torch.double
    assert torch.allclose(out64, expected, atol=1e-12)  # rebuilt in double, not cast
    assert torch.allclose(out64.float(), out32, atol=1e-5)
    conv.float()
    assert torch.allclose(conv(x, ei), out32)
    conv.to("cpu")
    assert torch.allclose(conv(x, ei), out32)
