import json
import random

import pytest
import torch

from graphkit.nas import AutoGNNModel, build_model, default_search_space


def _arch(op, **kw):
    layer = dict(operator=op, attention="gat", heads=2, hidden=16, aggregation="sum",
                 activation="relu", skip="none")
    layer.update(kw)
    return {"layers": [dict(layer), dict(layer)]}


@pytest.mark.parametrize("op", ["autognn", "gcn", "gat", "sage", "gin", "dagnn"])
@pytest.mark.parametrize("aggr", ["sum", "max", "lcm", "ggem"])
def test_every_operator_builds_and_runs(graph, op, aggr):
    model = AutoGNNModel(graph.num_features, 3, _arch(op, aggregation=aggr, skip="residual"))
    out = model(graph.x, graph.edge_index)
    assert out.shape == (graph.num_nodes, 3)
    out.sum().backward()


def test_description_round_trip_rebuilds_the_same_model(graph):
    space = default_search_space()
    arch = space.sample(random.Random(3))
    torch.manual_seed(0)
    model = AutoGNNModel(graph.num_features, 3, arch, space).eval()
    text = json.dumps(model.description())
    again = build_model(text).eval()
    again.load_state_dict(model.state_dict())
    assert again.description() == model.description()
    assert torch.equal(again(graph.x, graph.edge_index), model(graph.x, graph.edge_index))


def test_a_choice_whose_layer_fails_to_build_names_the_part(graph):
    space = default_search_space()

    def broken(i, o, **kw):
        raise RuntimeError("no kernel for this width")

    space.add_choice("operator", "broken", broken)
    arch = _arch("gcn")
    arch["layers"][1]["operator"] = "broken"
    with pytest.raises(ValueError, match=r"layer 1: operator 'broken' failed to build .*"
                                         r"no kernel for this width"):
        AutoGNNModel(graph.num_features, 3, arch, space)
    space.add_choice("operator", "not_a_module", lambda i, o, **kw: 42)
    arch["layers"][1]["operator"] = "not_a_module"
    with pytest.raises(ValueError, match="layer 1: operator 'not_a_module'.*not a Module"):
        AutoGNNModel(graph.num_features, 3, arch, space)


def test_bad_descriptions():
    with pytest.raises(ValueError, match="no 'out_channels'"):
        build_model({"in_channels": 3, "layers": []})
    with pytest.raises(ValueError, match="unknown description format"):
        build_model({"format": "x/9", "in_channels": 3, "out_channels": 2, "layers": []})
    with pytest.raises(ValueError, match="layer 0: no 'skip'"):
        bad = _arch("gcn")
        del bad["layers"][0]["skip"]
        AutoGNNModel(4, 2, bad)


def _bag_of_words(n=200, f=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, f, generator=g) < 0.02).float() * (1 + torch.rand(n, f, generator=g))


def test_input_dropout_acts_on_the_non_zeros_of_sparse_features():
    x = _bag_of_words()
    model = AutoGNNModel(x.size(1), 3, _arch("gcn"), dropout=0.5)
    torch.manual_seed(0)
    out = model._input_dropout(x)
    nz = x != 0
    assert not bool(out[~nz].any())  # zeros stay zero
    kept = out[nz] != 0
    assert torch.allclose(out[nz][kept], 2.0 * x[nz][kept])  # inverted dropout scaling
    assert 0.4 < kept.float().mean() < 0.6
    assert model.eval()._input_dropout(x) is x  # identity in evaluation
    model.train()
    # the same statistics as dense dropout: the mean of many draws is the input
    mean = torch.stack([model._input_dropout(x) for _ in range(400)]).mean(0)
    assert not bool(mean[~nz].any())
    assert (mean[nz] - x[nz]).abs().mean() < 0.1 * x[nz].abs().mean()


def test_input_dropout_follows_in_place_changes_and_new_inputs():
    x = _bag_of_words()
    model = AutoGNNModel(x.size(1), 3, _arch("gcn"), dropout=0.5)
    model._input_dropout(x)
    zero = (x == 0).nonzero()[0]
    x[zero[0], zero[1]] = 7.0  # a new non-zero, written in place
    seen = torch.stack([model._input_dropout(x)[zero[0], zero[1]] for _ in range(30)])
    assert bool((seen == 14.0).any())  # the cached positions were rebuilt
    other = _bag_of_words(seed=1)
    for _ in range(5):
        out = model._input_dropout(other)
        assert not bool(out[other == 0].any())
    dense = torch.rand(50, x.size(1)) + 0.1  # no zeros: plain dropout
    kept = model._input_dropout(dense) != 0
    assert 0.4 < kept.float().mean() < 0.6


def test_input_dropout_of_features_that_require_grad_is_dense(graph):
    """Features that are learned or attacked get the gradient of dense dropout, zeros too."""
    import copy
    import pickle

    x = _bag_of_words().requires_grad_()
    model = AutoGNNModel(x.size(1), 3, _arch("gcn"), dropout=0.5)
    torch.manual_seed(1)
    model._input_dropout(x).sum().backward()
    zero = x.detach() == 0
    assert set(x.grad.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < (x.grad[zero] != 0).float().mean() < 0.6
    model = AutoGNNModel(graph.num_features, 3, _arch("gat"), dropout=0.5)
    model(graph.x, graph.edge_index)
    again = pickle.loads(pickle.dumps(model))  # the cache of the last input is not pickled
    copy.deepcopy(model)
    assert again._input_nonzeros is None
    again.eval()
    model.eval()
    assert torch.equal(again(graph.x, graph.edge_index), model(graph.x, graph.edge_index))
