"""GF-CF and BSPM-EM on Gowalla: graphkit's sparse block filters against a straightforward dense
implementation, fit + full-ranking evaluation, time and peak memory.

* **graphkit** — :class:`graphkit.nn.models.GFCF` (alpha 0.3, k = 256) and
  :class:`graphkit.nn.models.BSPM` (BSPM-EM, the paper's Gowalla setting, k = 448) with
  ``item_item="sparse"``: the item–item matrix ``P = R~^T R~`` is never formed; every application
  of ``P`` is two sparse products per cache-sized panel of users, the ideal low-pass term one
  dense product per block of up to 1024 users; every test user is ranked.
* **dense** — ``P`` materialised as a dense ``[I, I]`` float32 matrix (6.7 GB on Gowalla's
  40,981 items), the singular vectors by :func:`scipy.sparse.linalg.svds`, and the same formulas
  with dense GEMMs (``R_block @ P``; BSPM: blur, ideal term, one RK4 sharpening step = 5
  applications of ``P``). Scoring every user this way costs ``I^2 = 1.7e9`` multiply-adds per
  user and application (4e14 for BSPM), so it scores a sample of test users (``--dense-users``,
  the first ones by id) and its evaluation time is extrapolated linearly to all users (stated).

Each implementation runs in its own process; its peak memory is the process's maximum resident
set size (``ru_maxrss``) minus its size after loading the data. On a shared machine, run it
with ``--threads 1``.

    python benchmarks/bench_graph_filters.py --threads 1
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _report import add_output_args, command, environment, goal, publish, threads_label  # noqa: E402

SECTION = "graph-filters"
BSPM_SETTING = dict(merge="early", beta=0.2, rank=448, blur_time=1.0, sharpen_time=2.5, sharpen_solver="rk4")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(args):
    from graphkit.datasets import load

    return load(args.dataset, root=args.root)


def _evaluate(score, graph, users=None):
    from graphkit.rec.evaluate import full_ranking

    return full_ranking(score, graph.num_users, graph.num_items, graph.test, exclude=[graph.train], ks=(20,),
                        metrics=("recall", "ndcg"), batch_size=2048, users=users)


def run_ours(args, model_name, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from graphkit.nn.models.bspm import BSPM
    from graphkit.nn.models.gf_cf import GFCF

    graph = _load(args)
    base = _rss_mb()
    t0 = time.perf_counter()
    if model_name == "gfcf":
        model = GFCF(graph.num_users, graph.num_items, alpha=0.3, rank=256, item_item="sparse")
    else:
        model = BSPM(graph.num_users, graph.num_items, item_item="sparse", **BSPM_SETTING)
    model.fit(graph)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = _evaluate(model.scorer(), graph)
    ev = time.perf_counter() - t0
    sample = torch.unique(graph.test[0])[: args.dense_users if model_name == "gfcf" else args.dense_users_bspm]
    same = _evaluate(model.scorer(), graph, sample)
    queue.put({"fit": fit, "eval": ev, "users": res["num_users"], "mem": _rss_mb() - base,
               "recall": res["recall@20"], "ndcg": res["ndcg@20"], "sample_recall": same["recall@20"],
               "stats": (int(model.train_edge_index.size(1)), graph.num_users, graph.num_items)})


def run_dense(args, queue) -> None:
    import numpy as np
    import scipy.sparse as sp
    import torch
    from scipy.sparse.linalg import svds

    torch.set_num_threads(args.threads)
    graph = _load(args)
    base = _rss_mb()
    t0 = time.perf_counter()
    u, i = graph.train.numpy()
    r = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(graph.num_users, graph.num_items))
    r.sum_duplicates()
    r.data[:] = 1.0
    du, di = np.asarray(r.sum(1)).ravel(), np.asarray(r.sum(0)).ravel()
    du_isqrt = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1)), 0).astype(np.float32)
    di_isqrt = np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1)), 0).astype(np.float32)
    rn = (sp.diags(du_isqrt) @ r @ sp.diags(di_isqrt)).tocsr().astype(np.float32)
    p = torch.from_numpy((rn.T @ rn).toarray())  # the dense item-item matrix
    build = time.perf_counter() - t0
    v0 = np.full(min(rn.shape), 1 / np.sqrt(min(rn.shape)), dtype=np.float32)
    sides = {}
    svd_time = {}
    for k in (256, 448):
        t0 = time.perf_counter()
        _, s, vt = svds(rn, k=k, tol=1e-6, v0=v0, return_singular_vectors="vh")
        vt = vt[np.argsort(-s, kind="stable")]
        sides[k] = (torch.from_numpy(np.ascontiguousarray(di_isqrt[:, None] * vt.T)),
                    torch.from_numpy(np.ascontiguousarray((vt * np.sqrt(di)[None, :]).astype(np.float32))))
        svd_time[k] = time.perf_counter() - t0

    def rows(users):
        return torch.from_numpy(r[users.numpy()].toarray())

    def gfcf(users):
        x = rows(users)
        left, right = sides[256]
        return x @ p + 0.3 * (x @ left) @ right

    def bspm(users):
        x = rows(users)
        left, right = sides[448]
        s = x @ p + 0.2 * (x @ left) @ right  # blur (1 Euler step, T = 1) + early-merged ideal term
        h = 2.5  # one RK4 step of ds/dt = -s P: s (I - hP + (hP)^2/2 - (hP)^3/6 + (hP)^4/24)
        term, out = s, s.clone()
        for n in range(1, 5):
            term = (term @ p) * (-h / n)
            out += term
        return out

    out = {"build": build, "mem": 0.0}
    for name, fn, count, k in (("gfcf", gfcf, args.dense_users, 256), ("bspm", bspm, args.dense_users_bspm, 448)):
        sample = torch.unique(graph.test[0])[:count]
        t0 = time.perf_counter()
        res = _evaluate(fn, graph, sample)
        out[name] = {"fit": build + svd_time[k], "eval": time.perf_counter() - t0, "users": res["num_users"],
                     "recall": res["recall@20"]}
    out["mem"] = _rss_mb() - base
    queue.put(out)


def _in_process(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=fn, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default=None, help="dataset folder (default: $GRAPHKIT_DATA)")
    p.add_argument("--dataset", default="Gowalla", help="interaction dataset (a smaller one for a quick check)")
    p.add_argument("--dense-users", type=int, default=256,
                   help="test users the dense GF-CF scores (its time is extrapolated to all)")
    p.add_argument("--dense-users-bspm", type=int, default=64,
                   help="test users the dense BSPM-EM scores (its time is extrapolated to all)")
    add_output_args(p)
    args = p.parse_args(argv)
    ours = {name: _in_process(run_ours, args, name) for name in ("gfcf", "bspm")}
    dense = _in_process(run_dense, args)
    nnz, users, items = ours["gfcf"]["stats"]
    rows = []
    ratios = []
    for name, label, rank, apps in (("gfcf", "GF-CF", 256, 1), ("bspm", "BSPM-EM", 448, 5)):
        o, d = ours[name], dense[name]
        o_total = o["fit"] + o["eval"]
        d_eval = d["eval"] * o["users"] / max(d["users"], 1)
        d_total = d["fit"] + d_eval
        ratios.append(f"{label} {d_total / o_total:.0f}x")
        rows.append(f"| {label} | graphkit (sparse panels) | {o['fit']:.1f} | {o['eval']:.1f} ({o['users']} users) | "
                    f"{o_total:.1f} ({goal(o_total <= 60)} <= 60 s) | {o['mem']:.0f} | {o['recall']:.4f} "
                    f"(sample: {o['sample_recall']:.4f}) |")
        rows.append(f"| {label} | dense item-item + scipy svds | {d['fit']:.1f} | {d_eval:.0f} (extrapolated from "
                    f"{d['users']} users: {d['eval']:.1f} s) | {d_total:.0f} | {dense['mem']:.0f} (one process for "
                    f"both) | sample: {d['recall']:.4f} |")
    sparse_apps = 2 * nnz * users
    body = "\n".join([
        f"## Graph filters: GF-CF and BSPM-EM on {args.dataset} (fit + full-ranking evaluation)",
        "",
        f"`{command(__file__, argv)}` — {environment(threads_label(args.threads), args.note)}",
        "",
        "| model | implementation | fit (s) | evaluation (s) | total (s) | peak extra memory (MB) | Recall@20 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Ratio dense / graphkit (total time): {', '.join(ratios)}. The dense rows' Recall@20 is on their "
        "sample of test users (the first by id); graphkit's figure on the same sample is beside its own. "
        f"The dense process builds `P` once ({dense['build']:.1f} s, counted in both fits) and holds it "
        f"({items}^2 floats = {items ** 2 * 4 / 2 ** 30:.1f} GiB).",
        "",
        "**How the cost grows.** With `U` users, `I` items, `E = nnz(R)` interactions, `k` singular "
        "vectors and `A` applications of `P` (GF-CF 1, BSPM-EM 5, the polynomial filter its degree):",
        "",
        f"* graphkit, sparse: `2 E` multiply-adds per user and application (all users: `2 E U`, "
        f"{sparse_apps:.2e} on {args.dataset}; the first application acts on the sparse rows and costs a "
        "fraction of that), plus `I k` per user for the ideal term "
        f"({items * 448 * users:.2e} on {args.dataset} at k = 448, the largest single cost of BSPM-EM here), plus "
        "the SVD. Time grows with interactions x users; memory with `I` (a few score rows per user of a "
        "panel, `[I, k]` singular vectors, the `[I, 1024]` ideal block) and the interactions, never `I^2`.",
        f"* dense: `I^2` memory ({items ** 2 * 4 / 2 ** 30:.1f} GiB here; 37 GiB at 100k items) and `I^2` "
        f"multiply-adds per user and application ({items ** 2 * users:.2e} per application on {args.dataset}, "
        f"{items ** 2 / (2 * nnz):.0f}x the sparse form).",
        "",
        "**When the items are too many for the dense form**, keep `item_item=\"sparse\"` (what `\"auto\"` picks "
        "unless `P` fits a quarter of `memory_budget_mb` and `I^2 <= 8 E`), lower `memory_budget_mb` if the "
        "working memory is the limit (it only changes the blocking), keep `svd=\"arpack\"` (`\"dense\"` needs "
        "`~24 I^2` bytes) or lower `rank`, or use `PolyFilter`, which needs no SVD at all.",
    ])
    publish(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
