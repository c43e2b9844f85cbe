import json
import os

import pytest


def test_entry_ids(load_example):
    poly = load_example("polynomials")
    assert [poly.entry(m, "MUTAG") for m in poly.MODELS] == [
        "poly-gin-mutag", "poly-gin-poly-mutag", "ppgn-mutag", "ppgnpp-mutag"]
    assert poly.entry("ppgn++", "FreeSolv") == "ppgnpp-freesolv"


@pytest.mark.skipif(not os.environ.get("GRAPHKIT_DATA"), reason="needs the dataset mirror")
def test_one_fold_one_epoch_writes_valid_records(load_example, tmp_path):
    poly = load_example("polynomials")
    out = tmp_path / "results"
    poly.main(["--dataset", "MUTAG", "--models", "gin-poly,ppgn++", "--max-folds", "1",
               "--epochs", "1", "--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")])
    for name in ("poly-gin-poly-mutag", "ppgnpp-mutag"):
        rec = json.loads((out / f"{name}.json").read_text())
        assert rec["runs"] == 1 and rec["metrics"]["accuracy"]["paper"] is None
        assert "only 1 of 10 folds run" in rec["deviations"]
    assert (tmp_path / "ck" / "ppgnpp-mutag" / "runs.jsonl").exists()
