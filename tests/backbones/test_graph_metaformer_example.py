import os

import pytest

from graphkit.engine.records import load_record

DATA = os.environ.get("GRAPHKIT_DATA", "")


def test_entry_ids_and_defaults(load_example):
    ex = load_example("graph_metaformer")
    args = ex.parse_args(["--dataset", "cora"])
    assert args.methods == ["pool", "max", "ponet", "mod", "gcn"] and args.epochs == 200
    assert ex.method_entry(args, "pool") == "metaformer-pool-cora"
    assert ex.method_entry(args, "gcn") == "metaformer-baseline-gcn-cora"
    args = ex.parse_args(["--dataset", "PROTEINS"])
    assert args.methods[-1] == "gin" and args.layers == 3
    with pytest.raises(SystemExit):
        ex.parse_args(["--dataset", "PROTEINS", "--methods", "gcn"])


@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "TUDataset", "PROTEINS")),
                    reason="needs PROTEINS under $GRAPHKIT_DATA")
def test_runs_writes_valid_records_without_paper_value(load_example, tmp_path):
    ex = load_example("graph_metaformer")
    out = tmp_path / "results"
    argv = ["--dataset", "PROTEINS", "--methods", "pool,gin", "--folds", "5", "--max-folds",
            "2", "--epochs", "2", "--threads", "1", "--out", str(out), "--checkpoint-dir",
            str(tmp_path / "ck")]
    assert ex.main(argv) == 0
    for entry in ("metaformer-pool-proteins", "metaformer-baseline-gin-proteins"):
        rec = load_record(out / f"{entry}.json")
        acc = rec["metrics"]["accuracy"]
        assert acc["paper"] is None and rec["runs"] == 2 and len(acc["values"]) == 2
        assert any("1 CPU thread" in d for d in rec["deviations"])
        assert any("only 2 of 5 folds" in d for d in rec["deviations"])
    # Resume: a second invocation reads the finished folds back from the logs.
    assert ex.main(argv) == 0
    rec = load_record(out / "metaformer-pool-proteins.json")
    assert any("read back" in d for d in rec["deviations"])
