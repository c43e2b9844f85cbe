import pytest
import torch

from graphkit.nn.models.rphgnn import RpHGNN


def groups(n=5):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, 3, 4, generator=g), torch.randn(n, 1, 2, generator=g).half()]


@pytest.mark.parametrize("merge", ["concat", "mean"])
def test_forward_shapes_and_repr(merge):
    model = RpHGNN([(3, 4), (1, 2)], 8, 3, merge=merge, input_dropout=0.5, dropout=0.2)
    out = model(groups())
    assert out.shape == (5, 3) and out.dtype == torch.float32
    assert model.filters == [2, 1]          # a single-member group gets one filter
    assert repr(model) == f"RpHGNN(groups=2, hidden_channels=8, out_channels=3, merge={merge!r})"


def test_matches_hand_computation_in_eval_mode():
    model = RpHGNN([(3, 4), (1, 2)], 8, 3, group_layers=1, out_layers=1).eval()
    xs = groups()
    parts = []
    for g, x in enumerate(xs):
        mixed = torch.einsum("fc,ncd->nfd", model.mix_weight[g], x.float()) \
            + model.mix_bias[g].view(1, -1, 1)
        lin, act = model.group_mlps[g][0], model.group_mlps[g][1]
        parts.append(act(lin(mixed.flatten(1))))
    expected = model.out_mlp(torch.cat(parts, -1))
    torch.testing.assert_close(model(xs), expected)


def test_reset_parameters_is_idempotent_and_trains():
    torch.manual_seed(0)
    model = RpHGNN([(3, 4), (1, 2)], 16, 2)
    model.reset_parameters()
    xs = [torch.randn(40, 3, 4), torch.randn(40, 1, 2)]
    y = (xs[0][:, 0, 0] > 0).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs), y)
        loss.backward()
        opt.step()
    assert float(loss) < 0.2
    torch.manual_seed(1)
    model.reset_parameters()
    w = [p.clone() for p in model.parameters()]
    torch.manual_seed(1)
    model.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(w, model.parameters()))


def test_bad_input():
    model = RpHGNN([(3, 4), (1, 2)], 8, 3)
    with pytest.raises(ValueError, match="expected 2 groups, got 1"):
        model(groups()[:1])
    with pytest.raises(ValueError, match=r"group 1 has shape \(5, 1, 3\), expected \[batch, 1, 2\]"):
        model([groups()[0], torch.randn(5, 1, 3)])
    with pytest.raises(ValueError, match="merge"):
        RpHGNN([(3, 4)], 8, 3, merge="sum")
    with pytest.raises(ValueError, match="group_shapes"):
        RpHGNN([], 8, 3)
    with pytest.raises(ValueError, match="hidden_channels"):
        RpHGNN([(3, 4)], 0, 3)
