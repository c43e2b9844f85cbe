"""Recommenders on interaction graphs: data, splits, samplers, losses, evaluation, export."""
from graphkit.rec.data import InteractionGraph, read_user_item_lists

__all__ = ["InteractionGraph", "read_user_item_lists"]
