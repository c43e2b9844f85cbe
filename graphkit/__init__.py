"""graphkit: graph-learning layers, reproducible leaderboards and recommenders on PyTorch Geometric."""

__version__ = "0.1.0"

__all__ = ["__version__"]
