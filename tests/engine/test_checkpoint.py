import json
import random

import numpy as np
import pytest
import torch

import graphkit.utils.io as gio
from graphkit.engine import (
    Checkpointer,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)


def _trained():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(16, 4)).pow(2).mean().backward()
        opt.step()
    return model, opt


def _fresh():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.Linear(8, 2))
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def test_roundtrip_weights_only(tmp_path):
    model, opt = _trained()
    path = save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, epoch=4,
                           model_args={"in": 4, "hidden": [8], "norm": "batch"},
                           extra={"best_valid": 0.5, "perm": torch.arange(5), "note": None})
    # A plain weights_only load works: only tensors and primitive containers are stored.
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 4 and isinstance(raw["model_args"], str)
    side = json.loads((tmp_path / "ck.json").read_text())
    assert side["model_args"] == {"in": 4, "hidden": [8], "norm": "batch"} and side["epoch"] == 4

    m2, o2 = _fresh()
    state = load_checkpoint(path, model=m2, optimizer=o2)
    assert state["epoch"] == 4
    assert state["model_args"] == {"in": 4, "hidden": [8], "norm": "batch"}
    assert state["extra"]["best_valid"] == 0.5 and state["extra"]["note"] is None
    assert torch.equal(state["extra"]["perm"], torch.arange(5))
    for (k, a), b in zip(model.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"])
        assert torch.equal(s1[k]["step"], s2[k]["step"])


def test_unwraps_dataparallel(tmp_path):
    model, _ = _trained()
    wrapped = torch.nn.DataParallel(model)
    save_checkpoint(tmp_path / "ck.pt", model=wrapped, epoch=0, model_args={})
    keys = list(torch.load(tmp_path / "ck.pt", weights_only=True)["model"])
    assert keys and not any(k.startswith("module.") for k in keys)
    m2, _ = _fresh()
    load_checkpoint(tmp_path / "ck.pt", model=torch.nn.DataParallel(m2))
    assert torch.equal(m2[0].weight, model[0].weight)


def test_rng_restore(tmp_path):
    seed_everything(1)
    model, _ = _fresh()
    save_checkpoint(tmp_path / "ck.pt", model=model, epoch=0, model_args={})
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)],
                np.random.randn())  # randn exercises NumPy's cached gaussian
    seed_everything(99)
    torch.rand(10)
    load_checkpoint(tmp_path / "ck.pt")
    got = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)],
           np.random.randn())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2] and expected[3] == got[3]
    # restore_rng=False leaves the current streams alone
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    load_checkpoint(tmp_path / "ck.pt", restore_rng=False)
    assert torch.equal(a, torch.rand(3))


def test_get_set_rng_state_with_pending_gaussian():
    random.seed(0)
    random.gauss(0, 1)  # leaves gauss_next set
    np.random.seed(0)
    np.random.randn()  # leaves a cached gaussian
    state = get_rng_state()
    a = (random.gauss(0, 1), np.random.randn(), torch.randn(2))
    set_rng_state(state)
    b = (random.gauss(0, 1), np.random.randn(), torch.randn(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_failed_write_leaves_old_checkpoint_intact(tmp_path, monkeypatch):
    model, opt = _trained()
    path = save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, epoch=1,
                           model_args={"v": 1})
    before = path.read_bytes()

    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):  # writes part of the file, then fails
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=model, optimizer=opt, epoch=2, model_args={"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.pt"]  # no temp files
    assert load_checkpoint(path)["epoch"] == 1


def test_failed_rename_cleans_up(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("rename failed")

    monkeypatch.setattr(gio.os, "replace", boom)
    model, _ = _fresh()
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(tmp_path / "ck.pt", model=model, epoch=0, model_args={})
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    model, _ = _fresh()
    with pytest.raises(TypeError, match="model_args must be JSON-serialisable"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=0, model_args={"f": object()})
    with pytest.raises(TypeError, match="model_args must be a dict"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=0, model_args=[1])
    with pytest.raises(TypeError, match=r"extra\['cfg'\]: cannot store a set"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=0, model_args={},
                        extra={"cfg": {1, 2}})
    with pytest.raises(TypeError, match="epoch must be an int"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=1.0, model_args={})
    with pytest.raises(TypeError, match="torch.nn.Module"):
        save_checkpoint(tmp_path / "a.pt", model={"w": 1}, epoch=0, model_args={})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a graphkit checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"format": "graphkit.checkpoint", "epoch": 1}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="missing model_args, model, rng"):
        load_checkpoint(tmp_path / "partial.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a loadable graphkit checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "noopt.pt", model=model, epoch=0, model_args={})
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "noopt.pt", optimizer=torch.optim.SGD(model.parameters(), 0.1))


def test_pickled_objects_refused(tmp_path):
    """A checkpoint holding an arbitrary pickled object is rejected by weights_only."""
    import argparse

    torch.save({"format": "graphkit.checkpoint", "obj": argparse.Namespace(a=1)},
               tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a loadable"):
        load_checkpoint(tmp_path / "evil.pt")


def test_checkpointer_keep_last_and_resume(tmp_path):
    ck = Checkpointer(tmp_path / "run", keep_last=2)
    assert repr(ck) == f"Checkpointer({str(tmp_path / 'run')!r}, keep_last=2)"
    model, opt = _trained()
    m2, o2 = _fresh()
    assert ck.latest() is None
    assert ck.resume(m2, o2) == 0 and ck.last_state is None
    assert ck.resume(m2, o2, default=1) == 1
    for epoch in range(5):
        ck.save(epoch, model=model, optimizer=opt, model_args={"e": epoch},
                extra={"epoch_loss": float(epoch)})
    assert [p.name for p in ck.checkpoints()] == ["checkpoint-000003.pt", "checkpoint-000004.pt"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint-000003.json", "checkpoint-000003.pt",
        "checkpoint-000004.json", "checkpoint-000004.pt"]
    assert ck.resume(m2, o2) == 5
    assert ck.last_state["extra"] == {"epoch_loss": 4.0}
    assert torch.equal(m2[0].weight, model[0].weight)
    keep_all = Checkpointer(tmp_path / "all", keep_last=None)
    for epoch in range(3):
        keep_all.save(epoch, model=model, model_args={})
    assert len(keep_all.checkpoints()) == 3
    with pytest.raises(ValueError, match="keep_last"):
        Checkpointer(tmp_path, keep_last=0)
    with pytest.raises(ValueError, match="prefix"):
        Checkpointer(tmp_path, prefix="a/b")


def test_compiled_model_state_keys(tmp_path):
    model, _ = _fresh()
    compiled = torch.compile(model)  # wrapping only; no compilation happens here
    save_checkpoint(tmp_path / "ck.pt", model=compiled, epoch=0, model_args={})
    keys = list(torch.load(tmp_path / "ck.pt", weights_only=True)["model"])
    assert not any(k.startswith("_orig_mod") for k in keys)
