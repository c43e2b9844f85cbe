"""Complete models built from graphkit's operators."""

from graphkit.nn.models.ultragcn import UltraGCN

__all__ = [
    "UltraGCN",
]

classes = __all__
