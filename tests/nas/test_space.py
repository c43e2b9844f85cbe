import random

import pytest
import torch

from graphkit.nas import AutoGNN, SearchSpace, default_search_space
from graphkit.nas.space import REQUIRED_COMPONENTS


def test_default_space_has_the_issue_choices():
    space = default_search_space()
    assert set(REQUIRED_COMPONENTS) <= set(space.component_names)
    assert {"gcn", "gat", "sage", "gin", "dagnn", "autognn"} <= set(space.choices("operator"))
    assert {"sum", "mean", "max", "lcm", "ggem"} <= set(space.choices("aggregation"))
    assert set(space.choices("attention")) == {"const", "gcn", "gat", "sym-gat", "cos", "linear",
                                               "generalized_linear"}
    assert space.choices("skip") == ["none", "residual"]
    assert "lcm" not in default_search_space(learned_aggregations=False).choices("aggregation")


def test_sample_and_validate():
    space = default_search_space(num_layers=3)
    arch = space.sample(random.Random(0))
    assert len(arch["layers"]) == 3
    assert space.validate(arch) == arch
    bad = {"layers": [dict(layer) for layer in arch["layers"]]}
    bad["layers"][1]["heads"] = 3
    with pytest.raises(ValueError, match="layer 1: heads=3 is not a choice"):
        space.validate(bad)
    with pytest.raises(ValueError, match="2 layers, the search space 3"):
        space.validate({"layers": arch["layers"][:2]})


def test_registry_errors():
    space = default_search_space()
    with pytest.raises(ValueError, match="already has a choice 'gcn'"):
        space.add_choice("operator", "gcn", lambda *a, **k: None)
    with pytest.raises(ValueError, match="no component class 'colour'"):
        space.choices("colour")
    with pytest.raises(ValueError, match="no choice 'nope'"):
        space.value("operator", "nope")


def test_empty_search_space_is_a_clear_error(graph):
    with pytest.raises(ValueError, match="search space is empty"):
        SearchSpace().check()
    with pytest.raises(ValueError, match="search space is empty"):
        AutoGNN(SearchSpace(), graph, budget=2)
    space = SearchSpace().add_choice("operator", "x", None)
    with pytest.raises(ValueError, match="missing"):
        space.check()
    space = default_search_space()
    for name in list(space.choices("activation")):
        space.remove_choice("activation", name)
    with pytest.raises(ValueError, match=r"\['activation'\] have no choices"):
        space.check()


class _MyConv(torch.nn.Module):
    built = 0

    def __init__(self, i, o):
        super().__init__()
        type(self).built += 1
        self.lin = torch.nn.Linear(i, o)

    def reset_parameters(self):
        self.lin.reset_parameters()

    def forward(self, x, edge_index):
        return self.lin(x)


def test_a_user_layer_is_searched_without_touching_the_controller(graph):
    space = default_search_space()
    space.add_choice("operator", "mine", lambda i, o, **kw: _MyConv(i, o))
    for name in list(space.choices("operator")):
        if name != "mine":
            space.remove_choice("operator", name)
    _MyConv.built = 0
    result = AutoGNN(space, graph, budget=3, seed=0, epochs=3, share_epochs=2,
                     progress=False).search()
    assert all(layer["operator"] == "mine" for layer in result["best"]["layers"])
    assert _MyConv.built >= 2 * 3  # two layers per trained child


def test_size():
    space = SearchSpace(1, {"operator": {"a": 1, "b": 2}, "heads": {1: 1}})
    assert space.size() == 2
