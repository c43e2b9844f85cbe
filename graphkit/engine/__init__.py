"""Training-run plumbing: one training loop per task kind, seeding, devices, atomic checkpoints
with resume, JSONL logs and progress bars, best-validation tracking over runs, and result
records for the leaderboard.

Sub-modules are imported on first use, so ``import graphkit.engine`` (and the
``graphkit leaderboard`` command) does not import torch.
"""
from __future__ import annotations

from graphkit._lazy import lazy_exports

_EXPORTS = {
    # memory.py
    "keep_freed_memory": "memory",
    # optim.py
    "adam": "optim",
    # signals.py
    "GracefulStop": "signals",
    # seed.py
    "seed_everything": "seed",
    "resolve_device": "seed",
    # checkpoint.py
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "Checkpointer": "checkpoint",
    "get_rng_state": "checkpoint",
    "set_rng_state": "checkpoint",
    "unwrap_model": "checkpoint",
    # log.py
    "JSONLLogger": "log",
    "read_jsonl": "log",
    "finished_runs": "log",
    "append_run": "log",
    "progress": "log",
    # loops.py
    "fit": "loops",
    "train_node_classifier": "loops",
    "train_graph_classifier": "loops",
    "node_step": "loops",
    "node_metrics": "loops",
    "check_node_data": "loops",
    "graph_train_epoch": "loops",
    "graph_evaluate": "loops",
    "WindowMeanStop": "loops",
    "PatienceStop": "loops",
    "run_many": "loops",
    "check_replicas": "loops",
    # tracker.py
    "RunTracker": "tracker",
    "mean_std": "tracker",
    # records.py
    "write_result_record": "records",
    "validate_record": "records",
    "check_record": "records",
    "load_record": "records",
    "load_records": "records",
    "RecordError": "records",
    "variant_tag": "records",
    # distributed.py
    "init_distributed": "distributed",
    "is_main_process": "distributed",
    "ensure_distributed": "distributed",
    "launched_with_torchrun": "distributed",
    "setup_device": "distributed",
    "wrap_ddp": "distributed",
    "any_rank": "distributed",
    "broadcast_object": "distributed",
    "split_for_rank": "distributed",
    "print0": "distributed",
    "get_rank": "distributed",
    "is_distributed": "distributed",
    "get_world_size": "distributed",
    "barrier": "distributed",
    "all_reduce_mean": "distributed",
    "cleanup_distributed": "distributed",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
