"""GF-CF on Gowalla: graphkit's sparse block filter against a straightforward dense implementation.

Both prepare the filter (ARPACK SVD, k = 256) and score users with the same formula,
``r_u P + alpha r_u D^-1/2 V V^T D^1/2``:

* **graphkit** — :class:`graphkit.nn.models.GFCF` (``item_item="sparse"``): ``P`` never formed,
  two sparse products per block, full-ranking evaluation of every test user;
* **dense** — ``P = R~^T R~`` materialised as a dense ``[I, I]`` float32 matrix (6.7 GB on
  Gowalla) and scores ``R_block @ P`` with dense GEMMs. Scoring all users this way takes
  ~1e14 flops, so it scores ``--dense-users`` users and its evaluation time is extrapolated
  linearly to all users (stated in the table).

Each implementation runs in its own process; peak memory is that process's maximum resident
set size (``ru_maxrss``) minus its size after loading the data. Run with ``--threads 1`` on a
shared machine.

    python benchmarks/bench_graph_filters.py --threads 1
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _report import add_output_args, command, environment, publish, threads_label  # noqa: E402

SECTION = "graph-filters"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(root):
    from graphkit.datasets import load

    return load("Gowalla", root=root)


def run_ours(args, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from graphkit.nn.models import GFCF
    from graphkit.rec.evaluate import full_ranking

    graph = _load(args.root)
    base = _rss_mb()
    t0 = time.perf_counter()
    model = GFCF(graph.num_users, graph.num_items, alpha=0.3, rank=256, item_item="sparse").fit(graph)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = full_ranking(model.scorer(), graph.num_users, graph.num_items, graph.test, exclude=[graph.train],
                       ks=(20,), metrics=("recall", "ndcg"), batch_size=2048)
    ev = time.perf_counter() - t0
    queue.put({"fit": fit, "eval": ev, "users": res["num_users"], "mem": _rss_mb() - base,
               "recall": res["recall@20"]})


def run_dense(args, queue) -> None:
    import numpy as np
    import scipy.sparse as sp
    import torch
    from scipy.sparse.linalg import svds

    torch.set_num_threads(args.threads)
    from graphkit.rec.evaluate import full_ranking

    graph = _load(args.root)
    base = _rss_mb()
    t0 = time.perf_counter()
    u, i = graph.train.numpy()
    r = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(graph.num_users, graph.num_items))
    du, di = np.asarray(r.sum(1)).ravel(), np.asarray(r.sum(0)).ravel()
    du_isqrt = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1)), 0).astype(np.float32)
    di_isqrt = np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1)), 0).astype(np.float32)
    rn = (sp.diags(du_isqrt) @ r @ sp.diags(di_isqrt)).tocsr().astype(np.float32)
    _, _, vt = svds(rn, k=256, v0=np.full(min(rn.shape), 1 / np.sqrt(min(rn.shape)), dtype=np.float32))
    p = torch.from_numpy((rn.T @ rn).toarray())  # the dense item-item matrix
    left = torch.from_numpy(di_isqrt[:, None] * vt.T)
    right = torch.from_numpy((vt * np.sqrt(di)[None, :]).astype(np.float32))
    fit = time.perf_counter() - t0
    r_dense_rows = r

    def score(users):
        block = torch.from_numpy(r_dense_rows[users.numpy()].toarray())
        return block @ p + 0.3 * (block @ left) @ right

    test_users = torch.unique(graph.test[0])[: args.dense_users]
    t0 = time.perf_counter()
    res = full_ranking(score, graph.num_users, graph.num_items, graph.test, exclude=[graph.train], ks=(20,),
                       metrics=("recall", "ndcg"), batch_size=2048, users=test_users)
    ev = time.perf_counter() - t0
    queue.put({"fit": fit, "eval": ev, "users": res["num_users"], "mem": _rss_mb() - base,
               "recall": res["recall@20"]})


def _in_process(fn, args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=fn, args=(args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default=None, help="dataset folder (default: $GRAPHKIT_DATA)")
    p.add_argument("--dense-users", type=int, default=2048,
                   help="test users the dense implementation scores (its time is extrapolated)")
    add_output_args(p)
    args = p.parse_args(argv)
    ours = _in_process(run_ours, args)
    dense = _in_process(run_dense, args)
    dense_eval_all = dense["eval"] * ours["users"] / max(dense["users"], 1)
    ours_total, dense_total = ours["fit"] + ours["eval"], dense["fit"] + dense_eval_all
    body = "\n".join([
        "## Graph filters: GF-CF on Gowalla (fit + full-ranking evaluation)",
        "",
        f"`{command(__file__, argv)}` — {environment(threads_label(args.threads), args.note)}",
        "",
        "| implementation | fit (s) | evaluation (s) | total (s) | peak extra memory (MB) | Recall@20 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| graphkit GFCF (sparse blocks) | {ours['fit']:.1f} | {ours['eval']:.1f} ({ours['users']} users) | "
        f"{ours_total:.1f} | {ours['mem']:.0f} | {ours['recall']:.4f} |",
        f"| dense item-item + scipy svds | {dense['fit']:.1f} | {dense_eval_all:.0f} (extrapolated from "
        f"{dense['users']} users: {dense['eval']:.1f} s) | {dense_total:.0f} | {dense['mem']:.0f} | "
        f"{dense['recall']:.4f} (those users) |",
        "",
        f"Ratio dense / graphkit: time {dense_total / ours_total:.1f}x, memory "
        f"{dense['mem'] / max(ours['mem'], 1):.1f}x.",
    ])
    publish(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
