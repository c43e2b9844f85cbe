import pytest
import torch
import torch.nn.functional as F
from torch.nn import Linear
from torch_geometric.nn import GINConv, global_add_pool
from torch_geometric.nn.aggr import AttentionalAggregation, PowerMeanAggregation

from graphkit.nn.aggr import AttSetsAggregation, GGeMAggregation, LCMAggregation, PoNetAggregation, SPPAggregation

INDEX = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3, 3])  # group 1 is empty


def all_aggrs(c=8):
    return [LCMAggregation(c, c), GGeMAggregation(c, groups=2), AttSetsAggregation(c, heads=2),
            PoNetAggregation(c, c, heads=2), SPPAggregation(levels=(1, 2))]


@pytest.mark.parametrize("aggr", all_aggrs(), ids=lambda a: type(a).__name__)
def test_shapes_empty_groups_and_message_passing(aggr):
    torch.manual_seed(0)
    x = torch.rand(10, 8)
    out = aggr(x, INDEX, dim_size=5)
    assert out.size(0) == 5 and torch.isfinite(out).all()
    if not isinstance(aggr, LCMAggregation):
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        assert torch.equal(out[4], torch.zeros_like(out[4]))
    # As a neighbourhood aggregation inside a PyG MessagePassing layer.
    conv = GINConv(Linear(out.size(-1), 4), aggr=aggr)
    edge_index = torch.tensor([[1, 2, 3, 0, 4, 5, 6], [0, 0, 0, 1, 1, 2, 2]])
    conv.nn = Linear(out.size(-1), 4) if out.size(-1) != 8 else conv.nn
    if out.size(-1) == 8:
        y = conv(torch.rand(7, 8), edge_index)
        assert y.shape == (7, 4)
    y = aggr(torch.rand(7, 8)[edge_index[0]], edge_index[1], dim_size=7)
    assert y.shape == (7, out.size(-1))


@pytest.mark.parametrize("aggr", all_aggrs()[1:], ids=lambda a: type(a).__name__)
def test_permutation_invariant_and_gradients(aggr):
    torch.manual_seed(1)
    x = torch.rand(10, 8, requires_grad=True)
    perm = torch.randperm(10)
    out = aggr(x, INDEX, dim_size=4)
    assert torch.allclose(out, aggr(x[perm], INDEX[perm], dim_size=4), atol=1e-5)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad.abs().sum() > 0
    for name, p in aggr.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_ggem_reference_and_special_cases():
    torch.manual_seed(2)
    aggr = GGeMAggregation(6, groups=3)
    assert sum(p.numel() for p in aggr.parameters()) == 3
    assert str(aggr) == "GGeMAggregation(6, groups=3)"
    with torch.no_grad():
        aggr.p.copy_(torch.tensor([1.0, 2.5, 7.0]))
    x = torch.rand(10, 6) + 0.01
    out = aggr(x, INDEX, dim_size=4)
    p = torch.tensor([1.0, 1, 2.5, 2.5, 7, 7])
    for g in (0, 2, 3):
        ref = x[INDEX == g].pow(p).mean(0).pow(1 / p)
        assert torch.allclose(out[g], ref, rtol=1e-4)
    # p = 1: mean pooling; large p on positive inputs: close to max pooling.
    with torch.no_grad():
        aggr.p.fill_(1.0)
    assert torch.allclose(aggr(x, INDEX)[3], x[INDEX == 3].mean(0), rtol=1e-5)
    with torch.no_grad():
        aggr.p.fill_(200.0)
    assert torch.allclose(aggr(x, INDEX)[3], x[INDEX == 3].max(0).values, rtol=2e-2)
    # No overflow for large inputs and p, unlike a direct power.
    assert torch.isfinite(aggr(torch.full((3, 6), 1e4), torch.zeros(3, dtype=torch.long))).all()
    # G = 1 matches PyG's PowerMeanAggregation inside its clamp range.
    gem = GGeMAggregation(6, groups=1, p=3.0)
    pm = PowerMeanAggregation(p=3.0, learn=True)
    assert torch.allclose(gem(x, INDEX, dim_size=4)[[0, 2, 3]], pm(x, INDEX, dim_size=4)[[0, 2, 3]],
                          rtol=1e-4)


def test_attsets_equals_pyg_attentional_and_mean_when_zero():
    torch.manual_seed(3)
    aggr = AttSetsAggregation(5)
    assert sum(p.numel() for p in aggr.parameters()) == 5 * 5 + 5
    assert sum(p.numel() for p in AttSetsAggregation(1024).parameters()) == 1_049_600
    x = torch.randn(10, 5)
    gate = Linear(5, 5)
    gate.load_state_dict(aggr.lin.state_dict())
    pyg = AttentionalAggregation(gate_nn=gate)
    assert torch.allclose(aggr(x, INDEX, dim_size=4), pyg(x, INDEX, dim_size=4), atol=1e-6)
    with torch.no_grad():
        aggr.lin.weight.zero_(), aggr.lin.bias.zero_()
    assert torch.allclose(aggr(x, INDEX)[2], x[INDEX == 2].mean(0), atol=1e-6)
    two = AttSetsAggregation(5, heads=2)
    assert two(x, INDEX).shape == (4, 10)
    assert str(two) == "AttSetsAggregation(5, heads=2)"


