"""Aggregation modules (PyG ``Aggregation`` API)."""

__all__ = []

classes = __all__
