"""Finding, verifying, downloading and extracting dataset files.

Every place that can hold dataset files (the ``root`` argument, ``$GRAPHKIT_DATA``, the cache)
is laid out like the offline mirror: a card's file ``Planetoid/Cora/raw/ind.cora.x`` lives at
``<root>/Planetoid/Cora/raw/ind.cora.x``. Files are looked up in that order, verified against
the card's size and sha256, and only downloaded (into the cache) when no place has them.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from graphkit.datasets.errors import ChecksumError, DatasetNotFoundError, UnsafeArchiveError
from graphkit.utils.io import atomic_write, atomic_write_text
from graphkit.utils.progress import progress_disabled

__all__ = [
    "cache_dir", "search_roots", "sha256sum", "verify_file", "download_file", "safe_extract_zip",
    "resolve_files", "file_lock",
]

PathLike = Union[str, "os.PathLike[str]"]
_CHUNK = 1 << 20
_TIMEOUT = 60.0
# Indirection so that tests can substitute the network opener.
urlopen: Callable = urllib.request.urlopen


def cache_dir() -> Path:
    """``$GRAPHKIT_CACHE`` if set, else ``~/.cache/graphkit``."""
    env = os.environ.get("GRAPHKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "graphkit"


def search_roots(root: Optional[PathLike] = None) -> List[Path]:
    """The folders searched for dataset files, in order: ``root``, ``$GRAPHKIT_DATA``, cache."""
    roots: List[Path] = []
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(f"root {str(root)!r} is not a folder; pass a folder laid out like "
                                       "the dataset mirror (e.g. <root>/Planetoid/Cora/raw/...), or None")
        roots.append(root)
    env = os.environ.get("GRAPHKIT_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(cache_dir())
    out: List[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def offline() -> bool:
    """True when ``$GRAPHKIT_OFFLINE`` is set to a true value: never download."""
    return os.environ.get("GRAPHKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------------------
# checksums (remembered per file by size + mtime, in the cache)
# ---------------------------------------------------------------------------------------------

def sha256sum(path: PathLike) -> str:
    """The hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()
    return cache_dir() / ".verified" / f"{key}.json"


def verify_file(path: PathLike, sha256: str, size: Optional[int] = None, *, use_stamp: bool = True) -> None:
    """Check ``path`` against the expected size and sha256; raise :class:`ChecksumError` if not.

    A successful check is remembered in the cache (keyed by the file's resolved path, size and
    modification time), so an unchanged file is hashed only once.
    """
    path = Path(path)
    st = path.stat()
    if size is not None and st.st_size != size:
        raise ChecksumError(
            f"{path}: size is {st.st_size:,} bytes, the card expects {size:,} bytes "
            f"(sha256 {sha256}). The file is truncated or a different version: delete it and "
            "provide the exact file.")
    stamp = _stamp_path(path)
    ident = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    if use_stamp:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp.read_text(encoding="utf-8")) == ident:
                return
    actual = sha256sum(path)
    if actual != sha256:
        raise ChecksumError(
            f"{path}: sha256 is {actual}, the card expects {sha256}. The file is corrupted or a "
            "different version: delete it and provide the exact file.")
    if use_stamp:
        with contextlib.suppress(OSError):
            atomic_write_text(stamp, json.dumps(ident))


# ---------------------------------------------------------------------------------------------
# download: streaming, progress bar, checksum, atomic rename
# ---------------------------------------------------------------------------------------------

