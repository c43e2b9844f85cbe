"""Builders: turn a card and its verified files into the object ``load`` returns.

Each card's ``loader.kind`` names one builder here. PyG dataset classes are constructed on a
working folder in the cache (``<cache>/pyg/<loader.root>``) into which the verified raw files
are linked or extracted, so that PyG's ``processed/`` files never land next to the source files.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import torch

from graphkit.datasets import files as _files
from graphkit.datasets import readers

__all__ = ["BUILDERS", "pyg_workdir"]


def pyg_workdir(card: dict) -> Path:
    """The cache folder used as the PyG ``root`` for ``card``."""
    return _files.cache_dir() / "pyg" / card["loader"]["root"]


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` refer to ``src`` (symlink, else hard link, else copy), replacing a stale entry."""
    if dst.is_symlink() or dst.exists():
        with contextlib.suppress(OSError):
            if dst.resolve() == src.resolve():
                return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.abspath(src), dst)
        return
    except OSError:
        pass
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _stage_raw(card: dict, paths: Dict[str, Path]) -> Path:
    """Link (or extract) the verified files into the PyG raw folder; returns the work root."""
    loader = card["loader"]
    work = pyg_workdir(card)
    raw = work / loader["raw_dir"]
    raw.mkdir(parents=True, exist_ok=True)
    for f in card["files"]:
        src = paths[f["path"]]
        if loader.get("extract"):
            marker = raw / f".extracted-{f['sha256'][:16]}"
            if not marker.exists():
                _files.safe_extract_zip(src, raw)
                marker.write_text(f"{f['path']} {f['sha256']}\n", encoding="utf-8")
        else:
            _link_or_copy(src, raw / Path(f["path"]).name)
    return work


def _pyg_class(name: str):
    import torch_geometric.datasets as D

    allowed = {"Planetoid", "Amazon", "Coauthor", "HGBDataset", "TUDataset", "MovieLens100K",
               "MoleculeNet", "BitcoinOTC", "IMDB"}
    if name not in allowed:
        raise ValueError(f"unsupported PyG dataset class {name!r}")
    return getattr(D, name)


def build_pyg(card: dict, paths: Dict[str, Path], **kwargs: Any):
    loader = card["loader"]
    if loader["class"] == "MoleculeNet":
        try:
            import rdkit  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"{card['name']} needs RDKit to parse SMILES: pip install rdkit "
                              "(or graphkit[chem])") from exc
    cls = _pyg_class(loader["class"])
    work = pyg_workdir(card)
    with _files.file_lock(work / ".lock"):
        _stage_raw(card, paths)
        return cls(str(work), **loader.get("args", {}), **kwargs)


def _file_named(card: dict, paths: Dict[str, Path], basename: str) -> Path:
    for f in card["files"]:
        if Path(f["path"]).name == basename:
            return paths[f["path"]]
    raise KeyError(f"card {card['name']!r} has no file named {basename!r}")


def build_user_item_lists(card: dict, paths: Dict[str, Path], **kwargs: Any):
    from graphkit.rec import read_user_item_lists

    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    a = card["loader"].get("args", {})
    return read_user_item_lists(_file_named(card, paths, a.get("train", "train.txt")),
                                _file_named(card, paths, a.get("test", "test.txt")), name=card["name"])


