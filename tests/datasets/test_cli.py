import shutil

import pytest

from graphkit.datasets import card
from graphkit.datasets.cli import main


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "Cora" in out and "PubMed" in out and "partial" in out
    assert main(["info", "cora"]) == 0
    out = capsys.readouterr().out
    assert "Planetoid/Cora/raw/ind.cora.x" in out and "license:" in out and "num_nodes=2708" in out
    assert main(["info", "Cora", "--json"]) == 0
    assert '"sha256"' in capsys.readouterr().out


def test_verify(mirror, tmp_path, isolated, capsys):
    assert main(["verify", "Cora", "PubMed", "--root", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert "8/8 files ok" in out and "7/8 files ok" in out and "missing:  Planetoid/PubMed/raw/ind.pubmed.allx" in out
    assert main(["verify", "PubMed", "--root", str(mirror), "--strict"]) == 1
    capsys.readouterr()
    for f in card("MUTAG")["files"]:
        dst = tmp_path / "root" / f["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / f["path"], dst)
    (tmp_path / "root/TUDataset/MUTAG/raw/MUTAG_graph_labels.txt").write_text("1\n")
    assert main(["verify", "MUTAG", "--root", str(tmp_path / "root")]) == 1
    assert "CORRUPT" in capsys.readouterr().out


def test_graphkit_command_has_datasets():
    cli = pytest.importorskip("graphkit.cli")
    assert cli.main(["datasets", "list"]) == 0
