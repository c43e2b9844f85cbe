"""Vectorised membership index over (user, item) pairs."""
from graphkit._ranking import PairIndex

__all__ = ["PairIndex"]
