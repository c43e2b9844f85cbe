"""Aggregation modules (PyG ``Aggregation`` API)."""
from graphkit.nn.aggr.attsets import AttSetsAggregation
from graphkit.nn.aggr.ggem import GGeMAggregation
from graphkit.nn.aggr.lcm import LCMAggregation
from graphkit.nn.aggr.ponet import PoNetAggregation
from graphkit.nn.aggr.spp import SPPAggregation

__all__ = [
    "LCMAggregation",
    "GGeMAggregation",
    "AttSetsAggregation",
    "PoNetAggregation",
    "SPPAggregation",
]

classes = __all__
