import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import HeteroData

from graphkit.nn.models.latte import LATTE


def graph():
    data = HeteroData()
    g = torch.Generator().manual_seed(0)
    data["paper"].x = torch.randn(30, 5, generator=g)
    data["paper"].y = (data["paper"].x[:, 0] > 0).long()
    data["author"].x = torch.randn(20, 4, generator=g)
    src = torch.randint(0, 20, (60,), generator=g)
    dst = torch.randint(0, 30, (60,), generator=g)
    data["author", "writes", "paper"].edge_index = torch.stack([src, dst])
    return T.ToUndirected()(data)


def test_forward_train_and_repr():
    torch.manual_seed(0)
    data = graph()
    model = LATTE(-1, 8, 2, data.metadata(), "paper", num_layers=2)
    out = model(data.x_dict, data.edge_index_dict)
    assert out.shape == (30, 2)
    assert model.embed(data.x_dict, data.edge_index_dict).shape == (30, 16)
    assert repr(model) == "LATTE(target='paper', hidden_channels=8, out_channels=2, num_layers=2)"
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(80):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data.x_dict, data.edge_index_dict),
                                                 data["paper"].y)
        loss.backward()
        opt.step()
    model.eval()
    pred = model(data.x_dict, data.edge_index_dict).argmax(-1)
    assert (pred == data["paper"].y).float().mean() > 0.9


def test_bad_input():
    data = graph()
    with pytest.raises(ValueError, match="target node type 'movie'"):
        LATTE(-1, 8, 2, data.metadata(), "movie")
    model = LATTE(-1, 8, 2, data.metadata(), "paper")
    with pytest.raises(ValueError, match="no features for the target node type 'paper'"):
        model({"author": data["author"].x}, {})


def test_last_layer_computes_the_target_only_with_the_same_result():
    torch.manual_seed(0)
    data = graph()
    data["venue"].x = torch.randn(3, 2)
    data["paper", "in", "venue"].edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    data["venue", "holds", "paper"].edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    model = LATTE(-1, 8, 2, data.metadata(), "paper", num_layers=3).eval()
    got = model.embed(data.x_dict, data.edge_index_dict)
    # every layer on every node type, then the target's rows
    h, layers = data.x_dict, []
    for t, conv in enumerate(model.convs):
        h = conv(h, data.edge_index_dict)
        if t < 2:
            h = {k: torch.tanh(v) for k, v in h.items()}
        layers.append(h["paper"])
    torch.testing.assert_close(got, torch.cat(layers, -1))
    for p in model.parameters():  # lazy widths all set although layer 3 needs only 'paper'
        assert not isinstance(p, torch.nn.parameter.UninitializedParameter)
