import io
import json
import math
import sys

import numpy as np
import pytest
import torch

from graphkit.engine import JSONLLogger, progress, read_jsonl
from graphkit.utils import progress_disabled


def test_jsonl_logger_lines(tmp_path):
    path = tmp_path / "sub" / "log.jsonl"
    with JSONLLogger(path, timestamp=False) as log:
        assert repr(log) == f"JSONLLogger({str(path)!r})"
        log.log(epoch=1, loss=torch.tensor(0.5), acc=np.float32(0.25), ids=torch.tensor([1, 2]))
        # flushed immediately: readable before close
        assert json.loads(path.read_text().splitlines()[0]) == {
            "epoch": 1, "loss": 0.5, "acc": 0.25, "ids": [1, 2]}
        log.log(epoch=2, loss=float("nan"), best=math.inf, name="x", nested={"a": np.int64(3)})
    rows = read_jsonl(path)
    assert rows[1] == {"epoch": 2, "loss": None, "best": None, "name": "x", "nested": {"a": 3}}
    log.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        log.log(epoch=3)


def test_jsonl_logger_append_timestamp_and_disabled(tmp_path):
    path = tmp_path / "log.jsonl"
    with JSONLLogger(path) as log:
        log.log(step=1)
    with JSONLLogger(path) as log:  # default mode "a": a resumed run continues the log
        log.log(step=2, time="given")
    rows = read_jsonl(path)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["time"].endswith("+00:00") and rows[1]["time"] == "given"
    with JSONLLogger(path, mode="w", timestamp=False) as log:
        log.log(step=3)
    assert read_jsonl(path) == [{"step": 3}]
    off = JSONLLogger(tmp_path / "off.jsonl", enabled=False)
    off.log(step=1)
    assert not (tmp_path / "off.jsonl").exists()
    with pytest.raises(ValueError, match="mode"):
        JSONLLogger(path, mode="r")
    with pytest.raises(TypeError, match="cannot log a value of type object"):
        JSONLLogger(tmp_path / "x.jsonl").log(bad=object())


def test_read_jsonl_reports_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{oops}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: invalid JSON"):
        read_jsonl(path)


def test_progress_disabled_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    assert progress_disabled()
    bar = progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]
    monkeypatch.delenv("CI")
    assert progress(range(2), disable=False).disable is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert progress_disabled()

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert not progress_disabled()


def test_finished_runs_and_append_run_survive_a_cut_last_line(tmp_path):
    from graphkit.engine import append_run, finished_runs

    log = tmp_path / "runs.jsonl"
    settings = {"lr": 0.01}
    assert finished_runs(log, settings) == {} and finished_runs(None, settings) == {}
    append_run(log, {"run": 0, "settings": settings, "acc": 0.5})
    append_run(log, {"run": 1, "settings": {"lr": 0.1}, "acc": 0.6})
    with open(log, "a") as f:
        f.write('{"run": 2, "settings": {"lr"')  # a process killed mid-write
    assert set(finished_runs(log, settings)) == {0}
    append_run(log, {"run": 2, "settings": settings, "acc": 0.7})
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)
    assert {k: v["acc"] for k, v in finished_runs(log, settings).items()} == {0: 0.5, 2: 0.7}
    log.write_text('{"run": 0}\nnot json\n{"run": 1}\n')
    with pytest.raises(ValueError, match="runs.jsonl:2: invalid JSON"):
        finished_runs(log, settings)
