"""Finding, verifying, downloading and extracting files: errors are clear, nothing is half-written."""
import hashlib
import io
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

import graphkit.datasets as gd
from graphkit.datasets import ChecksumError, DatasetNotFoundError, UnsafeArchiveError, card
from graphkit.datasets import files as F


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _copy_dataset(mirror: Path, name: str, dest: Path, skip=()):
    for f in card(name)["files"]:
        if Path(f["path"]).name in skip:
            continue
        target = dest / f["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / f["path"], target)
    return dest


def _fake_card(tmp_path, payload: bytes, name="toy"):
    return {"name": name, "files": [{"path": "Toy/raw/data.txt", "size": len(payload), "sha256": _sha(payload),
                                     "urls": []}], "loader": {"kind": "kg"}}


# --------------------------------------------------------------------------------------------- roots


def test_search_order(tmp_path, monkeypatch):
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("GRAPHKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GRAPHKIT_CACHE", str(tmp_path / "cache"))
    assert F.search_roots(tmp_path / "root") == [tmp_path / "root", tmp_path / "data", tmp_path / "cache"]
    monkeypatch.delenv("GRAPHKIT_DATA")
    assert F.search_roots() == [tmp_path / "cache"]
    monkeypatch.delenv("GRAPHKIT_CACHE")
    assert F.cache_dir() == Path.home() / ".cache" / "graphkit"
    with pytest.raises(TypeError, match="root must be a path"):
        F.search_roots(3)
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        gd.load("Cora", root=tmp_path / "nope")


def test_root_argument_wins_and_cache_is_last(tmp_path, isolated):
    payload = b"a\tb\tc\n"
    c = _fake_card(tmp_path, payload)
    for where in (tmp_path / "root", isolated):
        (where / "Toy/raw").mkdir(parents=True)
        (where / "Toy/raw/data.txt").write_bytes(payload)
    assert F.resolve_files(c, tmp_path / "root")["Toy/raw/data.txt"] == tmp_path / "root/Toy/raw/data.txt"
    assert F.resolve_files(c)["Toy/raw/data.txt"] == isolated / "Toy/raw/data.txt"


# --------------------------------------------------------------------------------------------- corrupted / missing


def test_corrupted_file_names_the_file(mirror, tmp_path, isolated):
    root = _copy_dataset(mirror, "Cora", tmp_path / "root")
    bad = root / "Planetoid/Cora/raw/ind.cora.x"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"ind\.cora\.x: sha256 is [0-9a-f]{64}, the card expects 23cfa55d"):
        gd.load("Cora", root=root, download=False)
    assert not (isolated / "pyg").exists()  # nothing was processed


def test_truncated_file_reports_size(mirror, tmp_path, isolated):
    root = _copy_dataset(mirror, "Cora", tmp_path / "root")
    p = root / "Planetoid/Cora/raw/ind.cora.graph"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match=r"ind\.cora\.graph: size is 59,837 bytes, the card expects 59,847"):
        gd.get_path("Cora", root=root, download=False)


def test_missing_file_names_it_and_says_how_to_provide(mirror, tmp_path, isolated):
    root = _copy_dataset(mirror, "Cora", tmp_path / "root", skip={"ind.cora.ty"})
    with pytest.raises(DatasetNotFoundError) as info:
        gd.load("Cora", root=root, download=False)
    msg = str(info.value)
    assert "Planetoid/Cora/raw/ind.cora.ty" in msg
    assert card("Cora")["files"][4]["sha256"] in msg
    assert "GRAPHKIT_DATA" in msg and str(root) in msg and "kimiyoung/planetoid" in msg
    assert "ind.cora.x" not in msg  # only the missing one is listed
    assert isinstance(info.value, FileNotFoundError)