def test_ponet_reference_and_param_count():
    assert sum(p.numel() for p in PoNetAggregation(768, 768, heads=12).parameters()) == 2_952_960
    assert sum(p.numel() for p in PoNetAggregation(64, 64).parameters()) == 20_800
    torch.manual_seed(4)
    aggr = PoNetAggregation(4, 6, heads=2)
    assert str(aggr) == "PoNetAggregation(4, 6, heads=2)"
    x = torch.randn(10, 4)
    out = aggr(x, INDEX, dim_size=4)
    q, k, o, s, loc = aggr.lin(x).chunk(5, -1)
    for g in (0, 2, 3):
        m = INDEX == g
        qm = q[m].mean(0).view(2, 3)
        kk = k[m].view(-1, 2, 3)
        alpha = torch.softmax((kk * qm).sum(-1) / 3 ** 0.5, dim=0)      # [n, H]
        glob = (alpha.unsqueeze(-1) * kk).sum(0).view(6)
        ref = (glob + s[m].max(0).values) * o[m].mean(0) + loc[m].mean(0)
        assert torch.allclose(out[g], ref, atol=1e-5)


def test_spp_matches_adaptive_max_pool_and_figures():
    torch.manual_seed(5)
    spp = SPPAggregation(levels=(1, 2, 4), order="input")
    assert sum(p.numel() for p in spp.parameters()) == 0
    assert str(spp) == "SPPAggregation(levels=(1, 2, 4), order='input')"
    sizes = torch.tensor([1, 3, 4, 10, 17])
    index = torch.repeat_interleave(torch.arange(5), sizes)
    x = torch.randn(int(sizes.sum()), 3)
    out = spp(x, index)
    assert out.shape == (5, 3 * 7)
    for g in range(5):
        seq = x[index == g].t().unsqueeze(0)  # [1, C, L]
        ref = torch.cat([F.adaptive_max_pool1d(seq, n).squeeze(0).t().reshape(-1)
                         for n in (1, 2, 4)])
        # ours is [bin-major, channel-minor] per level, like the reference flattening
        assert torch.allclose(out[g], ref), g
    # A 1-D pyramid has n bins per level: (6, 3, 2, 1) gives C * 12 whatever the set sizes.
    spp4 = SPPAggregation(levels=(6, 3, 2, 1))
    index2 = torch.tensor([0] * 13 + [1] * 27)
    assert spp4(torch.randn(40, 256), index2).shape == (2, 256 * 12)
    # sort order: permutation invariant
    sorted_spp = SPPAggregation(levels=(1, 3))
    perm = torch.randperm(x.size(0))
    assert torch.allclose(sorted_spp(x, index), sorted_spp(x[perm], index[perm]))


def test_global_pooling_with_batch_vector():
    torch.manual_seed(6)
    x = torch.rand(10, 8)
    batch = INDEX
    for aggr in all_aggrs():
        out = aggr(x, batch, dim_size=4)
        assert out.size(0) == 4
    assert torch.allclose(GGeMAggregation(8, p=1.0)(x, batch), global_add_pool(x, batch) /
                          torch.bincount(batch).clamp(min=1).unsqueeze(-1))


@pytest.mark.parametrize("cls,args", [(GGeMAggregation, (8, 3)), (AttSetsAggregation, (0,)),
                                      (PoNetAggregation, (4, 6, 4)),
                                      (SPPAggregation, ((0, 1),))])
def test_constructor_errors(cls, args):
    with pytest.raises(ValueError):
        cls(*args)


@pytest.mark.parametrize("aggr", all_aggrs(), ids=lambda a: type(a).__name__)
def test_input_errors(aggr):
    with pytest.raises(ValueError, match="index"):
        aggr(torch.rand(3, 8), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="floating"):
        aggr(torch.ones(3, 8, dtype=torch.long), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="out of range"):
        aggr(torch.rand(3, 8), torch.tensor([0, 1, 9]), dim_size=2)


def test_ggem_propagates_nan_and_inf_instead_of_zero():
    # A NaN in a channel must not look like an empty group (zeros).
    aggr = GGeMAggregation(4, groups=2)
    x = torch.rand(10, 4) + 0.1
    x[3, 1] = float("nan")  # group 2, channel 1
    x[6, 2] = float("inf")  # group 3, channel 2
    out = aggr(x, INDEX, dim_size=5)
    assert torch.isnan(out[2, 1])
    assert torch.isposinf(out[3, 2])  # the generalised mean of a set holding +inf
    clean = torch.isfinite(x).all(1)
    # the other channels of those groups and the other groups are unaffected
    ref = aggr(torch.where(torch.isfinite(x), x, torch.ones_like(x)), INDEX, dim_size=5)
    mask = torch.ones_like(out, dtype=torch.bool)
    mask[2, 1] = mask[3, 2] = False
    assert torch.allclose(out[mask], ref[mask])
    assert torch.equal(out[[1, 4]], torch.zeros(2, 4))  # real empty groups are still zero
    assert clean.sum() == 8
    # PyG's power mean gives NaN for the NaN group too
    pm = PowerMeanAggregation(p=3.0)
    assert torch.isnan(pm(x, INDEX, dim_size=5)[2, 1])
    # gradients stay finite for finite inputs
    xg = (torch.rand(10, 4) + 0.1).requires_grad_(True)
    aggr(xg, INDEX, dim_size=5).sum().backward()
    assert torch.isfinite(xg.grad).all() and torch.isfinite(aggr.p.grad).all()
