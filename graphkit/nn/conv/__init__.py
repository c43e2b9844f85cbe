"""Message-passing operators, one per file."""

__all__ = []

classes = __all__