def test_offline_env_disables_download(mirror, tmp_path, isolated, monkeypatch):
    root = _copy_dataset(mirror, "Cora", tmp_path / "root", skip={"ind.cora.ty"})
    monkeypatch.setenv("GRAPHKIT_OFFLINE", "1")
    monkeypatch.setattr(F, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(DatasetNotFoundError, match="ind.cora.ty"):
        gd.load("Cora", root=root)


def test_checksum_is_remembered_and_rechecked_after_change(tmp_path, isolated, monkeypatch):
    payload = b"x" * 1000
    p = tmp_path / "f.bin"
    p.write_bytes(payload)
    calls = []
    real = F.sha256sum
    monkeypatch.setattr(F, "sha256sum", lambda path: calls.append(path) or real(path))
    F.verify_file(p, _sha(payload), len(payload))
    F.verify_file(p, _sha(payload), len(payload))
    assert len(calls) == 1  # the second check used the stamp in the cache
    assert list((isolated / ".verified").glob("*.json"))
    p.write_bytes(b"y" * 1000)  # same size, new content, new mtime
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    with pytest.raises(ChecksumError, match="f.bin"):
        F.verify_file(p, _sha(payload), len(payload))


# --------------------------------------------------------------------------------------------- download


def test_download_file_url_success(tmp_path, isolated):
    payload = os.urandom(3 * (1 << 20) + 17)  # several chunks
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    dest = tmp_path / "out" / "data.bin"
    F.download_file(src.as_uri(), dest, sha256=_sha(payload), size=len(payload))
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin"]


def test_download_checksum_mismatch_leaves_nothing(tmp_path, isolated):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello world")
    dest = tmp_path / "out" / "data.bin"
    with pytest.raises(ChecksumError, match="nothing was written"):
        F.download_file(src.as_uri(), dest, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="downloaded 11 bytes"):
        F.download_file(src.as_uri(), dest, size=12)
    assert list(dest.parent.iterdir()) == []


def test_download_interrupted_leaves_nothing(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        headers = {"Content-Length": "100"}

        def read(self, n=-1):
            raise ConnectionResetError("connection reset")

    monkeypatch.setattr(F, "urlopen", lambda url, timeout=None: Broken())
    dest = tmp_path / "out" / "data.bin"
    with pytest.raises(ConnectionResetError):
        F.download_file("https://example.invalid/x", dest)
    assert list(dest.parent.iterdir()) == []


def test_load_downloads_only_the_missing_file(mirror, tmp_path, isolated, monkeypatch):
    """Like PubMed: the root lacks one Planetoid file, which is fetched from its URL into the cache."""
    root = _copy_dataset(mirror, "Cora", tmp_path / "root", skip={"ind.cora.allx"})
    seen = []

    def fake_urlopen(url, timeout=None):  # serve the official URL from the mirror's copy
        seen.append(url)
        name = url.rsplit("/", 1)[1]
        return open(mirror / "Planetoid/Cora/raw" / name, "rb")

    monkeypatch.setattr(F, "urlopen", fake_urlopen)
    ds = gd.load("Cora", root=root)
    assert seen == ["https://github.com/kimiyoung/planetoid/raw/master/data/ind.cora.allx"]
    assert (isolated / "Planetoid/Cora/raw/ind.cora.allx").is_file()
    assert ds[0].num_nodes == 2708 and int(ds[0].train_mask.sum()) == 140
    # get_path assembles the two places into one folder of links in the cache
    folder = gd.get_path("Cora", root=root)
    assert folder == isolated / "linked/Planetoid/Cora/raw"
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(f["path"]).name for f in card("Cora")["files"])


def test_failed_download_is_reported(mirror, tmp_path, isolated, monkeypatch):
    import urllib.error

    root = _copy_dataset(mirror, "Cora", tmp_path / "root", skip={"ind.cora.allx"})

    def no_network(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(F, "urlopen", no_network)
    with pytest.raises(DatasetNotFoundError, match=r"(?s)ind\.cora\.allx.*download failed.*no route to host"):
        gd.load("Cora", root=root)
    assert not (isolated / "Planetoid/Cora/raw/ind.cora.allx").exists()


def test_download_from_archive(tmp_path, isolated):
    payload = b"h\tr\tt\n"
    zpath = tmp_path / "bundle.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("bundle/data.txt", payload)
        zf.writestr("bundle/other.txt", b"unrelated")
    c = _fake_card(tmp_path, payload)
    c["archives"] = [{"url": zpath.as_uri(), "members": {"bundle/data.txt": "Toy/raw/data.txt"}}]
    paths = F.resolve_files(c)
    assert paths["Toy/raw/data.txt"].read_bytes() == payload
    assert not (isolated / "Toy/raw/other.txt").exists()


# --------------------------------------------------------------------------------------------- extraction


def _zip_with(path: Path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil.txt", "a/../../evil.txt", "/tmp/evil-abs.txt", "..\\evil.txt"])
def test_malicious_member_is_refused_and_nothing_written(tmp_path, evil):
    z = _zip_with(tmp_path / "bad.zip", [("ok.txt", b"fine"), (evil, b"pwned")])
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        F.safe_extract_zip(z, dest)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/evil-abs.txt").exists()


def test_symlink_member_is_refused(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        F.safe_extract_zip(z, tmp_path / "out")


def test_safe_extract_ok(tmp_path):
    z = _zip_with(tmp_path / "good.zip", [("d/a.txt", b"A"), ("b.txt", b"B")])
    out = F.safe_extract_zip(z, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == ["b.txt", "d/a.txt"]
    assert (tmp_path / "out/d/a.txt").read_bytes() == b"A"


def test_malicious_archive_download_writes_nothing(tmp_path, isolated):
    payload = b"h\tr\tt\n"
    z = _zip_with(tmp_path / "bad.zip", [("../../evil.txt", payload)])
    c = _fake_card(tmp_path, payload)
    c["archives"] = [{"url": z.as_uri(), "members": {"../../evil.txt": "Toy/raw/data.txt"}}]
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Toy/raw/data\.txt.*refusing to extract"):
        F.resolve_files(c)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name == "evil.txt"]
    assert written == []
    assert not (isolated / "Toy").exists()


# --------------------------------------------------------------------------------------------- the real mirror


def test_pubmed_offline_names_allx(mirror, session_cache):
    with pytest.raises(DatasetNotFoundError) as info:
        gd.load("PubMed")
    msg = str(info.value)
    assert "Planetoid/PubMed/raw/ind.pubmed.allx" in msg
    assert "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e" in msg
    assert "7,578,385 bytes" in msg
    assert "https://github.com/kimiyoung/planetoid/raw/master/data/ind.pubmed.allx" in msg
    assert "GRAPHKIT_DATA" in msg and "GRAPHKIT_OFFLINE" in msg
    assert "ind.pubmed.tx" not in msg  # the seven staged files were found


def test_verify_reports(mirror, tmp_path, isolated):
    res = gd.verify("PubMed", root=mirror)
    assert [r["status"] for r in res].count("ok") == 7
    assert [r["path"] for r in res if r["status"] == "missing"] == ["Planetoid/PubMed/raw/ind.pubmed.allx"]
    root = _copy_dataset(mirror, "MUTAG", tmp_path / "root")
    (root / "TUDataset/MUTAG/raw/MUTAG_A.txt").write_text("1, 2\n")
    res = {Path(r["path"]).name: r for r in gd.verify("MUTAG", root=root)}
    assert res["MUTAG_A.txt"]["status"] == "mismatch" and "MUTAG_A.txt" in res["MUTAG_A.txt"]["detail"]
    assert res["MUTAG_graph_labels.txt"]["status"] == "ok"


def test_download_from_gz_archive(tmp_path, isolated):
    import gzip

    payload = b"1,2,3,4\n"
    gz = tmp_path / "signed.csv.gz"
    gz.write_bytes(gzip.compress(payload))
    c = _fake_card(tmp_path, payload)
    c["archives"] = [{"url": gz.as_uri(), "format": "gz", "members": {"signed.csv": "Toy/raw/data.txt"}}]
    assert F.resolve_files(c)["Toy/raw/data.txt"].read_bytes() == payload
    c["archives"][0]["members"] = {"../../signed.csv": "Toy/raw/other.txt"}
    c["files"].append({"path": "Toy/raw/other.txt", "size": len(payload), "sha256": _sha(payload), "urls": []})
    with pytest.raises(DatasetNotFoundError, match="refusing to extract"):
        F.resolve_files(c)
    assert not list(tmp_path.rglob("signed.csv"))
