"""Non-graph backbones as composable modules, with graph versions of their mixers.

* :class:`MetaFormerBlock` with a pluggable token mixer: :class:`PoolMixer` (PoolFormer's
  pooling and the parameter-free max, on images and graphs), :class:`PoNetMixer`,
  :class:`ModulationMixer` (EfficientMod), :class:`SelfAttentionMixer`;
* blocks: :class:`MaxBottleneck` (parameter-free bottleneck), :class:`OSABlock` /
  :class:`OSABlock2d` (VoVNet one-shot aggregation);
* models: :class:`PoolFormerEncoder`, :class:`EfficientModEncoder`, :class:`GraphMetaFormer`;
* a timm-style registry: :func:`create_backbone`, :func:`list_backbones`.

Readouts (GGeM, AttSets, PoNet, SPP) live in :mod:`graphkit.nn.aggr`.
"""
from graphkit.backbones import variants  # noqa: F401  (registers the variants)
from graphkit.backbones.blocks import MaxBottleneck, OSABlock, OSABlock2d
from graphkit.backbones.encoders import EfficientModEncoder, PoolFormerEncoder
from graphkit.backbones.graph_metaformer import GraphMetaFormer
from graphkit.backbones.metaformer import ChannelMLP, MetaFormerBlock, num_parameters
from graphkit.backbones.mixers import ModulationMixer, PoNetMixer, PoolMixer, SelfAttentionMixer
from graphkit.backbones.registry import BackboneInfo, backbone_info, create_backbone, list_backbones, register_backbone

__all__ = [
    "MetaFormerBlock", "ChannelMLP", "PoolMixer", "PoNetMixer", "ModulationMixer",
    "SelfAttentionMixer", "MaxBottleneck", "OSABlock", "OSABlock2d", "PoolFormerEncoder",
    "EfficientModEncoder", "GraphMetaFormer", "create_backbone", "list_backbones",
    "register_backbone", "backbone_info", "BackboneInfo", "num_parameters",
]
