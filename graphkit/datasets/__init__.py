r"""The dataset registry: a name → verified files → a PyG object (or an ``InteractionGraph``).

One JSON card per dataset (top-level ``datasets/``) names the files with their size, sha256 and
download URLs, the expected statistics, the license and the citation. Files are searched in
``root`` (argument) → ``$GRAPHKIT_DATA`` → the cache (``$GRAPHKIT_CACHE``, default
``~/.cache/graphkit``), and only then downloaded into the cache. PyG's processed files are written
into the cache, never next to the source files.

.. code-block:: python

    from graphkit.datasets import load, list_datasets
    dataset = load("Cora")                 # torch_geometric.datasets.Planetoid
    graph = load("Gowalla")                # graphkit.rec.InteractionGraph
    events = load("UCI")                   # torch_geometric.data.TemporalData

Environment variables:

* ``GRAPHKIT_DATA``: a folder laid out like the offline mirror, searched after ``root``;
* ``GRAPHKIT_CACHE``: where downloads, checksum stamps and PyG's processed files go;
* ``GRAPHKIT_OFFLINE=1``: never download (a missing file raises :class:`DatasetNotFoundError`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from graphkit.datasets.errors import ChecksumError, DatasetNotFoundError, UnsafeArchiveError
from graphkit.datasets.files import cache_dir, safe_extract_zip, search_roots
from graphkit.datasets.readers import KnowledgeGraph
from graphkit.datasets.registry import canonical_name, card, list_datasets

__all__ = [
    "load", "load_interactions", "get_path", "list_datasets", "card", "canonical_name", "verify",
    "cache_dir", "search_roots",
    "DatasetNotFoundError", "ChecksumError", "UnsafeArchiveError", "KnowledgeGraph", "safe_extract_zip",
]

PathLike = Union[str, "os.PathLike[str]"]


def _common_dir(c: dict) -> str:
    return os.path.commonpath([str(Path(f["path"]).parent) for f in c["files"]])


def get_path(name: str, root: Optional[PathLike] = None, *, download: bool = True) -> Path:
    """The folder holding the verified raw files of ``name``.

    When every file lives under one search root, that folder is returned (e.g.
    ``$GRAPHKIT_DATA/Planetoid/Cora/raw``). When the files are spread over several roots (a file
    downloaded into the cache next to a read-only mirror), a folder of links is assembled in the
    cache (``<cache>/linked/...``) and returned.
    """
    from graphkit.datasets.files import resolve_files
    from graphkit.datasets.loaders import _link_or_copy

    c = card(name)
    paths = resolve_files(c, root, download=download)
    rel = _common_dir(c)
    bases = {Path(str(paths[f["path"]])[: -len(f["path"])]) for f in c["files"]}
    if len(bases) == 1:
        return next(iter(bases)) / rel
    out = cache_dir() / "linked" / rel
    for f in c["files"]:
        _link_or_copy(paths[f["path"]], cache_dir() / "linked" / f["path"])
    return out


def load_interactions(name: str, root: Optional[PathLike] = None, *, download: bool = True):
    """A recommendation dataset as a :class:`graphkit.rec.InteractionGraph`, whatever its loader
    returns by default (MovieLens-100K is read with ``format="interactions"``)."""
    kind = card(name)["loader"]["kind"]
    extra = {"format": "interactions"} if kind == "movielens100k" else {}
    return load(name, root=root, download=download, **extra)


def load(name: str, root: Optional[PathLike] = None, *, download: bool = True, **kwargs: Any):
    """Load a registered dataset by name (case-insensitive; aliases allowed).

    Args:
        name (str): a registered name or alias, see :func:`list_datasets`.
        root (str or PathLike, optional): a folder laid out like the mirror, searched first.
            (default: :obj:`None`)
        download (bool): download files found nowhere into the cache (also disabled by
            ``GRAPHKIT_OFFLINE=1``). (default: :obj:`True`)
        **kwargs: passed to the builder: PyG dataset arguments (``transform``,
            ``pre_transform``, ``force_reload``) for PyG-backed datasets; ``format="interactions"``
            for MovieLens-100K; ``family=`` for the SR graphs.

    Returns:
        the PyG dataset object for names with a PyG class, a :class:`graphkit.rec.InteractionGraph`
        for recommender splits, a :class:`torch_geometric.data.TemporalData` for temporal event
        lists, a :class:`KnowledgeGraph` for knowledge graphs, a ``{family: [Data]}`` dict for SR.

    Raises:
        DatasetNotFoundError: unknown name, or files missing offline (the message names them).
        ChecksumError: a file's size or sha256 differs from its card.
    """
    from graphkit.datasets.files import resolve_files
    from graphkit.datasets.loaders import BUILDERS

    c = card(name)
    kind = c["loader"]["kind"]
    if kind not in BUILDERS:
        raise ValueError(f"card {c['name']!r} has an unknown loader kind {kind!r}")
    paths = resolve_files(c, root, download=download)
    return BUILDERS[kind](c, paths, **kwargs)


def verify(name: str, root: Optional[PathLike] = None) -> List[Dict[str, Any]]:
    """Check every file of ``name`` found in the search roots, without downloading.

    Returns one entry per card file: ``{"path", "status", "location", "detail"}`` with status
    ``"ok"``, ``"missing"`` or ``"mismatch"``. The files are always re-hashed.
    """
    from graphkit.datasets.files import verify_file

    c = card(name)
    out = []
    for f in c["files"]:
        entry = {"path": f["path"], "status": "missing", "location": None, "detail": ""}
        for r in search_roots(root):
            p = r / f["path"]
            if p.is_file():
                entry["location"] = str(p)
                try:
                    verify_file(p, f["sha256"], f["size"], use_stamp=False)
                    entry["status"] = "ok"
                except ChecksumError as exc:
                    entry["status"], entry["detail"] = "mismatch", str(exc)
                break
        out.append(entry)
    return out
