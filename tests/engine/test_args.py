import argparse

import pytest

from graphkit.engine.args import changed_settings, entry_id, example_parser, slug


def test_shared_flags_defaults_and_units():
    p = example_parser("demo", datasets=["Cora", "ML-1M"], dataset="Cora", runs=3, epochs=10)
    a = p.parse_args([])
    assert (a.dataset, a.runs, a.seed, a.epochs) == ("Cora", 3, 0, 10)
    assert a.select == "valid" and a.resume is True and a.record is True
    assert a.time_budget is None and a.threads is None and a.deviation == []
    a = p.parse_args(["--dataset", "ml-1m", "--time-budget", "90", "--no-resume", "--select", "test"])
    assert a.dataset == "ML-1M" and a.time_budget == 90.0 and a.resume is False and a.select == "test"


@pytest.mark.parametrize("argv", [["--dataset", "PubMed"], ["--runs", "0"], ["--time-budget", "-1"],
                                  ["--select", "best"], ["--seed", "-3"]])
def test_bad_flags_are_refused(argv, capsys):
    p = example_parser("demo", datasets=["Cora"], dataset="Cora")
    with pytest.raises(SystemExit):
        p.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_dataset_required_without_default():
    with pytest.raises(SystemExit):
        example_parser("demo").parse_args([])


def test_entry_ids():
    assert slug("ML-1M") == "ml-1m" and slug("Amazon Electronics") == "amazon-electronics"
    assert entry_id("lightgcn", "Gowalla", select="test", paper_select="test") == "lightgcn-gowalla"
    assert entry_id("lightgcn", "Gowalla", variant="neg64", select="valid",
                    paper_select="test") == "lightgcn-gowalla-neg64-valid"
    assert entry_id("dagnn", "Coauthor-CS") == "dagnn-coauthor-cs"
    assert entry_id("lagnn", "Cora", parts=["gcn"]) == "lagnn-gcn-cora"
    with pytest.raises(ValueError, match="select"):
        entry_id("x", "y", select="best")


def test_changed_settings_keeps_order():
    a = argparse.Namespace(lr=1e-3, batch_size=2048, negative_candidates=64)
    defaults = {"lr": 1e-3, "batch_size": 1024, "negative_candidates": 1}
    assert list(changed_settings(a, defaults, ["negative_candidates", "lr", "batch_size"])) == [
        "negative_candidates", "batch_size"]
