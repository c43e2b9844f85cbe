import torch

from graphkit.nas import AncestorWeights, AutoGNNModel, homogeneous, inherit


def _arch(**kw):
    layer = dict(operator="autognn", attention="gat", heads=2, hidden=16, aggregation="sum",
                 activation="relu", skip="none")
    first = dict(layer, **kw)
    return {"layers": [first, dict(layer)]}


def _model(arch, seed):
    torch.manual_seed(seed)
    return AutoGNNModel(5, 3, arch)


def _trained_parent():
    parent = _model(_arch(), 0)
    store = AncestorWeights()
    store.push(parent.architecture, parent)
    return parent, store


def test_homogeneous_child_inherits_exact_weights():
    parent, store = _trained_parent()
    child = _model(_arch(aggregation="max"), 1)  # no weights of its own in the aggregation
    assert inherit(child, store) == [0, 0]
    for name, t in parent.layer_parameters(0).items():
        assert torch.equal(child.layer_parameters(0)[name], t)


def test_what_is_not_shared():
    parent, store = _trained_parent()
    for change in (dict(activation="elu"), dict(attention="cos"), dict(hidden=32),
                   dict(heads=4), dict(operator="gat")):
        child = _model(_arch(**change), 1)
        before = {k: v.clone() for k, v in child.layer_parameters(0).items()}
        sources = inherit(child, store)
        assert sources[0] is None, change
        for k, v in child.layer_parameters(0).items():  # layer 0 kept its own initialisation
            assert torch.equal(v, before[k]), change
    # a wider first layer changes the second layer's input shape: not shared either
    child = _model(_arch(hidden=32), 1)
    assert inherit(child, store) == [None, None]
    # an activation change in layer 0 leaves layer 1 homogeneous: shared
    assert inherit(_model(_arch(activation="elu"), 1), store) == [None, 0]


def test_homogeneity_definition():
    a = _model(_arch(), 0)
    b = _model(_arch(activation="tanh"), 1)
    la, lb = a.architecture["layers"][0], b.architecture["layers"][0]
    assert homogeneous(la, a.layer_parameters(0), la, a.layer_parameters(0))
    assert not homogeneous(la, a.layer_parameters(0), lb, b.layer_parameters(0))


def test_older_ancestor_is_used_when_the_parent_is_not_homogeneous():
    store = AncestorWeights(max_ancestors=2)
    old = _model(_arch(), 0)
    store.push(old.architecture, old)
    new = _model(_arch(activation="elu"), 1)
    store.push(new.architecture, new)
    child = _model(_arch(aggregation="mean"), 2)
    assert inherit(child, store) == [1, 0]
    assert torch.equal(child.convs[0].lin.weight, old.convs[0].lin.weight)
    store.push(new.architecture, new)  # the oldest ancestor falls out (max_ancestors=2)
    assert len(store) == 2 and inherit(_model(_arch(), 3), store)[0] is None


def test_a_residual_switch_keeps_the_operator_weights_but_not_the_projection():
    parent, store = _trained_parent()
    child = _model(_arch(skip="residual"), 1)
    fresh = child.skips[0].weight.clone()
    assert inherit(child, store) == [0, 0]
    assert torch.equal(child.convs[0].lin.weight, parent.convs[0].lin.weight)
    assert torch.equal(child.skips[0].weight, fresh)  # the parent has no projection to give
    store.push(child.architecture, child)
    grandchild = _model(_arch(skip="residual", aggregation="max"), 2)
    inherit(grandchild, store)
    assert torch.equal(grandchild.skips[0].weight, child.skips[0].weight)
