import pytest
import torch

from graphkit.nas.conv import ATTENTIONS, AutoGNNConv


def _graph():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # path 0 - 1 - 2
    return x, ei


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("concat", [True, False])
def test_shapes_and_gradients(attention, concat):
    x, ei = _graph()
    conv = AutoGNNConv(2, 4, heads=3, attention=attention, concat=concat)
    out = conv(x, ei)
    assert out.shape == (3, 12 if concat else 4)
    out.sum().backward()
    assert conv.lin.weight.grad is not None


def test_const_sum_is_neighbourhood_sum_with_self_loop():
    x, ei = _graph()
    conv = AutoGNNConv(2, 2, attention="const", aggr="sum", bias=False)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.eye(2))
    expected = torch.tensor([[1.0, 1.0], [2.0, 2.0], [1.0, 2.0]])
    assert torch.allclose(conv(x, ei), expected)


def test_gcn_attention_is_symmetric_normalisation():
    x, ei = _graph()
    conv = AutoGNNConv(2, 2, attention="gcn", bias=False)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.eye(2))
    d = torch.tensor([2.0, 3.0, 2.0])  # degrees with self-loops
    a = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.float)
    expected = (a / (d.sqrt()[:, None] * d.sqrt()[None, :])) @ x
    assert torch.allclose(conv(x, ei), expected, atol=1e-6)


def test_softmax_attention_rows_sum_to_one_with_mean_of_constant_features():
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    x = torch.ones(3, 2)
    conv = AutoGNNConv(2, 2, heads=2, attention="gat", bias=False)
    out = conv(x, ei)
    # every node sees identical messages W·1, so any convex combination returns it
    assert torch.allclose(out, conv.lin(x), atol=1e-6)


def test_learned_aggregation_module():
    from graphkit.nn.aggr.ggem import GGeMAggregation

    x, ei = _graph()
    conv = AutoGNNConv(2, 3, heads=2, attention="cos", aggr=GGeMAggregation(6))
    assert conv(x, ei).shape == (3, 6)


def test_errors_and_repr():
    with pytest.raises(ValueError, match="unknown attention 'dot'"):
        AutoGNNConv(2, 2, attention="dot")
    with pytest.raises(ValueError, match="'heads' must be a positive int"):
        AutoGNNConv(2, 2, heads=0)
    with pytest.raises(ValueError, match="aggr must be"):
        AutoGNNConv(2, 2, aggr="median")
    conv = AutoGNNConv(2, 4, heads=2, attention="sym-gat")
    with pytest.raises(ValueError, match=r"shape \[num_nodes, 2\]"):
        conv(torch.ones(3, 5), _graph()[1])
    assert repr(conv) == "AutoGNNConv(2, 4, heads=2, attention='sym-gat', aggr='sum')"


def test_not_pyg_agnn():
    from torch_geometric.nn import AGNNConv

    assert not issubclass(AutoGNNConv, AGNNConv)
    assert "not" in AutoGNNConv.__doc__ and "AGNNConv" in AutoGNNConv.__doc__
