"""``graphkit demo``: LightGCN on MovieLens-100K in a few minutes on a laptop CPU.

Trains on the canonical ``u1.base`` split (10% of each user's training ratings held out for
early stopping), evaluates on ``u1.test`` with all-item ranking (training items masked), and
prints Recall@20 / NDCG@20 and five recommendations for one user, with movie titles.
"""
from __future__ import annotations

import pathlib
import sys
import time


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train LightGCN on MovieLens-100K and show recommendations",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="dataset root (default: $GRAPHKIT_DATA, then the cache)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--user", type=int, default=1, help="MovieLens user id to recommend for (default 1)")
    p.add_argument("--out", default="runs/demo-lightgcn-ml100k", help="model directory to write")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_demo)


def load_movielens100k_u1(root=None):
    """The MovieLens-100K ``u1.base`` / ``u1.test`` split as an InteractionGraph (all ratings are
    implicit positives), plus ``{movie id: title}``."""
    import pandas as pd

    from graphkit.datasets import get_path
    from graphkit.rec.data import from_dataframe

    raw = pathlib.Path(get_path("MovieLens-100K", root=root))
    cols = ["user", "item", "rating", "ts"]
    train_df = pd.read_csv(raw / "u1.base", sep="\t", names=cols)
    test_df = pd.read_csv(raw / "u1.test", sep="\t", names=cols)
    graph = from_dataframe(train_df, "user", "item", name="MovieLens-100K (u1)", source=str(raw / "u1.base"))
    test = from_dataframe(test_df, "user", "item", source=str(raw / "u1.test"),
                          user_ids=graph.user_ids, item_ids=graph.item_ids)
    graph.test = test.train
    titles = {}
    item_file = raw / "u.item"
    if item_file.exists():
        items = pd.read_csv(item_file, sep="|", header=None, encoding="latin-1", usecols=[0, 1])
        titles = dict(zip(items[0].tolist(), items[1].tolist()))
    return graph, titles


def run_demo(args) -> int:
    import torch

    from graphkit.engine import seed_everything
    from graphkit.nn.models import LightGCN
    from graphkit.rec.io import save_model_dir
    from graphkit.rec.split import holdout_validation
    from graphkit.rec.train import fit

    t0 = time.time()
    try:
        graph, titles = load_movielens100k_u1(args.root)
    except FileNotFoundError as exc:
        print(f"graphkit demo: {exc}", file=sys.stderr)
        return 2
    graph = holdout_validation(graph, 0.1, seed=args.seed)
    print(f"MovieLens-100K u1 split: {graph.num_users} users, {graph.num_items} items, "
          f"{graph.num_train} train / {graph.valid.size(1)} valid / {graph.test.size(1)} test interactions")
    seed_everything(args.seed)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=64, num_layers=3)
    print(f"{model}: 3-layer LightGCN, BPR, Adam lr 0.01, batch 4096, early stopping on valid Recall@20")

    def report(rec):
        print(f"  epoch {rec['epoch'] + 1:3d}  loss {rec['loss']:.4f}  valid Recall@20 "
              f"{rec['valid_recall@20']:.4f}  ({time.time() - t0:.0f} s)", flush=True)

    result = fit(model, graph, epochs=args.epochs, batch_size=4096, lr=0.01, eval_every=5, patience=3,
                 seed=args.seed, progress=False, on_eval=report)
    test = result.test
    print(f"best epoch {result.best_epoch + 1} of {result.epochs_run} (selected on validation)")
    print(f"test (u1.test, all-item ranking, training items masked): "
          f"Recall@20 = {test['recall@20']:.4f}   NDCG@20 = {test['ndcg@20']:.4f}   "
          f"({test['num_users']} users)")
    save_model_dir(args.out, model, graph, info={"demo": True, "test_metrics": test,
                                                 "best_epoch": result.best_epoch})
    raw_user = args.user
    matches = (graph.user_ids == raw_user).nonzero()[0]
    if matches.size:
        u = int(matches[0])
        top = model.recommend(torch.tensor([u]), k=5)[0].tolist()
        seen = int((graph.train[0] == u).sum())
        print(f"top-5 for user {raw_user} (who rated {seen} movies in training):")
        for rank, i in enumerate(top, 1):
            movie = graph.item_ids[i]
            print(f"  {rank}. {titles.get(int(movie), f'movie {movie}')}")
    print(f"model saved to {args.out}; try: graphkit rec recommend --model-dir {args.out} --users 1 2 --k 10")
    print(f"done in {time.time() - t0:.0f} s")
    return 0
