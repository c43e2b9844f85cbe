"""Recommenders on interaction graphs: data, splits, samplers, losses, evaluation, export.

Names are imported on first use, so ``graphkit --help`` does not pay for importing torch.
"""
from __future__ import annotations

from graphkit._lazy import lazy_exports

_EXPORTS = {
    "InteractionGraph": "data",
    "from_dataframe": "data",
    "read_interactions": "data",
    "read_user_item_lists": "data",
    "full_ranking": "evaluate",
    "DotProductScorer": "evaluate",
    "random_split": "split",
    "temporal_split": "split",
    "holdout_validation": "split",
    "describe": "split",
    "fit": "train",
    "evaluate_model": "train",
    "save_model_dir": "io",
    "load_model_dir": "io",
    "filter_grid": "filter_select",
    "select_filter": "filter_select",
    "sample_users": "filter_select",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
