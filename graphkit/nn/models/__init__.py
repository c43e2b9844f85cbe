"""Complete models built from graphkit's operators."""

from graphkit.nn.models.bspm import BSPM
from graphkit.nn.models.dagnn import DAGNN
from graphkit.nn.models.gf_cf import GFCF
from graphkit.nn.models.gin_poly import GINPoly
from graphkit.nn.models.lagnn import LAGAT, LAGCN, LAGNN
from graphkit.nn.models.lagnn_cvae import LocalAugmentationCVAE
from graphkit.nn.models.latte import LATTE
from graphkit.nn.models.lightgcn import LightGCN
from graphkit.nn.models.mf import MF
from graphkit.nn.models.nat import NAT
from graphkit.nn.models.poly_filter import PolyFilter
from graphkit.nn.models.ppgn import PPGN
from graphkit.nn.models.recommender import (
    Recommender,
    create_recommender,
    get_recommender,
    list_recommenders,
    recommender_name,
    register_recommender,
)
from graphkit.nn.models.rphgnn import RpHGNN
from graphkit.nn.models.ultragcn import UltraGCN

__all__ = [
    "BSPM",
    "DAGNN",
    "GFCF",
    "GINPoly",
    "LAGAT",
    "LAGCN",
    "LAGNN",
    "LATTE",
    "LocalAugmentationCVAE",
    "LightGCN",
    "MF",
    "NAT",
    "PolyFilter",
    "PPGN",
    "Recommender",
    "RpHGNN",
    "UltraGCN",
    "create_recommender",
    "get_recommender",
    "list_recommenders",
    "recommender_name",
    "register_recommender",
]

classes = [name for name in __all__ if name[0].isupper()]
