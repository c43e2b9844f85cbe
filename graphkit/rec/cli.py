"""``graphkit rec``: train, recommend and evaluate on your own interaction data.

.. code-block:: bash

    graphkit rec train --data events.csv --user-col user_id --item-col item_id \\
        --time-col ts --split temporal --model lightgcn --out runs/my-model
    graphkit rec recommend --model-dir runs/my-model --users u1 u2 --k 10 --out recs.csv
    graphkit rec evaluate --model-dir runs/my-model --k 10 20
    # the LightGCN/UltraGCN text layout, one line per user: "user item item ..."
    graphkit rec train --data train.txt --test-data test.txt --out runs/lists-model

Recommendations exclude every interaction the model has seen (training and validation), as
``rec evaluate`` does, so metrics recomputed from exported lists equal the evaluated ones.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional

# Defaults per model (the papers' settings where they exist).
MODEL_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "lightgcn": dict(lr=1e-3, batch_size=2048, embedding_dim=64, sampler="user"),
    "mf": dict(lr=1e-3, batch_size=2048, embedding_dim=64, sampler="user"),
    "ultragcn": dict(lr=1e-3, batch_size=1024, embedding_dim=64, sampler="epoch"),
    # graph filters: nothing to train (no epochs, learning rate or embeddings)
    "gfcf": dict(trainable=False),
    "bspm": dict(trainable=False),
    "polyfilter": dict(trainable=False),
}
FILTER_MODELS = ("gfcf", "bspm", "polyfilter")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


#: Above this many validation users, `rec train` early-stops on a seeded sample of this many.
VALID_USERS_DEFAULT = 100_000


def _valid_users(text: str):
    if text.strip().lower() == "all":
        return "all"
    try:
        return _positive_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of users or 'all', got {text!r}") from None


def _add_threads(parser) -> None:
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice, one per core). On a machine "
                             "busy with other jobs, fewer threads than cores keep torch's threads from "
                             "waiting on each other, which can slow small models many times over")


def _apply_threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def add_parser(subparsers) -> None:
    rec = subparsers.add_parser("rec", help="recommenders on your own interaction data",
                                description="Train, recommend and evaluate recommenders on a CSV/TSV/Parquet "
                                            "file of user-item interactions.")
    sub = rec.add_subparsers(dest="rec_command", metavar="ACTION")
    rec.set_defaults(func=lambda args: rec.print_help() or 2)

    t = sub.add_parser("train", help="train a recommender and save it to a model directory")
    data = t.add_argument_group("data")
    data.add_argument("--data", required=True,
                      help="interaction file: a table (.csv, .tsv, .txt, .parquet) or user-item lists "
                           "(see --format)")
    _add_format(data)
    data.add_argument("--user-col", help="column holding user ids (tables)")
    data.add_argument("--item-col", help="column holding item ids (tables)")
    data.add_argument("--time-col", help="column holding timestamps (numbers or dates)")
    data.add_argument("--rating-col", help="column holding ratings")
    data.add_argument("--min-rating", type=float, help="keep events with rating >= this as positives")
    data.add_argument("--sep", help="field separator (default: by file extension, sniffed for .txt)")
    data.add_argument("--test-data", help="a separate test file with the same columns / format (split 'given'); "
                                           "its pairs also in --data are dropped")
    data.add_argument("--split", choices=("random", "temporal", "given"), default=None,
                      help="how to hold out test interactions (default: 'given' with --test-data, "
                           "'temporal' with --time-col, else 'random')")
    data.add_argument("--test-ratio", type=float, default=0.2, help="per-user held-out ratio (default 0.2)")
    data.add_argument("--valid-ratio", type=float, default=0.1,
                      help="per-user validation ratio carved from training, for early stopping (default 0.1)")
    model = t.add_argument_group("model and training")
    model.add_argument("--model", choices=sorted(MODEL_DEFAULTS), default="lightgcn")
    model.add_argument("--embedding-dim", type=_positive_int)
    model.add_argument("--num-layers", type=int, default=3, help="LightGCN propagation layers (default 3)")
    model.add_argument("--epochs", type=_positive_int, default=1000)
    model.add_argument("--batch-size", type=_positive_int,
                       help="training pairs per step (LightGCN default: chosen from the data size, see --max-memory)")
    model.add_argument("--lr", type=float)
    model.add_argument("--max-memory", type=float, default=None, metavar="GB",
                       help="memory training may take, in GB (default: what the system has available); LightGCN "
                            "and UltraGCN check their memory estimate against it before training, and full-ranking "
                            "evaluation "
                            "scores users in blocks of at most 512 MB (or 1/8 of this)")
    model.add_argument("--valid-users", type=_valid_users, default=None, metavar="N|all",
                       help="validation users ranked at each evaluation for early stopping: a seeded random "
                            f"sample of N, the same every time, or 'all' (default: all when the validation part "
                            f"has at most {VALID_USERS_DEFAULT:,} users, else a sample of {VALID_USERS_DEFAULT:,}). "
                            "The final test evaluation always ranks for every test user")
    model.add_argument("--reg-weight", type=float, default=1e-4)
    model.add_argument("--negative-candidates", type=_positive_int, default=1,
                       help="LightGCN / MF: train on the hardest of this many sampled negatives "
                            "(dynamic negative sampling; default 1 = plain BPR)")
    model.add_argument("--eval-every", type=_positive_int, default=5)
    model.add_argument("--patience", type=_positive_int, default=5,
                       help="evaluations without improvement before stopping (default 5)")
    model.add_argument("--k", type=_positive_int, nargs="+", default=[20], help="cut-offs (default 20)")
    model.add_argument("--monitor-metric", "--monitor", dest="monitor", default=None,
                       help="selection metric (default recall@<first k>)")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--device", default="auto")
    _add_threads(model)
    model.add_argument("--time-budget", type=float, help="stop after this many seconds (checkpointed)")
    ultra = t.add_argument_group("UltraGCN (--model ultragcn; defaults: the paper's ML-1M settings)")
    for flag, dest, kind, text in ULTRAGCN_FLAGS:
        ultra.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    filt = t.add_argument_group("graph filters (--model gfcf | bspm | polyfilter; no training: defaults "
                                "are the papers' Gowalla settings)")
    for flag, dest, kind, text, models in FILTER_FLAGS:
        filt.add_argument(flag, dest=dest, type=kind, default=None, help=f"{text} [{', '.join(models)}]")
    filt.add_argument("--select", choices=("given", "valid"), default="given",
                      help="graph filters: 'valid' scores a small grid around the settings (GF-CF alpha; BSPM "
                           "sharpen time x beta; polynomial coefficient sets) on the validation part, keeps the "
                           "best by --monitor-metric and reports the search time; 'given' uses the settings as given "
                           "(default)")
    out = t.add_argument_group("output")
    out.add_argument("--out", required=True, help="model directory to write")
    out.add_argument("--no-resume", action="store_true", help="ignore a checkpoint left in --out")
    out.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("recommend", help="top-K recommendations from a trained model")
    r.add_argument("--model-dir", required=True)
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", nargs="+", help="raw user ids")
    who.add_argument("--users-file", help="file with one raw user id per line")
    who.add_argument("--all-users", action="store_true")
    r.add_argument("--k", type=_positive_int, default=20)
    r.add_argument("--include-seen", action="store_true",
                   help="do not mask the items the model has seen (by default every training and validation "
                        "interaction of the user is excluded, as in `rec evaluate`)")
    r.add_argument("--out", help="write a CSV (user,rank,item,score) instead of printing (folders are created)")
    r.add_argument("--device", default="cpu")
    _add_threads(r)
    r.set_defaults(func=cmd_recommend)

    e = sub.add_parser("evaluate", help="full-ranking metrics of a trained model")
    e.add_argument("--model-dir", required=True)
    e.add_argument("--data", help="evaluate on this file instead of the saved test part; its pairs that the "
                                  "model has seen (training, validation) are dropped, as `train --test-data` does")
    _add_format(e)
    e.add_argument("--user-col")
    e.add_argument("--item-col")
    e.add_argument("--rating-col", help="column holding ratings")
    e.add_argument("--min-rating", type=float, help="keep events with rating >= this as positives")
    e.add_argument("--sep")
    e.add_argument("--part", choices=("test", "valid"), default="test")
    e.add_argument("--k", type=_positive_int, nargs="+", default=[10, 20])
    e.add_argument("--device", default="cpu")
    _add_threads(e)
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=cmd_evaluate)


def _add_format(group) -> None:
    group.add_argument("--format", choices=("auto", "table", "lists"), default="auto",
                       help="'table': one event per row, columns named by --user-col/--item-col; 'lists': "
                            "the LightGCN/UltraGCN text layout, one line per user 'user item item ...' with "
                            "integer ids (no header, no columns to name). 'auto' (default): 'lists' for a .txt "
                            "file when --user-col/--item-col are not given, else 'table'")


def _fail(msg: str) -> int:
    print(f"graphkit rec: error: {msg}", file=sys.stderr)
    return 2


def _event_format(args, path: str) -> str:
    if pathlib.Path(path).is_dir():
        raise ValueError(f"{path}: is a directory; expected an interaction file")
    fmt = getattr(args, "format", "auto")
    if fmt == "auto":
        named = args.user_col or args.item_col
        fmt = "lists" if pathlib.Path(path).suffix.lower() == ".txt" and not named else "table"
    if fmt == "lists":
        given = [f for f, v in (("--user-col", args.user_col), ("--item-col", args.item_col),
                                ("--time-col", getattr(args, "time_col", None)),
                                ("--rating-col", args.rating_col),
                                ("--min-rating", getattr(args, "min_rating", None) is not None)) if v]
        if given:
            raise ValueError(f"{path}: {', '.join(given)} given with --format lists (user-item lists have no "
                             "columns); use --format table for a table")
    elif not (args.user_col and args.item_col):
        raise ValueError(f"{path}: --user-col and --item-col are needed to read a table (or --format lists "
                         "for the 'user item item ...' layout)")
    return fmt


def _read_events(args, path: str, **kwargs):
    """Read an interaction file given on the command line into an InteractionGraph (all pairs
    in ``train``), as a table or as user-item lists (``--format``)."""
    from graphkit.rec.data import from_dataframe, read_table, read_user_item_table

    if _event_format(args, path) == "lists":
        return from_dataframe(read_user_item_table(path), "user", "item", source=path, **kwargs)
    return from_dataframe(read_table(path, args.sep), args.user_col, args.item_col,
                          rating_col=args.rating_col, min_rating=args.min_rating, source=path, **kwargs)


def _drop_seen_pairs(pairs, graph, parts=("train",)):
    """Remove from ``pairs`` those present in ``graph``'s ``parts``: they can never be
    recommended (seen items are masked), so keeping them only lowers recall. Returns the kept
    pairs and ``{part: count dropped}``."""
    import torch

    n = graph.num_items
    key = pairs[0] * n + pairs[1]
    keep = torch.ones(key.numel(), dtype=torch.bool)
    dropped = {}
    for part in parts:
        seen = getattr(graph, part)
        if seen is None:
            continue
        hit = torch.isin(key, seen[0] * n + seen[1]) & keep
        if hit.any():
            dropped[part] = int(hit.sum())
            keep &= ~hit
    return pairs[:, keep], dropped


def _load_model(args):
    """``load_model_dir`` with its failures turned into ``ValueError`` messages."""
    import pickle

    from graphkit.rec.io import load_model_dir

    try:
        return load_model_dir(args.model_dir, device=args.device)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from exc
    except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{args.model_dir}: the saved weights (model.pt) or interactions do not fit model.json; "
                         f"they were probably written by another run or model. Retrain into a fresh --out. "
                         f"({first})") from exc


# (flag, UltraGCN argument, type, help)
ULTRAGCN_FLAGS = [
    ("--w1", "w1", float, "weight of the user-item constraint on positives, first term (1e-7)"),
    ("--w2", "w2", float, "... second term (1.0)"),
    ("--w3", "w3", float, "weight of the constraint on negatives, first term (1e-7)"),
    ("--w4", "w4", float, "... second term (1.0)"),
    ("--num-negatives", "num_negatives", int, "sampled negatives per positive (200)"),
    ("--negative-weight", "negative_weight", float, "weight of the negative loss (200)"),
    ("--gamma", "gamma", float, "L2 regularisation weight (1e-4)"),
    ("--lambda", "lambda_", float, "weight of the item-item constraint loss (1e-3)"),
    ("--num-neighbors", "num_neighbors", int, "item-item neighbours per item (10)"),
    ("--init-std", "init_std", float, "std of the normal initialisation (1e-3)"),
]


def _coefficients(text: str) -> List[float]:
    try:
        return [float(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0,2,-1, got {text!r}") from None


# flag, dest, type, help, models taking it
FILTER_FLAGS = [
    ("--alpha", "alpha", float, "weight of the ideal low-pass term (GF-CF 0.3)", ("gfcf",)),
    ("--rank", "rank", int, "singular vectors of the ideal low-pass filter (GF-CF 256, BSPM 448)",
     ("gfcf", "bspm")),
    ("--beta", "beta", float, "weight of the ideal term (BSPM 0.2)", ("bspm",)),
    ("--merge", "merge", str, "early or late merge of the ideal term (BSPM early)", ("bspm",)),
    ("--sharpen-time", "sharpen_time", float, "terminal time of the sharpening ODE (2.5)", ("bspm",)),
    ("--sharpen-steps", "sharpen_steps", int, "solver steps of the sharpening ODE (1)", ("bspm",)),
    ("--sharpen-solver", "sharpen_solver", str, "euler or rk4 (rk4)", ("bspm",)),
    ("--coefficients", "coefficients", _coefficients, "polynomial coefficients c0,c1,... of the "
     "normalised item-item matrix (0,2,-1)", ("polyfilter",)),
    ("--memory-budget-mb", "memory_budget_mb", float, "scoring memory budget in MB (1024)", FILTER_MODELS),
    ("--item-item", "item_item", str, "auto, sparse or dense item-item products (auto)", FILTER_MODELS),
]


def _model_settings(args) -> Dict[str, Any]:
    """The model-specific flags given on the command line, checked against ``--model``."""
    given = {dest: getattr(args, dest) for _, dest, _, _ in ULTRAGCN_FLAGS if getattr(args, dest) is not None}
    if given and args.model != "ultragcn":
        flags = ", ".join(f for f, dest, _, _ in ULTRAGCN_FLAGS if dest in given)
        raise ValueError(f"{flags}: UltraGCN settings given with --model {args.model}")
    for flag, dest, _, _, models in FILTER_FLAGS:
        value = getattr(args, dest)
        if value is None:
            continue
        if args.model not in models:
            raise ValueError(f"{flag} applies to --model {' / '.join(models)}, not {args.model}")
        given[dest] = value
    return given


def build_model(name: str, num_users: int, num_items: int, *, embedding_dim: int, num_layers: int = 3,
                reg_weight: float = 1e-4, extra: Optional[Dict[str, Any]] = None):
    """The registered recommender ``name`` built from the command line's settings."""
    from graphkit.nn.models import create_recommender

    if name in FILTER_MODELS:  # training-free: no embeddings
        return create_recommender(name, num_users, num_items, **(extra or {}))
    kwargs = {"lightgcn": dict(num_layers=num_layers, reg_weight=reg_weight),
              "mf": dict(reg_weight=reg_weight)}.get(name, extra or {})
    return create_recommender(name, num_users, num_items, embedding_dim=embedding_dim, **kwargs)


