import pytest
import torch


@pytest.mark.parametrize("shape", [(300, 400), (10, 10)])  # large (NumPy mask) and small paths
def test_fast_dropout_rate_scale_and_repeatability(shape):
    from graphkit.utils import fast_dropout

    x = torch.rand(shape) + 0.5
    assert fast_dropout(x, 0.3, training=False) is x
    torch.manual_seed(0)
    a = fast_dropout(x, 0.3, training=True)
    torch.manual_seed(0)
    b = fast_dropout(x, 0.3, training=True)
    assert torch.equal(a, b)
    kept = a != 0
    assert torch.allclose(a[kept], x[kept] / 0.7, rtol=1e-4)
    if x.numel() > 1000:
        assert abs(kept.float().mean().item() - 0.7) < 0.01
    with pytest.raises(ValueError, match="'p' must be in"):
        fast_dropout(x, 1.0, training=True)


def test_fast_dropout_on_csr_keeps_pattern_and_scales_values():
    from graphkit.utils import fast_dropout

    torch.manual_seed(3)
    x = (torch.rand(400, 500) < 0.05).float() * (torch.rand(400, 500) + 0.5)
    xs = x.to_sparse_csr()
    torch.manual_seed(0)
    out = fast_dropout(xs, 0.4, training=True)
    assert out.layout == torch.sparse_csr
    assert torch.equal(out.crow_indices(), xs.crow_indices())
    assert torch.equal(out.col_indices(), xs.col_indices())
    vals, kept = out.values(), out.values() != 0
    assert torch.allclose(vals[kept], xs.values()[kept] / 0.6, rtol=1e-4)
    assert abs(kept.float().mean().item() - 0.6) < 0.03
    torch.manual_seed(0)
    assert torch.equal(fast_dropout(xs, 0.4, training=True).values(), vals)
    with pytest.raises(ValueError, match="unsupported layout"):
        fast_dropout(x.to_sparse(), 0.4, training=True)
