import json
import re

import pytest

import graphkit.datasets as gd
from graphkit.datasets import DatasetNotFoundError, card, list_datasets
from graphkit.datasets.registry import cards_dir

EXPECTED = {
    "Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Amazon-Photo", "Coauthor-CS", "Coauthor-Physics",
    "HGB-ACM", "HGB-DBLP", "HGB-IMDB", "MAGNN-IMDB", "Gowalla", "Yelp2018", "LastFM", "MovieLens-100K",
    "Nations", "Kinships", "UMLS", "MUTAG", "PROTEINS", "ENZYMES", "NCI1", "IMDB-BINARY", "UCI", "Enron",
    "Bitcoin-OTC", "Bitcoin-Alpha", "Wikipedia-Structure", "ESOL", "FreeSolv", "BBBP", "HIV", "ML-1M",
    "Amazon-Electronics", "Amazon-CDs", "SR",
}


def test_registry_contents():
    assert set(list_datasets()) == EXPECTED
    assert list_datasets() == sorted(list_datasets(), key=str.lower)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_card_fields(name):
    c = card(name)
    assert c["name"] == name
    for key in ("task", "status", "license", "citation", "loader"):
        assert c[key], key
    assert c["status"] in {"complete", "partial", "variant"}
    for f in c["files"]:
        assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]), f
        assert isinstance(f["size"], int) and f["size"] > 0
        assert not f["path"].startswith("/") and ".." not in f["path"].split("/")
        for u in f.get("urls", []):
            assert u.startswith("https://"), u
    for a in c.get("archives", []):
        assert a["url"].startswith("https://")
        paths = {f["path"] for f in c["files"]}
        assert set(a["members"].values()) <= paths


def test_names_are_case_insensitive_and_aliases_resolve():
    assert card("cora")["name"] == "Cora"
    assert card("CORA")["name"] == "Cora"
    assert card("ml-100k")["name"] == "MovieLens-100K"
    assert card("amazon_computers")["name"] == "Amazon-Computers"
    assert card("collegemsg")["name"] == "UCI"


def test_unknown_name():
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'Corra'"):
        gd.load("Corra")
    with pytest.raises(TypeError, match="must be a str"):
        card(3)


def test_card_is_a_copy():
    c = card("Cora")
    c["files"].clear()
    assert card("Cora")["files"]


def test_cards_match_mirror_manifest(mirror):
    manifest = {}
    with open(mirror / "manifest.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            manifest[d["dest"]] = d
    for name in list_datasets():
        for f in card(name)["files"]:
            if f["path"] in manifest:
                assert manifest[f["path"]]["sha256"] == f["sha256"], f["path"]
                assert manifest[f["path"]]["size"] == f["size"], f["path"]
            else:  # only PubMed's allx is known but absent from the mirror
                assert f["path"] == "Planetoid/PubMed/raw/ind.pubmed.allx"


def test_readme_is_up_to_date():
    from graphkit.datasets import readme

    assert readme.main(["--check"]) == 0, "run: python -m graphkit.datasets.readme"
    text = (cards_dir() / "README.md").read_text(encoding="utf-8")
    for name in list_datasets():
        assert f"[{name}]" in text


def test_list_datasets_by_task_and_load_interactions():
    import os

    from graphkit.datasets import card, list_datasets, load_interactions

    rec = list_datasets("recommendation")
    assert rec and set(rec) < set(list_datasets())
    assert all(card(n)["task"].startswith("recommendation") for n in rec) and "Cora" not in rec
    if os.environ.get("GRAPHKIT_DATA"):
        graph = load_interactions("MovieLens-100K")  # its default loader returns a PyG dataset
        assert graph.num_users == 943 and graph.train.size(0) == 2
