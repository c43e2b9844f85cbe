"""PyG transforms."""

from graphkit.transforms.local_augmentation import LocalAugmentation

__all__ = [
    "LocalAugmentation",
]
