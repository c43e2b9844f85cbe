"""Registry-driven contract tests: every registered backbone is checked automatically.

Parameter counts and shapes (forward and backward) of every entry are checked on the ``meta``
device, which builds the full-size models without allocating or computing anything; numerics
(finite outputs and gradients, state_dict round trip, ``torch.compile``) run on real tensors for
every graph entry and for the smallest image variant of each family. Set
``GRAPHKIT_HEAVY_TESTS=1`` to run the numeric checks on every image variant too.
"""
import io
import os

import pytest
import torch

from graphkit.backbones import backbone_info, create_backbone, list_backbones, num_parameters

NAMES = list_backbones()
SMALLEST = [n for n in NAMES if backbone_info(n).smallest]
HEAVY = os.environ.get("GRAPHKIT_HEAVY_TESTS") == "1"
NUMERIC = [n for n in NAMES if HEAVY or backbone_info(n).smallest
           or backbone_info(n).input == "graph"]


def small_graph():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 6, generator=g)
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 6],
                               [1, 0, 2, 1, 4, 3, 6, 5, 8, 7, 8]])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    return x, edge_index, batch


def build(name, **extra):
    info = backbone_info(name)
    torch.manual_seed(0)
    return create_backbone(name, **{**info.test_kwargs, **extra})


def run(name, model, **kw):
    info = backbone_info(name)
    if info.input == "image":
        x = torch.randn(2, *info.test_input_size, generator=torch.Generator().manual_seed(1))
        return model(x)
    x, edge_index, batch = small_graph()
    return model(x, edge_index, batch) if kw.get("readout") else model(x, edge_index)


def test_registry_lists_and_filters():
    assert {"poolformer_s12", "poolformer_s24", "poolformer_s36", "poolformer_m36",
            "poolformer_m48", "efficientmod_xxs", "efficientmod_xs", "efficientmod_s",
            "graph_poolformer"} <= set(NAMES)
    assert list_backbones("poolformer_*") == ["poolformer_m36", "poolformer_m48",
                                              "poolformer_s12", "poolformer_s24",
                                              "poolformer_s36"]
    with pytest.raises(ValueError, match="unknown backbone 'poolformer_s13'"):
        create_backbone("poolformer_s13")


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count(name):
    info = backbone_info(name)
    with torch.device("meta"):
        if info.num_params is not None:  # the paper's model with the default arguments
            assert num_parameters(create_backbone(name)) == info.num_params
        assert num_parameters(create_backbone(name, **info.test_kwargs)) > 0


@pytest.mark.parametrize("name", [n for n in NAMES if backbone_info(n).input == "image"])
def test_full_size_shapes_on_meta(name):
    with torch.device("meta"):
        model = create_backbone(name)
        out = model(torch.empty(2, 3, 224, 224))
        assert out.shape == (2, 1000)
        out.sum().backward()
        assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
        feats = create_backbone(name, num_classes=0)(torch.empty(1, 3, 64, 48))
        assert feats.shape == (1, model.embed_dims[-1])


@pytest.mark.parametrize("name", NUMERIC)
def test_forward_backward_shapes(name):
    info = backbone_info(name)
    if info.input == "image":
        model = build(name, num_classes=10)
        out = run(name, model)
        assert out.shape == (2, 10)
        feats = build(name, num_classes=0)(torch.randn(1, *info.test_input_size))
        assert feats.shape == (1, model.embed_dims[-1])
    else:
        model = build(name)
        out = run(name, model)
        assert out.shape == (9, 3)
        pooled = build(name, readout="mean")
        assert run(name, pooled, readout=True).shape == (3, 3)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", NUMERIC)
def test_state_dict_round_trip_and_reset(name):
    info = backbone_info(name)
    extra = {"num_classes": 10} if info.input == "image" else {}
    model = build(name, **extra).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    other = create_backbone(name, **{**info.test_kwargs, **extra}).eval()
    with torch.no_grad():
        assert not torch.equal(run(name, model), run(name, other))
        other.load_state_dict(torch.load(buf, weights_only=True))
        assert torch.equal(run(name, model), run(name, other))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_parameters()  # idempotent-shaped reset: same keys and shapes
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in before.items()}


@pytest.mark.parametrize("name", SMALLEST)
def test_torch_compile_smallest(name):
    # The smallest member of each family only; backend "aot_eager" traces forward and backward
    # through AOTAutograd without inductor's C++ code generation (slow on a shared CPU).
    info = backbone_info(name)
    extra = {"num_classes": 10} if info.input == "image" else {}
    model = build(name, **extra).eval()
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        expected = run(name, model)
        got = run(name, compiled)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    run(name, compiled).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
