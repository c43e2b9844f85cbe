"""Complete models built from graphkit's operators."""

__all__ = []

classes = __all__
