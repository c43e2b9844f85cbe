"""PyG transforms."""

from graphkit.transforms.equivariant_polynomials import EquivariantPolynomials
from graphkit.transforms.local_augmentation import LocalAugmentation

__all__ = [
    "EquivariantPolynomials",
    "LocalAugmentation",
]
