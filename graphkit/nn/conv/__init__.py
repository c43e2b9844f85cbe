"""Message-passing operators, one per file."""

from graphkit.nn.conv.dagnn_conv import DAGNNConv

__all__ = [
    "DAGNNConv",
]

classes = __all__
