import json
import os

import pytest


def test_entry_ids_and_shared_flags(load_example):
    dagnn = load_example("dagnn")
    cases = {("cora",): "dagnn-cora", ("Coauthor-CS",): "dagnn-coauthor-cs",
             ("amazon-computers", "--split", "reference"):
                 "dagnn-amazon-computers-reference-split",
             ("CiteSeer", "--select", "test"): "dagnn-citeseer-test-selected"}
    for argv, entry in cases.items():
        args = dagnn.parse_args(["--dataset", *argv])
        assert args.entry == entry
        assert args.log == os.path.join("runs", entry, "runs.jsonl")
    args = dagnn.parse_args(["--dataset", "Cora", "--checkpoint-dir", "ck", "--time-budget", "5"])
    assert (args.epochs, args.patience, args.K, args.runs) == (1000, 100, 10, 100)
    assert args.log == os.path.join("ck", "runs.jsonl") and args.time_budget == 5.0
    with pytest.raises(SystemExit):
        dagnn.parse_args(["--dataset", "Cora", "--split", "reference"])


@pytest.mark.skipif(not os.path.isdir(os.path.join(os.environ.get("GRAPHKIT_DATA", ""),
                                                   "Planetoid", "Cora")),
                    reason="needs the Cora files under $GRAPHKIT_DATA")
def test_dagnn_runs_and_resumes_from_its_log(load_example, tmp_path, capsys):
    dagnn = load_example("dagnn")
    log = tmp_path / "runs.jsonl"
    argv = ["--dataset", "Cora", "--epochs", "4", "--no-record", "--threads", "1",
            "--log", str(log)]
    assert dagnn.main(argv + ["--runs", "2"]) == 0
    first = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["seed"] for r in first] == [0, 1] and all(r["epochs_run"] == 4 for r in first)
    capsys.readouterr()
    assert dagnn.main(argv + ["--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming: 2 finished runs" in out
    assert [json.loads(line)["run"] for line in log.read_text().splitlines()] == [0, 1, 2]
