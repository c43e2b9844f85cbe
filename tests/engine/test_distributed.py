import json
import multiprocessing as mp
import os
import socket
import sys

import pytest
import torch

from graphkit.engine import all_reduce_mean, barrier, get_rank, get_world_size, init_distributed, is_main_process
from graphkit.engine.distributed import (
    any_rank,
    broadcast_object,
    ensure_distributed,
    setup_device,
    split_for_rank,
    wrap_ddp,
)

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def test_single_process_is_a_no_op(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == (torch.device("cuda:0") if torch.cuda.is_available()
                                  else torch.device("cpu"))
    assert get_rank() == 0 and get_world_size() == 1 and is_main_process()
    barrier()
    assert all_reduce_mean(3) == 3.0
    t = torch.tensor([1.0, 2.0])
    out = all_reduce_mean(t)
    assert torch.equal(out, t) and out is not t


def test_helpers_without_a_process_group(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    assert ensure_distributed() is None
    assert setup_device("cpu") == torch.device("cpu")
    model = torch.nn.Linear(2, 1)
    assert wrap_ddp(model) is model
    assert any_rank(True) and not any_rank(False)
    assert broadcast_object([1, 2]) == [1, 2]
    t = torch.arange(5)
    assert split_for_rank(t) is t


def test_split_for_rank_when_the_world_size_does_not_divide_the_items():
    items = torch.arange(7)
    parts = [split_for_rank(items, r, 3).tolist() for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]  # sizes differ by at most one, nothing lost
    assert [split_for_rank(torch.arange(2), r, 3).numel() for r in range(3)] == [1, 1, 0]


def test_missing_torchrun_vars(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="RANK is not set"):
        init_distributed()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        init_distributed()


def _worker(rank, world_size, port, out_dir):
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    try:
        device = init_distributed(timeout_s=60)
        result = {
            "device": str(device),
            "rank": get_rank(), "world": get_world_size(), "main": is_main_process(),
            "mean_scalar": all_reduce_mean(float(rank)),
            "mean_tensor": all_reduce_mean(torch.tensor([rank, 10.0 * rank])).tolist(),
            "mean_int_tensor": all_reduce_mean(torch.tensor([rank])).tolist(),
            "any": [any_rank(rank == 1), any_rank(False)],
            "broadcast": broadcast_object({"from": rank}),
            "part": split_for_rank(torch.arange(5)).tolist(),
        }
        barrier()
    finally:
        from graphkit.engine import cleanup_distributed
        cleanup_distributed()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available() or sys.platform != "linux"
                    or torch.cuda.is_available(),
                    reason="tests the CPU/gloo path: needs torch.distributed on Linux, no GPU")
def test_two_process_gloo(tmp_path):
    ctx = mp.get_context("fork")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    assert r0["main"] and not r1["main"]
    assert r0["device"] == "cpu"
    assert (r0["part"], r1["part"]) == ([0, 1, 2], [3, 4])  # 5 items over 2 ranks: 3 + 2
    for r in (r0, r1):
        assert r["any"] == [True, False] and r["broadcast"] == {"from": 0}
        assert r["mean_scalar"] == 0.5
        assert r["mean_tensor"] == [0.5, 5.0]
        assert r["mean_int_tensor"] == [0.5]
