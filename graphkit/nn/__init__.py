"""Message-passing operators, aggregations and models (PyG modules)."""
from graphkit.nn import aggr, conv, models  # noqa: F401

__all__ = ["aggr", "conv", "models"]
