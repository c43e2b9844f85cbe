"""Message-passing operators, aggregations and models (PyG modules).

The operators and aggregations are re-exported here:
``from graphkit.nn import DAGNNConv, LCMAggregation``.
"""
from graphkit.nn import aggr, conv, models  # noqa: F401
from graphkit.nn.aggr import AttSetsAggregation, GGeMAggregation, LCMAggregation, PoNetAggregation, SPPAggregation
from graphkit.nn.conv import DAGNNConv

__all__ = ["aggr", "conv", "models", "DAGNNConv", "LCMAggregation", "GGeMAggregation",
           "AttSetsAggregation", "PoNetAggregation", "SPPAggregation"]
