"""The dataset cards: one JSON file per dataset in the top-level ``datasets/`` folder.

Inside the package the cards are reached through ``graphkit/datasets/cards`` (a link to the
top-level folder in a source checkout, a real folder in an installed wheel).
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from graphkit.datasets.errors import DatasetNotFoundError

__all__ = ["cards_dir", "list_datasets", "card", "canonical_name"]

_REQUIRED = ("name", "task", "status", "loader", "files", "stats", "license", "citation")


def cards_dir() -> Path:
    """The folder holding the ``*.json`` cards."""
    here = Path(__file__).resolve().parent
    for cand in (here / "cards", here.parent.parent / "datasets"):
        if cand.is_dir() and any(cand.glob("*.json")):
            return cand
    raise DatasetNotFoundError(
        f"no dataset cards found in {here / 'cards'}; the installation is incomplete "
        "(the wheel must contain graphkit/datasets/cards/*.json)")


def _key(name: str) -> str:
    """Normalise a dataset name for lookup: case-, space-, dash- and underscore-insensitive."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _check_card(data: dict, path: Path) -> None:
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{path}: card is missing the field(s) {missing}")
    if not isinstance(data["files"], list) or not data["files"]:
        raise ValueError(f"{path}: 'files' must be a non-empty list")
    for i, f in enumerate(data["files"]):
        for k in ("path", "sha256", "size"):
            if k not in f:
                raise ValueError(f"{path}: files[{i}] has no {k!r}")
        if Path(f["path"]).is_absolute() or ".." in Path(f["path"]).parts:
            raise ValueError(f"{path}: files[{i}].path must be relative without '..': {f['path']!r}")


@lru_cache(maxsize=1)
def _load_cards() -> Tuple[Dict[str, dict], Dict[str, str]]:
    cards: Dict[str, dict] = {}
    index: Dict[str, str] = {}
    for path in sorted(cards_dir().glob("*.json")):
        with open(path, "r", encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: invalid JSON: {exc}") from exc
        _check_card(data, path)
        name = data["name"]
        if name in cards:
            raise ValueError(f"{path}: dataset {name!r} is defined twice")
        cards[name] = data
        for alias in [name, *data.get("aliases", [])]:
            k = _key(alias)
            if index.get(k, name) != name:
                raise ValueError(f"{path}: alias {alias!r} is already used by {index[k]!r}")
            index[k] = name
    return cards, index


def list_datasets(task: Optional[str] = None) -> List[str]:
    """The names of all registered datasets, sorted case-insensitively; with ``task``, only those
    whose card's task starts with it (``list_datasets("recommendation")``)."""
    cards, _ = _load_cards()
    names = sorted(cards, key=str.lower)
    if task is None:
        return names
    return [n for n in names if cards[n]["task"].startswith(task)]


def canonical_name(name: str) -> str:
    """Resolve a name or alias (case-insensitive) to the registered name."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    cards, index = _load_cards()
    key = _key(name)
    if key not in index:
        close = [n for n in cards if key[:3] and key[:3] in _key(n)]
        hint = f" Did you mean {', '.join(sorted(close))}?" if close else ""
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}.{hint} Registered: {', '.join(list_datasets())}")
    return index[key]


def card(name: str) -> dict:
    """A copy of the card of ``name`` (name or alias, case-insensitive)."""
    cards, _ = _load_cards()
    return copy.deepcopy(cards[canonical_name(name)])
