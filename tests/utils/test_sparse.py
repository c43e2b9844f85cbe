import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from graphkit.utils import csr_spmm, edge_spmm, spmm_with_transpose, symmetric_spmm


def test_csr_spmm_matches_dense_with_empty_rows_and_is_differentiable():
    dense = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, -1.0], [0.0, 0.0, 0.0]])
    x = torch.randn(3, 5, requires_grad=True)
    out = csr_spmm(dense.to_sparse_csr(), x)
    assert torch.allclose(out, dense @ x)
    out.sum().backward()
    assert torch.allclose(x.grad, dense.t() @ torch.ones(4, 5))
    with pytest.raises(ValueError, match="cannot multiply"):
        csr_spmm(dense.to_sparse_csr(), torch.randn(4, 5))


def _sym(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=g, dtype=torch.double) * (torch.rand(n, n, generator=g) < 0.5)
    return a + a.t()


def test_symmetric_spmm_gradcheck_and_gradgradcheck():
    a = _sym().to_sparse_csr()
    x = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
    assert torch.allclose(symmetric_spmm(a, x), a.to_dense() @ x)
    assert gradcheck(lambda x: symmetric_spmm(a, x), (x,))
    assert gradgradcheck(lambda x: symmetric_spmm(a, x), (x,))


def test_spmm_with_transpose_gradcheck_and_gradgradcheck():
    dense = torch.rand(4, 6, dtype=torch.double) * (torch.rand(4, 6) < 0.5)
    a, a_t = dense.to_sparse_csr(), dense.t().contiguous().to_sparse_csr()
    h = torch.randn(6, 2, dtype=torch.double, requires_grad=True)
    assert torch.allclose(spmm_with_transpose(a, a_t, h), dense @ h)
    assert gradcheck(lambda h: spmm_with_transpose(a, a_t, h), (h,))
    assert gradgradcheck(lambda h: spmm_with_transpose(a, a_t, h), (h,))


def test_edge_spmm_is_differentiable_in_weights_and_features():
    src, dst = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 2, 0, 1])
    w = torch.rand(4, dtype=torch.double, requires_grad=True)
    h = torch.randn(3, 2, dtype=torch.double, requires_grad=True)
    dense = torch.zeros(3, 3, dtype=torch.double).index_put((dst, src), w.detach(), accumulate=True)
    assert torch.allclose(edge_spmm(src, dst, w, h), dense @ h)
    assert gradcheck(lambda w, h: edge_spmm(src, dst, w, h), (w, h))
    assert gradgradcheck(lambda w, h: edge_spmm(src, dst, w, h), (w, h))
