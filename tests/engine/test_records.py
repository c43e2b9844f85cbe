import json

import numpy as np
import pytest
import torch

from graphkit.engine import RecordError, check_record, load_record, load_records, validate_record, write_result_record
from graphkit.engine.records import current_command, is_valid_metric_name


def _write(out_dir, entry="dagnn-coauthor-cs", values=(92.8, 93.0, 93.1), **kw):
    args = dict(entry=entry, method="DAGNN", dataset="Coauthor-CS",
                task="node classification", primary_metric="accuracy",
                metrics={"accuracy": {"paper": 92.8, "paper_source": "Table 3",
                                      "tolerance": 1.0, "values": list(values)}},
                runs=len(values), protocol="20 per class / 30 per class / rest, 100 splits",
                deviations="", wall_time_s=12.5, out_dir=out_dir, command="python x.py")
    args.update(kw)
    return write_result_record(**args)


def test_write_fills_provenance(tmp_path):
    path = _write(tmp_path, values=[torch.tensor(92.0), np.float64(93.0), 94])
    assert path == tmp_path / "dagnn-coauthor-cs.json"
    rec = json.loads(path.read_text())
    m = rec["metrics"]["accuracy"]
    assert m["values"] == [92.0, 93.0, 94.0]
    assert m["mean"] == 93.0 and m["std"] == pytest.approx(np.std([92, 93, 94], ddof=1))
    assert rec["deviations"] == [] and rec["command"] == "python x.py"
    for key in ("python", "torch", "torch_geometric", "numpy", "graphkit"):
        assert rec["versions"][key]
    assert rec["hardware"]["cores"] >= 1 and rec["hardware"]["cpu"]
    assert rec["git_commit"] == "unknown" or len(rec["git_commit"].split("-")[0]) == 40
    assert rec["date"].endswith("+00:00")
    assert validate_record(rec, expected_entry="dagnn-coauthor-cs") == []
    assert load_record(path) == rec
    assert [p.name for p in tmp_path.iterdir()] == ["dagnn-coauthor-cs.json"]  # no temp file


