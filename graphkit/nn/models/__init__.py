"""Complete models built from graphkit's operators."""

from graphkit.nn.models.dagnn import DAGNN
from graphkit.nn.models.lagnn import LAGAT, LAGCN, LAGNN, LocalAugmentationCVAE
from graphkit.nn.models.lightgcn import MF, LightGCN
from graphkit.nn.models.ultragcn import UltraGCN

__all__ = [
    "DAGNN",
    "LAGAT",
    "LAGCN",
    "LAGNN",
    "LocalAugmentationCVAE",
    "LightGCN",
    "MF",
    "UltraGCN",
]

classes = __all__
