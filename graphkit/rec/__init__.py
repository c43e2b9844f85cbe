"""Recommenders on interaction graphs: data, splits, samplers, losses, evaluation, export."""
from graphkit.rec.data import InteractionGraph, from_dataframe, read_interactions, read_user_item_lists
from graphkit.rec.evaluate import full_ranking
from graphkit.rec.split import describe, holdout_validation, random_split, temporal_split

__all__ = [
    "InteractionGraph",
    "from_dataframe",
    "read_interactions",
    "read_user_item_lists",
    "full_ranking",
    "random_split",
    "temporal_split",
    "holdout_validation",
    "describe",
]