def test_write_rejects_bad_input_without_writing(tmp_path):
    with pytest.raises(RecordError, match=r"metrics.accuracy.values: 3 values but runs = 4"):
        _write(tmp_path, runs=4)
    with pytest.raises(RecordError, match=r"metrics.Accuracy: metric name must be lower-case"):
        _write(tmp_path, primary_metric="Accuracy",
               metrics={"Accuracy": {"paper": 1.0, "paper_source": "T1", "tolerance": 0.1,
                                     "values": [1.0, 1.0, 1.0]}})
    with pytest.raises(RecordError, match=r"primary_metric: 'recall@20' is not a key of metrics"):
        _write(tmp_path, primary_metric="recall@20")
    with pytest.raises(RecordError, match=r"paper_source: must say where"):
        _write(tmp_path, metrics={"accuracy": {"paper": 1.0, "paper_source": "",
                                               "tolerance": 0.1, "values": [1, 1, 1]}})
    with pytest.raises(RecordError, match=r"values: expected a non-empty list of finite"):
        _write(tmp_path, values=[1.0, float("nan"), 2.0])
    with pytest.raises(RecordError, match=r"entry: 'a/b' must be a file-name-safe id"):
        _write(tmp_path, entry="a/b")
    with pytest.raises(ValueError, match=r"unknown keys \['papers'\]"):
        _write(tmp_path, metrics={"accuracy": {"papers": 1.0, "values": [1, 1, 1]}})
    with pytest.raises(TypeError, match=r"values\[1\]: expected a number, got str"):
        _write(tmp_path, values=[1.0, "2", 3.0])
    with pytest.raises(RecordError, match="extra: not JSON-serialisable"):
        _write(tmp_path, extra={"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_numpy_and_tensor_scalars_accepted(tmp_path):
    rec = load_record(_write(tmp_path, runs=np.int64(3), wall_time_s=np.float32(2.5)))
    assert rec["runs"] == 3 and rec["wall_time_s"] == 2.5
    with pytest.raises(RecordError, match="runs: expected a positive integer, got True"):
        _write(tmp_path, runs=True)


def test_metric_names():
    for ok in ("accuracy", "recall@20", "ndcg@20", "f1@20", "macro_f1", "micro_f1", "ap",
               "auc", "mrr", "mae", "hits@50", "precision@10"):
        assert is_valid_metric_name(ok), ok
    for bad in ("Accuracy", "recall", "recall@0", "ndcg@k", "acc", "mae@10", "recall@20 ", ""):
        assert not is_valid_metric_name(bad), bad


def test_load_records_names_file_and_fields(tmp_path):
    good = _write(tmp_path)
    rec = json.loads(good.read_text())
    bad = dict(rec, entry="other", runs=0, extra_field=1)
    bad["metrics"] = {"accuracy": dict(rec["metrics"]["accuracy"], mean=50.0)}
    del bad["git_commit"]
    (tmp_path / "broken.json").write_text(json.dumps(bad))
    (tmp_path / "notjson.json").write_text("{\n  oops\n}")
    records, errors = load_records(tmp_path)
    assert [r["entry"] for r in records] == ["dagnn-coauthor-cs"]
    assert len(errors) == 2
    msg = str(errors[0])
    assert str(tmp_path / "broken.json") in msg
    for part in ("git_commit: missing required field",
                 "extra_field: unknown field",
                 "runs: expected a positive integer, got 0",
                 "entry: 'other' does not match the file name 'broken'.json",
                 "metrics.accuracy.mean: 50.0 is not the mean of values"):
        assert part in msg, part
    assert "notjson.json: invalid result record" in str(errors[1])
    assert "line 2, column 3: invalid JSON" in str(errors[1])
    assert load_records(tmp_path / "missing") == ([], [])


def test_validate_record_types():
    assert validate_record([]) == ["top level: expected a JSON object, got list"]
    problems = validate_record({"entry": "x", "metrics": {}, "deviations": "none",
                                "date": "yesterday", "wall_time_s": -1})
    assert "metrics: expected a non-empty object {metric name: {...}}" in problems
    assert "deviations: expected a list of non-empty strings" in problems
    assert "date: 'yesterday' is not an ISO-8601 date-time" in problems
    assert "wall_time_s: expected a non-negative number, got -1" in problems
    with pytest.raises(RecordError, match=r"^f.json: invalid result record"):
        check_record({}, "f.json")


def test_lower_is_better_and_no_paper(tmp_path):
    path = _write(tmp_path, entry="ultragcn-ml-1m", method="UltraGCN", dataset="ML-1M",
                  primary_metric="mae", values=[0.7],
                  metrics={"mae": {"paper": None, "paper_source": "", "tolerance": None,
                                   "values": [0.7]}})
    rec = load_record(path)
    assert rec["metrics"]["mae"]["std"] == 0.0 and rec["metrics"]["mae"]["paper"] is None


def test_current_command():
    assert current_command(["examples/dagnn.py", "--dataset", "Coauthor CS"]) == \
        "python examples/dagnn.py --dataset 'Coauthor CS'"
    assert current_command(["/usr/bin/graphkit", "leaderboard", "table"]) == \
        "graphkit leaderboard table"


def test_variant_tag_names_what_changed():
    from graphkit.engine import variant_tag

    assert variant_tag({}) == ""
    assert variant_tag({"negative_candidates": 64}) == "neg64"
    assert variant_tag({"lr": 1e-3, "batch_size": 8192}) == "lr0.001-batch8192"
    assert variant_tag({"lambda_": 2.75, "my_setting": "a b"}) == "lambda2.75-my-setting-a-b"
    assert variant_tag({"sampler": "epoch", "negative_weight": -1}) == "sampler-epoch-negw--1"
    with pytest.raises(ValueError, match="file-name-safe"):
        variant_tag({"": -1})