def download_file(url: str, dest: PathLike, *, sha256: Optional[str] = None, size: Optional[int] = None,
                  desc: Optional[str] = None, timeout: float = _TIMEOUT) -> Path:
    """Download ``url`` to ``dest``, streaming through a temporary file in the same folder.

    The sha256 (and size) are checked before the temporary file is renamed to ``dest``; on any
    failure the temporary file is removed, so ``dest`` is either absent or complete.
    Raises :class:`ChecksumError` on a mismatch and ``OSError`` (``urllib.error.URLError``) when
    the URL cannot be read.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)

    def stream(out) -> None:
        h = hashlib.sha256()
        n = 0
        with contextlib.closing(urlopen(url, timeout=timeout)) as resp:
            total = size
            headers = getattr(resp, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            if total is None and length and str(length).isdigit():
                total = int(length)
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=desc or dest.name, disable=progress_disabled(), leave=False) as bar:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    n += len(block)
                    bar.update(len(block))
        if size is not None and n != size:
            raise ChecksumError(f"{url}: downloaded {n:,} bytes, the card expects {size:,} bytes "
                                f"for {dest.name}; nothing was written to {dest}")
        if sha256 is not None and h.hexdigest() != sha256:
            raise ChecksumError(f"{url}: downloaded file has sha256 {h.hexdigest()}, the card expects "
                                f"{sha256} for {dest.name}; nothing was written to {dest}")

    atomic_write(dest, stream)  # temp file next to dest, renamed only once verified
    return dest


# ---------------------------------------------------------------------------------------------
# guarded archive extraction
# ---------------------------------------------------------------------------------------------

def _member_target(dest: Path, name: str, archive: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the target folder ('..'); "
                                 "refusing to extract")
    target = (dest / Path(*pure.parts)).resolve() if pure.parts else dest.resolve()
    base = dest.resolve()
    if target != base and base not in target.parents:
        raise UnsafeArchiveError(f"{archive}: member {name!r} resolves outside {dest}; refusing to extract")
    return target


def safe_extract_zip(archive: PathLike, dest: PathLike, members: Optional[Iterable[str]] = None,
                     *, max_bytes: int = 4 << 30) -> List[Path]:
    """Extract a zip into ``dest``, refusing members that would land outside it.

    All member names are checked before anything is written: absolute paths, ``..`` components,
    symbolic links and a total uncompressed size above ``max_bytes`` raise
    :class:`UnsafeArchiveError`. Each member is written to a temporary file and renamed.
    ``members`` restricts extraction to those names (an unknown name is a ``KeyError``).
    """
    archive, dest = Path(archive), Path(dest)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if members is not None:
            wanted = set(members)
            known = {i.filename for i in infos}
            unknown = sorted(wanted - known)
            if unknown:
                raise KeyError(f"{archive}: no member(s) {unknown}")
            infos = [i for i in infos if i.filename in wanted]
        plan: List[Tuple[zipfile.ZipInfo, Path]] = []
        total = 0
        for info in infos:
            target = _member_target(dest, info.filename, archive)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == stat.S_IFLNK:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; "
                                         "refusing to extract")
            total += info.file_size
            if total > max_bytes:
                raise UnsafeArchiveError(f"{archive}: uncompressed size exceeds {max_bytes:,} bytes")
            plan.append((info, target))
        written: List[Path] = []
        for info, target in plan:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:
                atomic_write(target, lambda out: shutil.copyfileobj(src, out, _CHUNK))
            written.append(target)
    return written


def _gunzip(archive: Path, target: Path) -> None:
    with gzip.open(archive, "rb") as src:
        atomic_write(target, lambda out: shutil.copyfileobj(src, out, _CHUNK))


@contextlib.contextmanager
def file_lock(path: PathLike) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; a no-op elsewhere)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# resolving a card's files
# ---------------------------------------------------------------------------------------------

def _fmt_size(n: int) -> str:
    return f"{n:,} bytes"


def _missing_message(card: dict, missing: Sequence[dict], roots: Sequence[Path], errors: Dict[str, str],
                     tried_download: bool) -> str:
    name = card["name"]
    lines = [f"dataset {name!r}: {len(missing)} file(s) not found:"]
    for f in missing:
        lines.append(f"  - {f['path']} ({_fmt_size(f['size'])}, sha256 {f['sha256']})")
        for u in f.get("urls", []):
            lines.append(f"      url: {u}")
        arcs = [(a["url"], m) for a in card.get("archives", []) for m, p in a.get("members", {}).items()
                if p == f["path"]]
        for u, m in arcs:
            lines.append(f"      in archive: {u} (member {m})")
        if not f.get("urls") and not arcs:
            lines.append(f"      no download URL reproduces this file; see `graphkit datasets info {name}`")
        if f["path"] in errors:
            lines.append(f"      download failed: {errors[f['path']]}")
    lines.append("Searched (root argument, $GRAPHKIT_DATA, cache): " + ", ".join(str(r) for r in roots) + ".")
    example = missing[0]["path"]
    lines.append(
        "To provide them: fetch each file from a URL above (on a machine with network access) and "
        f"place it under any searched folder with the same relative path, e.g. {roots[-1] / example}"
        + ("" if tried_download else "; or allow downloads (unset GRAPHKIT_OFFLINE, download=True)")
        + ". The size and sha256 are checked when the file is found.")
    return "\n".join(lines)


def _download_missing(card: dict, missing: List[dict], cache: Path, errors: Dict[str, str]) -> None:
    """Try each missing file's URLs, then the card's archives. Fills ``errors`` on failure."""
    still: List[dict] = []
    for f in missing:
        dest = cache / f["path"]
        ok = False
        for url in f.get("urls", []):
            try:
                download_file(url, dest, sha256=f["sha256"], size=f["size"], desc=f"{card['name']}: {dest.name}")
                verify_file(dest, f["sha256"], f["size"])
                ok = True
                break
            except (OSError, ChecksumError, ValueError) as exc:
                errors[f["path"]] = f"{url}: {exc}"
        if not ok:
            still.append(f)
    if not still:
        return
    for arc in card.get("archives", []):
        members: Dict[str, str] = arc.get("members", {})  # member name -> file path
        needed = [f for f in still if f["path"] in members.values()]
        if not needed:
            continue
        with tempfile.TemporaryDirectory(dir=_mkdir(cache / ".downloads")) as tmpdir:
            tmpdir = Path(tmpdir)
            fname = arc["url"].rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "archive"
            try:
                local = download_file(arc["url"], tmpdir / fname, sha256=arc.get("sha256"),
                                      size=arc.get("size"), desc=f"{card['name']}: {fname}")
                out = tmpdir / "x"
                by_path = {p: m for m, p in members.items()}
                if arc.get("format", "zip") == "gz":
                    for f in needed:
                        _gunzip(local, _member_target(out, by_path[f["path"]], local))
                else:
                    safe_extract_zip(local, out, members=[by_path[f["path"]] for f in needed])
                for f in needed:
                    src = out / by_path[f["path"]]
                    verify_file(src, f["sha256"], f["size"], use_stamp=False)
                    dest = cache / f["path"]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(src), str(dest))
                    errors.pop(f["path"], None)
            except (OSError, ChecksumError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                for f in needed:
                    errors[f["path"]] = (errors.get(f["path"], "") + f"; {arc['url']}: {exc}").lstrip("; ")
        still = [f for f in still if not (cache / f["path"]).is_file()]
        if not still:
            return


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def resolve_files(card: dict, root: Optional[PathLike] = None, *, download: bool = True) -> Dict[str, Path]:
    """Find and verify every file of ``card``; returns ``{card path: local path}``.

    Each file is looked up in :func:`search_roots` order; the first copy found must match the
    card's size and sha256 (else :class:`ChecksumError`). Files found nowhere are downloaded into
    the cache when ``download`` is true and ``$GRAPHKIT_OFFLINE`` is not set; whatever is still
    missing raises :class:`DatasetNotFoundError` naming each file, its sha256 and how to provide it.
    """
    roots = search_roots(root)
    found: Dict[str, Path] = {}
    missing: List[dict] = []
    for f in card["files"]:
        for r in roots:
            p = r / f["path"]
            if p.is_file():
                verify_file(p, f["sha256"], f["size"])
                found[f["path"]] = p
                break
        else:
            missing.append(f)
    if not missing:
        return found
    errors: Dict[str, str] = {}
    tried = download and not offline()
    if tried:
        cache = cache_dir()
        with file_lock(cache / ".locks" / f"{card['name']}.download.lock"):
            todo = [f for f in missing if not (cache / f["path"]).is_file()]
            _download_missing(card, todo, cache, errors)
        for f in list(missing):
            p = cache / f["path"]
            if p.is_file():
                verify_file(p, f["sha256"], f["size"])
                found[f["path"]] = p
                missing.remove(f)
    if missing:
        raise DatasetNotFoundError(_missing_message(card, missing, roots, errors, tried))
    return found
