"""LightGCN (He et al., SIGIR 2020) on every registered recommendation dataset.

Paper numbers (all-item ranking, top-20, training items masked):

    Gowalla   Recall@20 0.1830  NDCG@20 0.1554   (LightGCN paper, 3 layers)
    Yelp2018  Recall@20 0.0649  NDCG@20 0.0530   (LightGCN paper, 3 layers)
    ML-1M     Recall@20 0.2576  NDCG@20 0.2427   (as reported in the UltraGCN paper, LCFN split)

The other registered recommendation datasets (Amazon-CDs, Amazon-Electronics, LastFM,
MovieLens-100K: ``graphkit datasets list``) have no published LightGCN figure on their split;
they run with the same settings and their record has no paper value.

Paper settings (the defaults here, for every dataset): embedding 64, 3 layers, mean of layer
outputs, Adam lr 1e-3, batch 2048, L2 1e-4 on the batch's layer-0 embeddings, normal(0, 0.1)
init, one uniformly sampled negative per positive (users drawn uniformly, the reference
sampler), up to 1000 epochs, seed 2020 (the reference code's).

Protocols (``--select``):

* ``test`` (default) — the reference code's protocol: train on the whole training file,
  evaluate on the test file every ``--eval-every`` epochs and report the best test figure. This
  selects on test.
* ``valid`` — proper model selection: 10% of every user's training items are held out as a
  validation part; the epoch with the best validation Recall@20 is evaluated once on test. The
  entry id then ends in ``-valid``.

Runs checkpoint to ``--checkpoint-dir`` and resume from it by default (``--no-resume`` starts
afresh), so a long run (Gowalla and Yelp2018 need hours on a CPU) can continue across sittings;
``--time-budget SECONDS`` stops cleanly and the record states the epoch reached. ``--fast`` is a
separately labelled recipe (batch 8192, lr 5e-3) that reaches good accuracy in fewer, cheaper
epochs. ``--recipe scaled`` trains with the recipe ``graphkit rec train`` picks for large data
(:func:`graphkit.rec.train.scale_recipe`: the batch is ``2048 * m`` with
``m = ceil(E / (2048 * MAX_STEPS_PER_EPOCH))`` for ``E`` training pairs, the learning rate
``1e-3 * sqrt(m)``), computed on the loaded training split with the data-size threshold removed,
so that its accuracy can be checked on the paper datasets (which are below the threshold and
train with the paper recipe by default); its entry is named ``-scaled``.
``--negative-candidates M`` (dynamic negative sampling: each triple trains on the hardest of
``M`` uniform candidates) is recorded as a separate entry named after it (``-neg64``); with
``M = 64`` Gowalla reaches Recall@20 0.18 in 20 epochs instead of several hundred, then
overfits, so keep early stopping on. A run resumes only with the settings it started with
(other settings are refused).

Examples:

    python examples/lightgcn.py --dataset ML-1M --select test --time-budget 3600
    python examples/lightgcn.py --dataset Gowalla --negative-candidates 64 --eval-every 5
    python examples/lightgcn.py --dataset MovieLens-100K --select valid
    python examples/lightgcn.py --dataset ML-1M --recipe scaled --select valid --time-budget 3000

Under ``torchrun --nproc_per_node=N`` the ranks share every global batch
(``graphkit.rec.train.fit``); rank 0 alone writes checkpoints, logs and the record.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Tuple

from graphkit.engine.args import apply_threads, changed_settings, entry_id, example_parser

PAPER = {
    "Gowalla": {"recall@20": 0.1830, "ndcg@20": 0.1554, "source": "LightGCN paper (SIGIR 2020), Table 3"},
    "Yelp2018": {"recall@20": 0.0649, "ndcg@20": 0.0530, "source": "LightGCN paper (SIGIR 2020), Table 3"},
    "ML-1M": {"recall@20": 0.2576, "ndcg@20": 0.2427, "source": "UltraGCN paper (CIKM 2021), Table 3 (LightGCN row)"},
}
# settings whose change from the paper's (the parser's defaults) makes a separately named entry
RECIPE = ("batch_size", "lr", "embedding_dim", "num_layers", "reg_weight", "init_std", "sampler",
          "negative_candidates")
# loader options that give an InteractionGraph where the default is another object
def recommendation_datasets() -> List[str]:
    """The registered datasets whose task is recommendation."""
    from graphkit.datasets import list_datasets

    return list_datasets("recommendation")


def load_interactions(name: str, root: Optional[str]):
    """``graphkit.datasets.load_interactions``: the dataset as an InteractionGraph."""
    from graphkit.datasets import load_interactions as load

    return load(name, root=root)


def entry_for(dataset: str, *, fast: bool, changed: dict, select: str, recipe: str = "paper") -> str:
    """The record's entry id: ``lightgcn-gowalla`` for the paper's recipe, ``-fast`` for the fast
    recipe, ``-scaled`` for the data-size-scaled recipe, the settings changed from the paper's by
    name (``lightgcn-gowalla-neg64``), and ``-valid`` when the epoch is selected on validation
    (the paper selected on test)."""
    from graphkit.engine import variant_tag

    words = ("fast" if fast else "", "scaled" if recipe == "scaled" else "", variant_tag(changed))
    variant = "-".join(w for w in words if w)
    return entry_id("lightgcn", dataset, variant=variant, select=select, paper_select="test")


def scaled_recipe(graph, embedding_dim: int = 64):
    """The recipe of :func:`graphkit.rec.train.scale_recipe` for ``graph``'s training pairs, with
    the data-size threshold removed (``paper_recipe_max_pairs=0``): what ``graphkit rec train``
    would use on data above the threshold, forced on this one."""
    from graphkit.rec.train import scale_recipe

    return scale_recipe(int(graph.num_train), int(graph.num_users), int(graph.num_items),
                        embedding_dim=embedding_dim, paper_recipe_max_pairs=0)


def build_parser():
    p = example_parser(__doc__.split("\n\n")[0], dataset="ML-1M", seed=2020, epochs=1000,
                       select="test", epilog="recommendation datasets: "
                       + ", ".join(recommendation_datasets()))
    g = p.add_argument_group("LightGCN flags (defaults: the paper's)")
    g.add_argument("--valid-ratio", type=float, default=0.1,
                   help="share of each user's training items held out with --select valid")
    g.add_argument("--batch-size", type=int, default=2048)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--embedding-dim", type=int, default=64)
    g.add_argument("--num-layers", type=int, default=3)
    g.add_argument("--reg-weight", type=float, default=1e-4)
    g.add_argument("--init-std", type=float, default=0.1, help="std of the normal initialisation (paper: 0.1)")
    g.add_argument("--sampler", choices=("user", "epoch"), default="user",
                   help="'user': users drawn uniformly, then a positive (reference); 'epoch': one shuffled "
                        "pass over the training pairs")
    g.add_argument("--negative-candidates", type=int, default=1,
                   help="train on the hardest of this many uniform negatives (dynamic negative "
                        "sampling; paper: 1, plain BPR)")
    g.add_argument("--eval-every", type=int, default=10)
    g.add_argument("--patience", type=int, default=10, help="evaluations without improvement (default 10)")
    g.add_argument("--fast", action="store_true", help="batch 8192, lr 5e-3 (a separate, labelled entry)")
    g.add_argument("--recipe", choices=("paper", "scaled"), default="paper",
                   help="'paper': --batch-size and --lr as given (defaults: the paper's); 'scaled': batch "
                        "and lr from graphkit.rec.train.scale_recipe on the training split with the "
                        "data-size threshold removed (what `graphkit rec train` uses on large data; a "
                        "separate, labelled entry)")
    return p


def parse_args(argv=None) -> Tuple[object, Dict[str, object], Dict[str, object]]:
    """The arguments, the recipe settings changed from the paper's, and the paper's settings."""
    from graphkit.datasets import DatasetNotFoundError, canonical_name

    p = build_parser()
    args = p.parse_args(argv)
    try:
        args.dataset = canonical_name(args.dataset)
    except DatasetNotFoundError as exc:
        p.error(str(exc))
    if args.dataset not in recommendation_datasets():
        p.error(f"{args.dataset} is not a recommendation dataset; choose from "
                + ", ".join(recommendation_datasets()))
    paper_settings = {k: p.get_default(k) for k in RECIPE}
    changed = changed_settings(args, paper_settings, RECIPE)
    if args.fast:
        if "batch_size" in changed or "lr" in changed:
            p.error("--fast sets --batch-size 8192 and --lr 5e-3; do not pass either with it")
        args.batch_size, args.lr = 8192, 5e-3
    if args.recipe == "scaled":
        if args.fast:
            p.error("--recipe scaled and --fast are two different recipes; choose one")
        if "batch_size" in changed or "lr" in changed:
            p.error("--recipe scaled sets --batch-size and --lr from the data size "
                    "(graphkit.rec.train.scale_recipe); do not pass either with it")
    return args, changed, paper_settings


def show(rec: dict) -> None:
    from graphkit.engine.distributed import is_main_process

    if not is_main_process():
        return
    keys = [k for k in rec if k.endswith("recall@20") or k.endswith("ndcg@20")]
    print(f"  epoch {rec['epoch'] + 1:4d}  loss {rec['loss']:.4f}  " +
          "  ".join(f"{k} {rec[k]:.4f}" for k in keys) + f"  best@{rec['best_epoch'] + 1}", flush=True)


def train_one(args, run: int, entry: str, device) -> dict:
    """Train one seed; returns its ``per_run`` summary (test figures, epochs, trajectory)."""
    from graphkit.engine import seed_everything
    from graphkit.engine.distributed import print0
    from graphkit.nn.models import LightGCN
    from graphkit.rec.split import holdout_validation
    from graphkit.rec.train import fit

    seed = args.seed + run
    graph = load_interactions(args.dataset, args.root)
    if args.select == "valid":
        graph = holdout_validation(graph, args.valid_ratio, seed=seed)
    print0(f"run {run}: {graph}", flush=True)
    recipe = None
    if args.recipe == "scaled":
        recipe = scaled_recipe(graph, args.embedding_dim)
        args.batch_size, args.lr = recipe.batch_size, recipe.lr
        print0(f"run {run}: {recipe.describe()}", flush=True)
    seed_everything(seed)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=args.embedding_dim,
                     num_layers=args.num_layers, reg_weight=args.reg_weight,
                     init_std=args.init_std).to(device)
    ckpt = args.checkpoint_dir or os.path.join("runs", entry, f"seed{seed}")
    if args.checkpoint_dir and args.runs > 1:
        ckpt = os.path.join(args.checkpoint_dir, f"seed{seed}")
    res = fit(model, graph, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, sampler=args.sampler,
              negative_candidates=args.negative_candidates,
              eval_every=args.eval_every, patience=args.patience, ks=(20,), monitor="recall@20",
              select_on=args.select, checkpoint_dir=ckpt, resume=args.resume, seed=seed,
              log_path=os.path.join(ckpt, "history.jsonl"), time_budget_s=args.time_budget, on_eval=show)
    print0(f"run {run}: best epoch {res.best_epoch + 1}, epochs run {res.epochs_run}, "
          f"test recall@20 {res.test['recall@20']:.4f} ndcg@20 {res.test['ndcg@20']:.4f}, "
          f"{res.wall_time_s:.0f} s in total (incl. earlier sittings)", flush=True)
    summary = {"seed": seed, "best_epoch": res.best_epoch + 1, "epochs_run": res.epochs_run,
               "stopped_early": res.stopped_early, "interrupted": res.interrupted,
               "wall_time_s": round(res.wall_time_s, 1),
               "test": {k: v for k, v in res.test.items() if "@" in k},
               # every evaluation: [epoch, wall time so far (s), recall@20, ndcg@20] on
               # the selection part (test or validation, as the protocol says)
               "trajectory": [[h["epoch"] + 1, h.get("elapsed_s"), round(h[f"{args.select}_recall@20"], 4),
                               round(h[f"{args.select}_ndcg@20"], 4)] for h in res.history]}
    if recipe is not None:
        summary["recipe"] = {"name": recipe.name, "num_train": int(graph.num_train), "batch_size": recipe.batch_size,
                             "lr": recipe.lr, "scale": recipe.scale, "steps_per_epoch": recipe.steps_per_epoch}
    return summary


def deviations_for(args, changed: dict, paper_settings: dict, per_run: List[dict]) -> List[str]:
    from graphkit.rec.train import MAX_STEPS_PER_EPOCH

    deviations = list(args.deviation)
    finished = all(r["stopped_early"] or r["epochs_run"] >= args.epochs for r in per_run)
    if not finished:
        cause = "an interrupt" if any(r.get("interrupted") for r in per_run) else "the time budget"
        deviations.append(f"training stopped by {cause} before early stopping or the epoch cap: "
                          + ", ".join(f"seed {r['seed']}: {r['epochs_run']} epochs, {r['wall_time_s']:.0f} s"
                                      for r in per_run))
    if args.select == "test":
        deviations.append("best epoch chosen on the test set, as in the reference code (not a clean protocol)")
    else:
        deviations.append(f"{args.valid_ratio:.0%} of each user's training items held out for validation "
                          "(trains on less data than the paper)")
    if args.fast:
        deviations.append("faster recipe: batch 8192, lr 5e-3 instead of 2048 / 1e-3")
    for r in sorted({tuple(sorted(r["recipe"].items())) for r in per_run if "recipe" in r}):
        r = dict(r)
        paper_steps = -(-r["num_train"] // paper_settings["batch_size"])
        deviations.append(
            f"scaled recipe (graphkit.rec.train.scale_recipe, data-size threshold removed): {r['num_train']} "
            f"training pairs, batch {r['batch_size']} = {r['scale']} x {paper_settings['batch_size']} and "
            f"lr {r['lr']:.4g} = {paper_settings['lr']:g} x sqrt({r['scale']}), {r['steps_per_epoch']} steps "
            f"per epoch instead of {paper_steps}; the recipe `graphkit rec train` uses above its data-size "
            f"threshold (epochs of at most {MAX_STEPS_PER_EPOCH} steps), forced on this dataset to check "
            f"its accuracy against the paper recipe")
    if changed:
        deviations.append("settings changed from the paper's: " + ", ".join(
            f"{k} {v} instead of {paper_settings[k]}" for k, v in changed.items()))
    if args.dataset not in PAPER:
        deviations.append(f"no published LightGCN figure on {args.dataset}; the paper's settings are used")
    elif args.runs < 5:
        deviations.append(f"{args.runs} run(s) (seed {args.seed}); the paper reports a single run")
    return deviations


def write_record(args, entry: str, changed: dict, paper_settings: dict, per_run: List[dict]):
    from graphkit.engine import write_result_record

    paper = PAPER.get(args.dataset)
    tol = 0.03  # relative, where the protocol matches
    metrics = {k: {"paper": paper[k] if paper else None, "paper_source": paper["source"] if paper else "",
                   "tolerance": round(tol * paper[k], 5) if paper else None,
                   "values": [r["test"][k] for r in per_run]} for k in ("recall@20", "ndcg@20")}
    protocol = (f"{args.dataset} split of the reference code, all-item ranking, top-20, training items masked; "
                f"{args.num_layers} layers, dim {args.embedding_dim}, batch {args.batch_size}, lr {args.lr:g}, "
                f"eval every {args.eval_every} epochs, patience {args.patience} evaluations; selection on "
                f"{'test (reference protocol)' if args.select == 'test' else 'validation'}")
    return write_result_record(entry=entry, method="LightGCN", dataset=args.dataset, task="recommendation",
                               primary_metric="recall@20", metrics=metrics, runs=len(per_run), protocol=protocol,
                               deviations=deviations_for(args, changed, paper_settings, per_run),
                               # training time of every run, earlier sittings included (this call
                               # alone may only have resumed and evaluated)
                               wall_time_s=sum(r["wall_time_s"] for r in per_run), out_dir=args.out,
                               extra={"per_run": per_run, "hyper_parameters": vars(args)})


def main(argv=None) -> int:
    args, changed, paper_settings = parse_args(argv)
    from graphkit.engine import keep_freed_memory
    from graphkit.engine.distributed import cleanup_distributed, is_main_process, setup_device

    keep_freed_memory()  # reuse freed memory instead of page-faulting it in anew
    apply_threads(args)
    entry = entry_for(args.dataset, fast=args.fast, changed=changed, select=args.select, recipe=args.recipe)
    # under torchrun: DDP inside graphkit.rec.train.fit; rank 0 writes checkpoints and the record
    device = setup_device(args.device)
    per_run = []
    for run in range(args.runs):
        per_run.append(train_one(args, run, entry, device))
        if per_run[-1]["interrupted"]:  # checkpointed; rerun the same command to continue
            if is_main_process():
                print(f"run {run}: interrupted; the record covers the runs so far", flush=True)
            break
    if args.record and is_main_process():
        print(f"wrote {write_record(args, entry, changed, paper_settings, per_run)}")
    cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
