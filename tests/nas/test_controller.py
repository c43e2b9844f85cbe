import random

import torch

from graphkit.nas import ConservativeController, default_search_space


def _setup(seed=0):
    space = default_search_space()
    torch.manual_seed(seed)
    ctrl = ConservativeController(space)
    arch = space.sample(random.Random(seed))
    return space, ctrl, arch


def test_a_proposal_changes_one_component_class():
    space, ctrl, arch = _setup()
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        child, decision = ctrl.propose(space, arch, gen)
        comp = ctrl.components[decision["class"]]
        for old, new in zip(arch["layers"], child["layers"]):
            assert {k for k in old if old[k] != new[k]} <= {comp}
        space.validate(child)


def test_reinforce_raises_the_probability_of_a_rewarded_decision():
    space, ctrl, arch = _setup()
    _, decision = ctrl.propose(space, arch, torch.Generator().manual_seed(1))
    before = float(ctrl.log_prob(space, arch, decision)[0].detach())
    ctrl.update(space, arch, decision, 0.5)  # first reward sets the baseline: no push
    assert abs(float(ctrl.baseline) - 0.5) < 1e-6
    for _ in range(5):
        ctrl.update(space, arch, decision, 1.0)
    assert float(ctrl.log_prob(space, arch, decision)[0].detach()) > before
    assert 0.5 < float(ctrl.baseline) < 1.0  # moving average


def test_a_new_choice_only_widens_the_value_policy():
    space, ctrl, arch = _setup()
    space.add_choice("activation", "gelu", torch.nn.functional.gelu)
    torch.manual_seed(0)
    wider = ConservativeController(space)
    c = wider.components.index("activation")
    assert wider.sizes[c] == ctrl.sizes[c] + 1
    assert wider.value_heads[c].out_features == ctrl.value_heads[c].out_features + 1