def _interaction_graph(card: dict, tr, te, num_users: int, num_items: int, user_ids, item_ids):
    from graphkit.rec import InteractionGraph

    def pairs(u, i):
        key = np.unique(u * np.int64(num_items) + i)
        return torch.from_numpy(np.stack([key // num_items, key % num_items]))

    return InteractionGraph(num_users=num_users, num_items=num_items, train=pairs(*tr), test=pairs(*te),
                            user_ids=user_ids, item_ids=item_ids, name=card["name"])


def build_interaction_pairs(card: dict, paths: Dict[str, Path], **kwargs: Any):
    """``user item [...]`` pair lines (LightGCN's LastFM): 1-based ids mapped to 0-based."""
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    a = card["loader"]["args"]
    one = bool(a.get("one_based", True))
    tr = readers.read_interaction_pairs(_file_named(card, paths, a["train"]), one_based=one)
    te = readers.read_interaction_pairs(_file_named(card, paths, a["test"]), one_based=one)
    nu = int(max(tr[0].max(), te[0].max())) + 1
    ni = int(max(tr[1].max(), te[1].max())) + 1
    off = 1 if one else 0
    g = _interaction_graph(card, tr, te, nu, ni, np.arange(nu) + off, np.arange(ni) + off)
    if "social" in a:
        su, sv = readers.read_interaction_pairs(_file_named(card, paths, a["social"]), one_based=one)
        g.meta["social"] = torch.from_numpy(np.stack([su, sv]))
    return g


def build_movielens100k(card: dict, paths: Dict[str, Path], format: str = "pyg", **kwargs: Any):
    """PyG ``MovieLens100K`` (default) or, with ``format="interactions"``, an ``InteractionGraph``
    built from ``u1.base`` / ``u1.test`` (every rating is an interaction; the 1-based ids are
    mapped to 0-based and kept in ``user_ids`` / ``item_ids``)."""
    if format == "pyg":
        return build_pyg(card, paths, **kwargs)
    if format != "interactions":
        raise ValueError(f"{card['name']}: format must be 'pyg' or 'interactions', got {format!r}")
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    tr = readers.read_interaction_pairs(_file_named(card, paths, "u1.base"), one_based=True, sep="\t")
    te = readers.read_interaction_pairs(_file_named(card, paths, "u1.test"), one_based=True, sep="\t")
    # u.user / u.item list every user and movie (943 / 1682), including ones absent from u1.*.
    nu = sum(1 for line in open(_file_named(card, paths, "u.user"), encoding="latin-1") if line.strip())
    ni = sum(1 for line in open(_file_named(card, paths, "u.item"), encoding="latin-1") if line.strip())
    if max(tr[0].max(), te[0].max()) >= nu or max(tr[1].max(), te[1].max()) >= ni:
        raise ValueError(f"{card['name']}: u1.base/u1.test hold ids beyond u.user ({nu}) / u.item ({ni})")
    return _interaction_graph(card, tr, te, nu, ni, np.arange(1, nu + 1), np.arange(1, ni + 1))


def build_temporal_csv(card: dict, paths: Dict[str, Path], **kwargs: Any):
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    data, _ = readers.read_temporal_csv(paths[card["files"][0]["path"]])
    return data


def build_bitcoin(card: dict, paths: Dict[str, Path], format: str = "pyg", **kwargs: Any):
    """PyG ``BitcoinOTC`` snapshots (default) or, with ``format="temporal"``, ``TemporalData``."""
    if format == "pyg":
        return build_pyg(card, paths, **kwargs)
    if format != "temporal":
        raise ValueError(f"{card['name']}: format must be 'pyg' or 'temporal', got {format!r}")
    return build_snap_signed(card, paths, **kwargs)


def build_snap_signed(card: dict, paths: Dict[str, Path], **kwargs: Any):
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    data, _ = readers.read_snap_signed(paths[card["files"][0]["path"]])
    return data


def build_temporal_events(card: dict, paths: Dict[str, Path], **kwargs: Any):
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    data, _ = readers.read_temporal_events(paths[card["files"][0]["path"]])
    return data


def build_kg(card: dict, paths: Dict[str, Path], **kwargs: Any):
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    return readers.read_kg_triples(_file_named(card, paths, "train.txt"), _file_named(card, paths, "valid.txt"),
                                   _file_named(card, paths, "test.txt"), name=card["name"])


def build_graph6(card: dict, paths: Dict[str, Path], family: str = None, **kwargs: Any):
    """``{family: [Data, ...]}`` for every graph6 file, or one family's list with ``family=``."""
    if kwargs:
        raise TypeError(f"{card['name']}: unexpected arguments {sorted(kwargs)}")
    fams = {Path(f["path"]).stem: paths[f["path"]] for f in card["files"]}
    if family is not None:
        if family not in fams:
            raise ValueError(f"{card['name']}: unknown family {family!r}; choose from {sorted(fams)}")
        return readers.read_graph6(fams[family])
    return {k: readers.read_graph6(v) for k, v in sorted(fams.items())}


BUILDERS: Dict[str, Callable] = {
    "pyg": build_pyg,
    "user_item_lists": build_user_item_lists,
    "interaction_pairs": build_interaction_pairs,
    "movielens100k": build_movielens100k,
    "temporal_csv": build_temporal_csv,
    "temporal_events": build_temporal_events,
    "bitcoin": build_bitcoin,
    "snap_signed": build_snap_signed,
    "kg": build_kg,
    "graph6": build_graph6,
}