def _load_training_graph(args):
    from graphkit.rec.data import from_dataframe, read_table
    from graphkit.rec.split import holdout_validation, random_split, temporal_split

    if _event_format(args, args.data) == "lists":
        graph = _read_events(args, args.data)
        graph.name = pathlib.Path(args.data).stem
    else:
        graph = from_dataframe(read_table(args.data, args.sep), args.user_col, args.item_col,
                               time_col=args.time_col, rating_col=args.rating_col, min_rating=args.min_rating,
                               name=pathlib.Path(args.data).stem, source=args.data)
    split = args.split or ("given" if args.test_data else "temporal" if args.time_col else "random")
    notes: List[str] = []
    if split == "given":
        if not args.test_data:
            raise ValueError("--split given needs --test-data")
        test = _read_events(args, args.test_data, user_ids=graph.user_ids, item_ids=graph.item_ids)
        dropped = test.meta["unknown_id_events_dropped"]
        if dropped:
            notes.append(f"{dropped} test events with users/items absent from {args.data} were dropped")
        t, overlap = _drop_seen_pairs(test.train, graph)
        if overlap:
            notes.append(f"{overlap['train']} test pairs also in training were dropped")
        if t.size(1) == 0:
            raise ValueError(f"{args.test_data}: no test pairs left (" + "; ".join(notes or ["none read"]) + ")")
        graph.test = t
        if args.valid_ratio > 0:
            graph = holdout_validation(graph, args.valid_ratio, seed=args.seed)
    elif split == "temporal":
        if not args.time_col:
            raise ValueError("--split temporal needs --time-col")
        graph = temporal_split(graph, test_ratio=args.test_ratio, valid_ratio=args.valid_ratio or None)
    else:
        graph = random_split(graph, test_ratio=args.test_ratio, valid_ratio=args.valid_ratio, seed=args.seed)
    return graph, split, notes


