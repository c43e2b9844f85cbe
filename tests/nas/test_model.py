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
