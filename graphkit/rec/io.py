"""Saving and loading trained recommenders as a model directory.

A model directory holds:

* ``model.json`` — format version, graphkit version, model class and its constructor
  arguments, training settings and final metrics (written last: its presence marks a
  complete directory);
* ``model.pt`` — the ``state_dict`` (loaded with ``torch.load(weights_only=True)``);
* ``interactions.pt`` — the train / valid / test pairs (tensors) used to mask seen items;
* ``users.csv`` / ``items.csv`` — the raw identifiers of the compact indices.

Every file is written to a temporary name and renamed, so an interrupted save never leaves a
half-written file behind.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from graphkit.rec.data import InteractionGraph
from graphkit.utils.io import atomic_write, atomic_write_text

FORMAT_VERSION = 1


def model_registry() -> Dict[str, type]:
    """Name -> class of the recommenders a model directory can hold (the registry of
    :mod:`graphkit.nn.models.recommender`; the names are those stored in ``model.json``)."""
    from graphkit.nn.models.recommender import get_recommender, list_recommenders

    return {name: get_recommender(name) for name in list_recommenders()}


def _write_ids(path: pathlib.Path, ids: np.ndarray) -> None:
    import pandas as pd

    text = pd.DataFrame({"index": np.arange(len(ids)), "id": ids}).to_csv(index=False)
    atomic_write_text(path, text)


def save_model_dir(out: str, model, graph: InteractionGraph, *, info: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    """Write ``model`` and the id maps / interactions of ``graph`` into the directory ``out``."""
    from graphkit import __version__
    from graphkit.nn.models.recommender import recommender_name

    try:
        name = recommender_name(model)
    except TypeError:
        raise TypeError(f"cannot save a {type(model).__name__}: not a registered recommender") from None
    path = pathlib.Path(out)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / "model.json"
    if marker.exists():
        marker.unlink()  # the directory is incomplete until the new model.json lands
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write(path / "model.pt", lambda f: torch.save(state, f))
    parts = {k: getattr(graph, k).cpu() for k in ("train", "valid", "test") if getattr(graph, k) is not None}
    atomic_write(path / "interactions.pt", lambda f: torch.save(parts, f))
    users = graph.user_ids if graph.user_ids is not None else np.arange(graph.num_users)
    items = graph.item_ids if graph.item_ids is not None else np.arange(graph.num_items)
    _write_ids(path / "users.csv", users)
    _write_ids(path / "items.csv", items)
    meta = {"format": FORMAT_VERSION, "graphkit_version": __version__, "model": name,
            "model_args": model.model_args, "dataset": graph.name,
            "num_users": graph.num_users, "num_items": graph.num_items, **(info or {})}
    text = json.dumps(meta, indent=2, default=float)
    atomic_write_text(marker, text)
    return path


def load_model_dir(path: str, device: Optional[str] = None) -> Tuple[Any, InteractionGraph, Dict[str, Any]]:
    """Load a model directory written by :func:`save_model_dir`: ``(model, graph, info)``.

    The model has its training graph set, so ``model.recommend(..., exclude_seen=True)`` works.
    """
    import pandas as pd

    root = pathlib.Path(path)
    marker = root / "model.json"
    if not marker.exists():
        raise FileNotFoundError(f"{root}: not a graphkit model directory (model.json missing; "
                                "was training interrupted before it finished?)")
    try:
        meta = json.loads(marker.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{marker}: not valid JSON ({exc})") from exc
    fmt = meta.get("format")
    if fmt != FORMAT_VERSION:
        raise ValueError(f"{marker}: model directory format {fmt!r} (written by graphkit "
                         f"{meta.get('graphkit_version', '?')}) is not supported by this version, which reads "
                         f"format {FORMAT_VERSION}; retrain the model or use a matching graphkit version")
    registry = model_registry()
    if meta.get("model") not in registry:
        raise ValueError(f"{marker}: unknown model {meta.get('model')!r}; known: {sorted(registry)}")
    args = meta.get("model_args")
    if not isinstance(args, dict):
        raise ValueError(f"{marker}: 'model_args' must be a JSON object of constructor arguments, got {args!r}")
    model = registry[meta["model"]](**args)
    state = torch.load(root / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    parts = torch.load(root / "interactions.pt", map_location="cpu", weights_only=True)
    user_ids = pd.read_csv(root / "users.csv")["id"].to_numpy()
    item_ids = pd.read_csv(root / "items.csv")["id"].to_numpy()
    graph = InteractionGraph(num_users=meta["num_users"], num_items=meta["num_items"], train=parts["train"],
                             valid=parts.get("valid"), test=parts.get("test"), user_ids=user_ids,
                             item_ids=item_ids, name=meta.get("dataset", "interactions"))
    if device is not None:
        model = model.to(device)
    from graphkit.rec.train import _model_device

    model.set_graph(graph.train.to(_model_device(model)))
    model.eval()
    return model, graph, meta