def _plot_curve(history: List[Dict[str, Any]], monitor: str, path: pathlib.Path) -> Optional[pathlib.Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    keys = [k for k in history[0] if k.endswith(monitor)] if history else []
    if not keys:
        return None
    epochs = [h["epoch"] + 1 for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(epochs, [h["loss"] for h in history], color="tab:gray", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax2 = ax1.twinx()
    ax2.plot(epochs, [h[keys[0]] for h in history], color="tab:blue", marker="o", label=keys[0])
    ax2.set_ylabel(keys[0])
    fig.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def cmd_train(args) -> int:
    _apply_threads(args)
    try:
        extra = _model_settings(args)
    except ValueError as exc:
        return _fail(str(exc))
    from graphkit.engine import resolve_device, seed_everything
    from graphkit.rec.io import save_model_dir
    from graphkit.rec.split import describe
    from graphkit.rec.train import ResumeError, fit

    defaults = MODEL_DEFAULTS[args.model]
    lr = args.lr if args.lr is not None else defaults.get("lr")
    batch_size = args.batch_size or defaults.get("batch_size")
    dim = args.embedding_dim or defaults.get("embedding_dim")
    monitor = args.monitor or f"recall@{args.k[0]}"
    try:
        graph, split, notes = _load_training_graph(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        return _fail(str(exc))
    except UnicodeDecodeError as exc:  # pragma: no cover - read_table names the file already
        return _fail(f"{args.data}: not a text file ({exc})")
    stats = describe(graph)
    print(f"data: {graph}  split={split}")
    for note in notes:
        print(f"note: {note}")
    for part in ("valid", "test"):
        unseen = stats.get(f"{part}_pairs_with_unseen_item", 0)
        if unseen:
            print(f"note: {unseen} {part} pairs involve items never seen in training (kept; they rank on "
                  "untrained embeddings)")
    try:
        recipe, eval_memory = _training_recipe(args, graph, dim)
    except ValueError as exc:
        return _fail(str(exc))
    if recipe is not None:
        print(recipe.describe())
        batch_size = args.batch_size or recipe.batch_size
        lr = args.lr if args.lr is not None else recipe.lr
    selection = None
    if args.select == "valid":
        try:
            extra, selection = _select_filter(args, graph, extra, monitor, eval_memory)
        except ValueError as exc:
            return _fail(str(exc))
    seed_everything(args.seed)
    if args.negative_candidates > 1 and args.model == "ultragcn":
        return _fail("--negative-candidates applies to lightgcn and mf; UltraGCN draws its own "
                     "negatives (--num-negatives)")
    device = resolve_device(args.device)
    try:
        model = build_model(args.model, graph.num_users, graph.num_items, embedding_dim=dim,
                            num_layers=args.num_layers, reg_weight=args.reg_weight,
                            extra=extra).to(device)
    except (TypeError, ValueError) as err:
        return _fail(str(err))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    select_on = "valid" if graph.valid is not None else "test"
    if select_on == "test":
        print("note: no validation part (--valid-ratio is 0 or too small for these users): the best epoch is "
              "selected on the test part")
    valid_users, valid_note = _valid_users_setting(args, graph) if select_on == "valid" else (None, None)
    if valid_note:
        print(valid_note)
    t0 = time.time()
    try:
        result = fit(model, graph, epochs=args.epochs, batch_size=batch_size, lr=lr,
                     sampler=defaults.get("sampler", "user"),
                     negative_candidates=args.negative_candidates, eval_every=args.eval_every,
                     patience=args.patience, ks=tuple(args.k), monitor=monitor,
                     select_on=select_on, checkpoint_dir=str(out / "checkpoints"), resume=not args.no_resume,
                     seed=args.seed, log_path=str(out / "history.jsonl"),
                     progress=False if args.no_progress else None, time_budget_s=args.time_budget,
                     on_resume=_print_resume, eval_memory_budget=eval_memory, valid_users=valid_users)
    except ResumeError as exc:  # the checkpoint in --out belongs to another run
        return _fail(f"cannot resume from {out / 'checkpoints'}: {exc}. Re-run with the data and settings of "
                     f"that run, or with --no-resume (starts afresh, overwriting it) or another --out")
    from graphkit.engine.distributed import cleanup_distributed, is_main_process

    if not is_main_process():  # under torchrun, rank 0 alone writes the model folder and reports
        cleanup_distributed()
        return 0
    info = {"split": split, "select_on": select_on, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
            "interrupted": result.interrupted, "valid_metrics": result.best_valid, "test_metrics": result.test,
            "train_settings": {"lr": lr, "batch_size": batch_size, "epochs": args.epochs, "seed": args.seed,
                               "eval_every": args.eval_every, "patience": args.patience, "monitor": monitor,
                               "negative_candidates": args.negative_candidates},
            "wall_time_s": round(result.wall_time_s, 2), "sittings": result.sittings, "notes": notes}
    if select_on == "valid" and getattr(model, "trainable", True):
        info["valid_users"] = {"evaluated": result.valid_users or _count_users(graph.valid),
                               "of": _count_users(graph.valid),
                               "sampled": result.valid_users is not None, "seed": args.seed}
    if selection is not None:
        info["filter_selection"] = selection
    save_model_dir(str(out), model.cpu(), graph, info=info)
    curve = _plot_curve(result.history, monitor, out / "training_curve.png")
    timing = f"{result.epochs_run} epochs in {result.wall_time_s:.1f} s"
    if result.sittings > 1:
        timing += (f" over {result.sittings} sittings (this one: {result.epochs_run - result.resumed_from} "
                   f"epochs, {time.time() - t0:.1f} s)")
    if not getattr(model, "trainable", True):
        print(f"graph filter prepared and evaluated in {result.wall_time_s:.1f} s (nothing to train)")
    else:
        print(f"best epoch {result.best_epoch + 1} (selected on {select_on} {monitor}); {timing}")
    if result.test:
        print("test: " + "  ".join(f"{k}={v:.4f}" for k, v in result.test.items() if "@" in k))
    print(f"saved to {out}" + (f" (curve: {curve.name})" if curve else ""))
    cleanup_distributed()
    return 0


def _count_users(pairs) -> int:
    import torch

    return int(torch.unique(pairs[0]).numel())


def _valid_users_setting(args, graph):
    """``fit``'s ``valid_users`` from ``--valid-users`` (``None``: all) and a line saying which
    validation users early stopping ranks."""
    if not getattr(args, "model", None) or args.model in FILTER_MODELS:
        return None, None
    total = _count_users(graph.valid)
    asked = args.valid_users
    if asked == "all" or (asked is None and total <= VALID_USERS_DEFAULT) or (asked is not None and asked >= total):
        return None, (f"validation: all {total} users with validation items are ranked at each evaluation"
                      + (f" (at most {VALID_USERS_DEFAULT:,}: no sample by default)" if asked is None else ""))
    n = VALID_USERS_DEFAULT if asked is None else asked
    how = "--valid-users" if asked is not None else f"the default above {VALID_USERS_DEFAULT:,} validation users"
    return n, (f"validation: a random sample of {n} of the {total} users with validation items (seed {args.seed}, "
               f"the same at every evaluation; {how}) for early stopping; the test evaluation ranks for every "
               f"test user")


def _select_filter(args, graph, given: Dict[str, Any], monitor: str, eval_memory):
    """``--select valid`` for a graph filter: the best setting of its validation grid around the
    given flags, and a summary for model.json. Raises ``ValueError`` for a trained model or a
    graph without a validation part."""
    from graphkit.rec.filter_select import filter_grid, select_filter

    if args.model not in FILTER_MODELS:
        raise ValueError(f"--select valid applies to --model {' / '.join(FILTER_MODELS)} (a trained model is "
                         "already selected on the validation part, by epoch)")
    if graph.valid is None:
        raise ValueError("--select valid needs a validation part: set --valid-ratio above 0")
    best, rows, seconds = select_filter(args.model, graph, filter_grid(args.model, given), ks=tuple(args.k),
                                        monitor=monitor, memory_budget=eval_memory, log=print)
    print(f"selected on validation {monitor}: {best} ({seconds:.1f} s for {len(rows)} settings)")
    return best, {"monitor": monitor, "best": best, "grid": rows, "seconds": round(seconds, 2)}


def _training_recipe(args, graph, dim: int):
    """LightGCN's recipe for the data size (:func:`graphkit.rec.train.scale_recipe`; ``None`` for
    other models) and the evaluation's score-block budget in bytes. Raises ``ValueError`` when
    the budget is not a positive size or the recipe's memory estimate exceeds it."""
    from graphkit.nn.models.recommender import DEFAULT_SCORE_MEMORY
    from graphkit.rec.train import PAPER_BATCH_SIZE, PAPER_LR, ScaleRecipe, available_memory, scale_recipe

    if args.max_memory is not None and not args.max_memory > 0:
        raise ValueError(f"--max-memory must be a positive number of GB, got {args.max_memory}")
    budget = int(args.max_memory * 2 ** 30) if args.max_memory is not None else available_memory()
    eval_memory = DEFAULT_SCORE_MEMORY if budget is None else min(DEFAULT_SCORE_MEMORY, budget // 8)
    if eval_memory < 4 * graph.num_items:
        raise ValueError(f"--max-memory {args.max_memory} GB leaves {eval_memory} bytes for a block of scores, less "
                         f"than one user's row ({graph.num_items} items x 4 bytes)")
    if args.model == "ultragcn":
        return _ultragcn_recipe(args, graph, dim, budget, eval_memory), eval_memory
    if args.model != "lightgcn":
        return None, eval_memory
    recipe = scale_recipe(graph.num_train, graph.num_users, graph.num_items, embedding_dim=dim,
                          memory_budget=budget, score_memory=eval_memory)
    if args.batch_size is not None or args.lr is not None:  # the user's settings win
        batch = args.batch_size or PAPER_BATCH_SIZE
        recipe = ScaleRecipe("as given", batch, args.lr if args.lr is not None else PAPER_LR,
                             -(-graph.num_train // batch), batch / PAPER_BATCH_SIZE, recipe.estimated_bytes,
                             budget)
    return recipe, eval_memory


def _ultragcn_recipe(args, graph, dim: int, budget, eval_memory: int):
    """UltraGCN's settings with their memory estimate (:func:`graphkit.rec.train.ultragcn_memory_estimate`),
    checked against ``budget`` before any work (``ValueError`` naming what to lower)."""
    import inspect

    from graphkit.nn.models.ultragcn import UltraGCN
    from graphkit.rec.train import ScaleRecipe, ultragcn_memory_estimate

    defaults = MODEL_DEFAULTS["ultragcn"]
    params = inspect.signature(UltraGCN).parameters
    negatives = args.num_negatives if args.num_negatives is not None else params["num_negatives"].default
    neighbors = args.num_neighbors if args.num_neighbors is not None else params["num_neighbors"].default
    batch = args.batch_size or defaults["batch_size"]
    lr = args.lr if args.lr is not None else defaults["lr"]
    for flag, value in (("--num-negatives", negatives), ("--num-neighbors", neighbors)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    estimate = ultragcn_memory_estimate(graph.num_train, graph.num_users, graph.num_items, dim, batch, negatives,
                                        neighbors, score_memory=eval_memory, memory_budget=budget)
    given = args.batch_size is not None or args.lr is not None or args.num_negatives is not None
    return ScaleRecipe("as given" if given else "paper", batch, lr, -(-graph.num_train // batch), 1, estimate,
                       budget, detail=f", {negatives} negatives per pair, {neighbors} item-item neighbours")


def _print_resume(info: Dict[str, Any]) -> None:
    print(f"resuming the run in {pathlib.Path(info['path']).parent}: {info['epochs_done']} epoch(s) done in "
          f"{info['wall_time_s']:.1f} s (sitting {info['sittings']})", flush=True)


def _read_user_list(args, user_ids) -> List[Any]:
    if args.all_users:
        return list(user_ids)
    if args.users_file:
        try:
            with open(args.users_file, encoding="utf-8") as fh:
                return [line.strip() for line in fh if line.strip()]
        except FileNotFoundError:
            raise ValueError(f"--users-file {args.users_file}: no such file") from None
        except IsADirectoryError:
            raise ValueError(f"--users-file {args.users_file}: is a directory, expected a file") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"--users-file {args.users_file}: not a UTF-8 text file ({exc.reason} at byte "
                             f"{exc.start})") from None
    return list(args.users)


def _resolve_users(requested: List[Any], user_ids):
    """Map raw ids given on the command line (strings) to indices; report unknown ones."""
    import numpy as np
    import pandas as pd

    known = pd.Index(np.asarray(user_ids).astype(str))
    asked = np.asarray(requested).astype(str) if len(requested) else np.zeros(0, dtype=str)
    pos = known.get_indexer(asked)  # unique ids: -1 marks an unknown one
    unknown = [requested[i] for i in np.flatnonzero(pos < 0)]
    return pos[pos >= 0].astype(np.int64), unknown


def cmd_recommend(args) -> int:
    _apply_threads(args)
    import numpy as np
    import torch

    try:
        model, graph, meta = _load_model(args)
        requested = _read_user_list(args, graph.user_ids)
    except ValueError as exc:
        return _fail(str(exc))
    idx, unknown = _resolve_users(requested, graph.user_ids)
    if unknown:
        print(f"warning: {len(unknown)} unknown user(s) skipped: {unknown[:5]}", file=sys.stderr)
    if idx.size == 0:
        return _fail("none of the requested users is known to the model")
    if args.k > graph.num_items:
        return _fail(f"--k {args.k} exceeds the number of items ({graph.num_items})")
    top, scores = _top_k(model, graph, torch.from_numpy(idx), args.k, exclude_seen=not args.include_seen)
    top, scores = top.numpy(), scores.numpy()
    listed = np.isfinite(scores)  # -inf: masked items a user with fewer than k unseen ones got
    ranks = np.broadcast_to(np.arange(1, args.k + 1), top.shape)
    import pandas as pd

    df = pd.DataFrame({"user": np.asarray(graph.user_ids)[np.repeat(idx, listed.sum(1))],
                       "rank": ranks[listed], "item": np.asarray(graph.item_ids)[top[listed]],
                       "score": scores[listed]})
    if args.out:
        out = pathlib.Path(args.out)
        if out.is_dir():
            return _fail(f"--out {out}: is a directory; give a file name such as {out / 'recs.csv'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        from graphkit.utils.io import atomic_write

        atomic_write(out, lambda f: df.to_csv(f, index=False))
        print(f"wrote {len(df)} recommendations for {idx.size} user(s) to {args.out}")
    else:
        df.to_csv(sys.stdout, index=False)
    return 0


def _top_k(model, graph, users, k: int, exclude_seen: bool = True, batch_size: int = 2048):
    """Top-``k`` items and their scores for ``users`` (CPU tensors ``[B, k]``), scored exactly as
    ``rec evaluate`` scores them: same scorer, the user's training **and** validation items masked
    (the model's own ``recommend`` knows only its training graph), ties broken by item index.
    A user with fewer than ``k`` unmasked items gets masked ones last, with score ``-inf``."""
    import torch

    from graphkit.nn.models.recommender import score_block_rows
    from graphkit.rec.train import _model_device, make_score_fn
    from graphkit.utils.ranking import PairIndex, topk_ties_by_index

    batch_size = score_block_rows(graph.num_items, None, batch_size, where="rec recommend")  # bounded by bytes
    device = _model_device(model)
    seen = [p for p in (graph.train, graph.valid) if p is not None] if exclude_seen else []
    index = PairIndex(torch.cat(seen, dim=1).to(device), graph.num_users, graph.num_items, device) if seen else None
    tops, values = [], []
    with torch.no_grad():
        score = make_score_fn(model)
        for start in range(0, users.numel(), batch_size):
            block = users[start:start + batch_size].to(device)
            # embedding models rank as full_ranking does (DotProductScorer.topk): the same lists
            ranked = score.topk(block, k, index) if hasattr(score, "topk") else None
            if ranked is not None:
                tops.append(ranked[0].cpu())
                values.append(ranked[1].cpu())
                continue
            scores = score(block).to(device, torch.float32)
            if index is not None:
                if scores._base is not None and not getattr(score, "returns_scratch", False):
                    scores = scores.clone()
                rows, cols = index.block(block)
                scores[rows, cols] = float("-inf")
            top = topk_ties_by_index(scores, k)
            tops.append(top.cpu())
            values.append(scores.gather(1, top).cpu())
    if not tops:
        return torch.zeros(0, k, dtype=torch.long), torch.zeros(0, k)
    return torch.cat(tops), torch.cat(values)


def cmd_evaluate(args) -> int:
    _apply_threads(args)
    from graphkit.rec.train import evaluate_model

    try:
        model, graph, meta = _load_model(args)
    except ValueError as exc:
        return _fail(str(exc))
    if args.data:
        try:
            other = _read_events(args, args.data, user_ids=graph.user_ids, item_ids=graph.item_ids)
        except (ValueError, FileNotFoundError, ImportError) as exc:
            return _fail(str(exc))
        notes = []
        dropped = other.meta["unknown_id_events_dropped"]
        if dropped:
            notes.append(f"{dropped} events with users/items unknown to the model were skipped")
        pairs, seen = _drop_seen_pairs(other.train, graph, ("train", "valid"))
        notes += [f"{n} pairs also in the model's {'training' if part == 'train' else 'validation'} "
                  "interactions were dropped (they are masked, so could never be recommended)"
                  for part, n in seen.items()]
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if pairs.size(1) == 0:
            return _fail(f"{args.data}: no pairs left to evaluate on ({'; '.join(notes)})")
        graph.test, args.part = pairs, "test"
    target = getattr(graph, args.part)
    if target is None or target.size(1) == 0:
        return _fail(f"{args.model_dir}: the saved {args.part} part is empty; nothing to evaluate "
                     f"(pass --data FILE to evaluate on other interactions)")
    try:
        res = evaluate_model(model, graph, args.part, ks=tuple(args.k))
    except ValueError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        masked = "training and validation" if args.part == "test" and graph.valid is not None else "training"
        print(f"{args.part} ({res['num_users']} users, all-item ranking, {masked} items masked):")
        for k, v in res.items():
            if "@" in k:
                print(f"  {k:<14} {v:.4f}")
    return 0
