"""The registered backbone variants (one small function each)."""
from __future__ import annotations

from typing import Any

from graphkit.backbones.encoders import EfficientModEncoder, PoolFormerEncoder
from graphkit.backbones.graph_metaformer import GraphMetaFormer
from graphkit.backbones.registry import register_backbone

POOLFORMER = "https://arxiv.org/abs/2111.11418"
EFFICIENTMOD = "https://arxiv.org/abs/2403.19963"
PFLAYER = "https://arxiv.org/abs/2202.02777"
PONET = "https://arxiv.org/abs/2110.02442"

_S_DIMS = [64, 128, 320, 512]
_M_DIMS = [96, 192, 384, 768]


def _poolformer(layers, dims, layer_scale: float, **kwargs: Any) -> PoolFormerEncoder:
    kwargs.setdefault("layer_scale_init_value", layer_scale)
    return PoolFormerEncoder(layers, dims, **kwargs)


@register_backbone(input="image", paper=POOLFORMER, num_params=11_915_176, smallest=True)
def poolformer_s12(**kwargs: Any) -> PoolFormerEncoder:
    """PoolFormer-S12: layers [2, 2, 6, 2], dims [64, 128, 320, 512]."""
    return _poolformer([2, 2, 6, 2], _S_DIMS, 1e-5, **kwargs)


@register_backbone(input="image", paper=POOLFORMER, num_params=21_388_968)
def poolformer_s24(**kwargs: Any) -> PoolFormerEncoder:
    """PoolFormer-S24: layers [4, 4, 12, 4], dims [64, 128, 320, 512]."""
    return _poolformer([4, 4, 12, 4], _S_DIMS, 1e-5, **kwargs)


@register_backbone(input="image", paper=POOLFORMER, num_params=30_862_760)
def poolformer_s36(**kwargs: Any) -> PoolFormerEncoder:
    """PoolFormer-S36: layers [6, 6, 18, 6], dims [64, 128, 320, 512]."""
    return _poolformer([6, 6, 18, 6], _S_DIMS, 1e-6, **kwargs)


@register_backbone(input="image", paper=POOLFORMER, num_params=56_172_520)
def poolformer_m36(**kwargs: Any) -> PoolFormerEncoder:
    """PoolFormer-M36: layers [6, 6, 18, 6], dims [96, 192, 384, 768]."""
    return _poolformer([6, 6, 18, 6], _M_DIMS, 1e-6, **kwargs)


@register_backbone(input="image", paper=POOLFORMER, num_params=73_473_448)
def poolformer_m48(**kwargs: Any) -> PoolFormerEncoder:
    """PoolFormer-M48: layers [8, 8, 24, 8], dims [96, 192, 384, 768]."""
    return _poolformer([8, 8, 24, 8], _M_DIMS, 1e-6, **kwargs)


@register_backbone(input="image", paper=PFLAYER, num_params=11_915_176)
def maxformer_s12(**kwargs: Any) -> PoolFormerEncoder:
    """PoolFormer-S12 with the parameter-free max mixer (``MaxPool2d(3, 1, 1)``) in every
    block: the same parameters as PoolFormer-S12."""
    kwargs.setdefault("mixer", "max")
    return _poolformer([2, 2, 6, 2], _S_DIMS, 1e-5, **kwargs)


def _efficientmod(depths, dims, ratio: int, attention, attention_ratios,
                  **kwargs: Any) -> EfficientModEncoder:
    ratios = [[1, ratio] * ((d + 1) // 2) for d in depths]
    return EfficientModEncoder(depths, dims, ratios, attention, attention_ratios, **kwargs)


@register_backbone(input="image", paper=EFFICIENTMOD, num_params=4_736_264, smallest=True)
def efficientmod_xxs(**kwargs: Any) -> EfficientModEncoder:
    """EfficientMod-xxs: depths [2, 2, 6, 2] + attention [0, 0, 1, 2], dims [32, 64, 128, 256],
    r alternating 1 / 6."""
    return _efficientmod([2, 2, 6, 2], [32, 64, 128, 256], 6, [0, 0, 1, 2], [4, 4, 4, 4],
                         **kwargs)


@register_backbone(input="image", paper=EFFICIENTMOD, num_params=6_627_544)
def efficientmod_xs(**kwargs: Any) -> EfficientModEncoder:
    """EfficientMod-xs: depths [3, 3, 4, 2] + attention [0, 0, 3, 3], dims [32, 64, 144, 288],
    r alternating 1 / 4."""
    return _efficientmod([3, 3, 4, 2], [32, 64, 144, 288], 4, [0, 0, 3, 3], [4, 4, 4, 4],
                         **kwargs)


@register_backbone(input="image", paper=EFFICIENTMOD, num_params=12_897_184)
def efficientmod_s(**kwargs: Any) -> EfficientModEncoder:
    """EfficientMod-s: depths [4, 4, 8, 4] + attention [0, 0, 4, 4], dims [32, 64, 144, 312],
    r alternating 1 / 6, attention MLP ratio 5 in the last stage."""
    return _efficientmod([4, 4, 8, 4], [32, 64, 144, 312], 6, [0, 0, 4, 4], [4, 4, 4, 5],
                         **kwargs)


_GRAPH_TEST = {"in_channels": 6, "out_channels": 3, "hidden_channels": 16}


def _graph(mixer: str, **kwargs: Any) -> GraphMetaFormer:
    kwargs.setdefault("hidden_channels", 64)
    kwargs.setdefault("mixer", mixer)
    return GraphMetaFormer(**kwargs)


@register_backbone(input="graph", paper=POOLFORMER, test_kwargs=_GRAPH_TEST, smallest=True)
def graph_poolformer(**kwargs: Any) -> GraphMetaFormer:
    """Graph MetaFormer with the neighbourhood-mean pooling mixer (needs ``in_channels``,
    ``out_channels``; hidden 64, 2 blocks by default)."""
    return _graph("pool", **kwargs)


@register_backbone(input="graph", paper=PFLAYER, test_kwargs=_GRAPH_TEST, smallest=True)
def graph_maxformer(**kwargs: Any) -> GraphMetaFormer:
    """Graph MetaFormer with the parameter-free neighbourhood-max mixer."""
    return _graph("max", **kwargs)


@register_backbone(input="graph", paper=PONET, test_kwargs=_GRAPH_TEST, smallest=True)
def graph_ponetformer(**kwargs: Any) -> GraphMetaFormer:
    """Graph MetaFormer with the PoNet mixer (global attention pool per graph, segment max,
    neighbourhood max)."""
    return _graph("ponet", **kwargs)


@register_backbone(input="graph", paper=EFFICIENTMOD, test_kwargs=_GRAPH_TEST, smallest=True)
def graph_modformer(**kwargs: Any) -> GraphMetaFormer:
    """Graph MetaFormer with the modulation mixer (graph context)."""
    return _graph("mod", **kwargs)
