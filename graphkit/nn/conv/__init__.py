"""Message-passing operators, one per file."""

from graphkit.nn.conv.dagnn_conv import DAGNNConv
from graphkit.nn.conv.latte_conv import LATTEConv

__all__ = [
    "DAGNNConv",
    "LATTEConv",
]

classes = __all__
