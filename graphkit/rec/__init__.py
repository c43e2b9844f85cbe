"""Recommenders on interaction graphs: data, splits, samplers, losses, evaluation, export.

Names are imported on first use, so ``graphkit --help`` does not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any, List

_EXPORTS = {
    "InteractionGraph": "data",
    "from_dataframe": "data",
    "read_interactions": "data",
    "read_user_item_lists": "data",
    "full_ranking": "evaluate",
    "random_split": "split",
    "temporal_split": "split",
    "holdout_validation": "split",
    "describe": "split",
    "fit": "train",
    "evaluate_model": "train",
    "save_model_dir": "io",
    "load_model_dir": "io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
