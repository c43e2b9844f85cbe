import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "examples", "graphsage_sampled.py")


def load_example():
    spec = importlib.util.spec_from_file_location("graphsage_sampled_example", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_synthetic_run_writes_record_and_resumes(tmp_path, capsys):
    ex = load_example()
    argv = ["--dataset", "synthetic", "--num-nodes", "400", "--classes", "3", "--epochs", "2",
            "--threads", "1", "--fanouts", "5,3", "--batch-size", "64", "--hidden", "16",
            "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "rec")]
    assert ex.main(argv) == 0
    record = json.loads((tmp_path / "rec" / "graphsage-sampled-synthetic-n400.json").read_text())
    acc = record["metrics"]["accuracy"]["values"][0]
    assert 100 / 3 < acc <= 100  # better than chance on the homophilous synthetic graph
    assert ex.main(argv) == 0  # the finished run is read back, not retrained
    assert "read back" in " ".join(json.loads(
        (tmp_path / "rec" / "graphsage-sampled-synthetic-n400.json").read_text())["deviations"])


def test_bad_flags(capsys):
    ex = load_example()
    with pytest.raises(SystemExit):
        ex.parse_args(["--dataset", "synthetic", "--fanouts", "5,x"])
    with pytest.raises(SystemExit):
        ex.parse_args(["--dataset", "synthetic", "--fanouts", "5,0"])
    err = capsys.readouterr().err
    assert "fan-out of hop 1 is 0" in err
