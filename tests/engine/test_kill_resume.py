"""A training run killed mid-way (SIGKILL, in a real subprocess) resumes from its checkpoint and
ends with exactly the parameters of an uninterrupted run.

The interrupted runs are subprocesses; the uninterrupted run and the resumptions run in this
process (same code, single thread), which keeps the test fast.
"""
import importlib.util
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
import torch

SCRIPT = pathlib.Path(__file__).with_name("resume_train_script.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]
EPOCHS = 6

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def _script():
    spec = importlib.util.spec_from_file_location("resume_train_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _train_here(ckpt_dir, out, **kwargs):
    threads = torch.get_num_threads()
    lines = []
    try:
        start = _script().train(ckpt_dir, out, epochs=EPOCHS, log=lines.append, **kwargs)
    finally:
        torch.set_num_threads(threads)
    return start, lines


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _cmd(ckpt_dir, out, *extra):
    return [sys.executable, str(SCRIPT), "--ckpt-dir", str(ckpt_dir), "--out", str(out),
            "--epochs", str(EPOCHS), *map(str, extra)]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    start, lines = _train_here(d / "ckpt", d / "final.pt")
    assert start == 0 and lines[-1] == "done"
    return torch.load(d / "final.pt", weights_only=True)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs after resume"


def test_self_sigkill_mid_epoch_then_resume(tmp_path, straight):
    ckpt, out = tmp_path / "ckpt", tmp_path / "final.pt"
    killed = subprocess.run(_cmd(ckpt, out, "--die-at", 3, 2), env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "epoch 2" in killed.stdout and "epoch 3" not in killed.stdout
    assert not out.exists()
    # keep_last=2: the checkpoints of epochs 1 and 2 remain, and no temporary files
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint-000001.json", "checkpoint-000001.pt",
        "checkpoint-000002.json", "checkpoint-000002.pt"]
    control = tmp_path / "control"
    shutil.copytree(ckpt, control)

    start, _ = _train_here(ckpt, out)
    assert start == 3
    _assert_same(straight, torch.load(out, weights_only=True))

    # Control: the equality depends on the restored random states. Rewind to the epoch-2
    # checkpoint with a different saved torch RNG state: the result must differ.
    out2 = tmp_path / "final2.pt"
    latest = control / "checkpoint-000002.pt"
    raw = torch.load(latest, weights_only=True)
    gen = torch.Generator().manual_seed(12345)
    raw["rng"]["torch"] = gen.get_state()
    torch.save(raw, latest)
    assert _train_here(control, out2)[0] == 3
    final2 = torch.load(out2, weights_only=True)
    assert any(not torch.equal(straight[k], final2[k]) for k in straight)


def test_external_sigkill_then_resume(tmp_path, straight):
    ckpt, out = tmp_path / "ckpt", tmp_path / "final.pt"
    proc = subprocess.Popen(_cmd(ckpt, out, "--sleep", 0.5), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "epoch 1":
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()

    start, _ = _train_here(ckpt, out)
    assert 2 <= start < EPOCHS  # killed during the sleep after epoch 1 (or just after)
    _assert_same(straight, torch.load(out, weights_only=True))
