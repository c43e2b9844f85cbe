"""LightGCN speed on Gowalla: one training batch and one full-ranking pass, ours vs PyG, in one run.

Setting (issue #3): Gowalla (29,858 users x 40,981 items, 810,128 training pairs), 3 layers,
dim 64, BPR batch 2048; every implementation sees the same batches; medians over ``--rounds``
interleaved rounds (A B C A B C ...), so load on the machine affects all alike.

Training step = propagation + BPR loss + L2 + backward + Adam step. Every implementation uses
the same optimiser, ``graphkit.engine.adam`` (PyTorch's fused Adam), so the ratios compare the
propagation and its backward.

* ``graphkit``: cached CSR adjacency, sparse products, backward reuses the symmetric matrix;
* ``torch.sparse autograd``: the same CSR product through PyTorch's generic sparse backward;
* ``PyG LightGCN (edge_index)``: ``torch_geometric.nn.models.LightGCN`` on a COO ``edge_index``;
* ``PyG LightGCN (torch.sparse)``: the same model on a ``torch.sparse`` CSR ``adj_t``.

Full ranking (29,858 test users, training items masked, top-20):

* ``graphkit full_ranking``: propagate once, 2048-user blocks scored into one reused buffer
  (``DotProductScorer``), masking by index, one top-k;
* ``dense-mask blocks``: propagate once, 2048-user blocks, mask via a dense boolean block built
  from a SciPy CSR row slice (the common block-dense approach);
* ``re-propagate per 100 users`` (the reference code's evaluation loop) is *estimated* as
  ceil(users / 100) x the measured propagation time plus the dense-mask scoring time.

The process calls ``graphkit.engine.keep_freed_memory()`` first, as ``graphkit rec train`` does,
so every implementation runs with the same allocator settings (freed memory reused rather than
page-faulted in anew).

Writes its section of ``leaderboards/speed.md`` (``--write-speed-md PATH`` to write elsewhere,
``--no-write`` to print only).

Usage: ``python benchmarks/bench_lightgcn.py [--rounds 20] [--threads 2] [--no-write]``
"""
from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time

import _report
import numpy as np
import torch

SECTION = "bench_lightgcn"
OURS = "graphkit (cached CSR, batch rows, symmetric backward)"
FULL_RANKING = "graphkit full_ranking (recall+ndcg)"
DENSE_MASK = "dense-mask 2048-user blocks (top-20 only)"
GOAL_STEP_S, GOAL_VS_EDGE_INDEX, GOAL_VS_SPARSE = 0.12, 20.0, 3.0
GOAL_RANKING_S, GOAL_MEMORY_GB = 4.0, 2.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="Gowalla")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--eval-rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--ours-only-memory", action="store_true",
                   help="internal: train a few graphkit steps and rank once, print the peak RSS")
    _report.add_output_args(p)
    return p.parse_args(argv)


def step_functions(g, adj) -> tuple:
    """graphkit's model and one training step per implementation (own model and optimiser)."""
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    from graphkit.engine import adam
    from graphkit.nn.models import LightGCN

    U, I = g.num_users, g.num_items
    torch.manual_seed(0)
    ours = LightGCN(U, I, 64, 3).set_graph(g.train)
    plain = LightGCN(U, I, 64, 3).set_graph(g.train)
    homo = torch.cat([torch.stack([g.train[0], g.train[1] + U]), torch.stack([g.train[1] + U, g.train[0]])], 1)
    pyg = PyGLightGCN(U + I, 64, 3)
    adj_t = adj  # symmetric: adj_t == adj

    def step_ours(b, model=ours, opt=adam(ours.parameters(), lr=1e-3)):
        opt.zero_grad()
        model.loss(*b).backward()
        opt.step()

    plain_opt = adam(plain.parameters(), lr=1e-3)

    def step_plain(b):
        plain_opt.zero_grad()
        x = plain.embedding.weight
        out = x
        for _ in range(3):
            x = torch.sparse.mm(adj, x)
            out = out + x
        out = out / 4
        u, p_, n = out[b[0]], out[U + b[1]], out[U + b[2]]
        loss = torch.nn.functional.softplus((u * n).sum(-1) - (u * p_).sum(-1)).mean()
        w = plain.embedding.weight
        loss = loss + 1e-4 * (w[b[0]].pow(2).sum() + w[U + b[1]].pow(2).sum() + w[U + b[2]].pow(2).sum()) / 4096
        loss.backward()
        plain_opt.step()

    pyg_opt = adam(pyg.parameters(), lr=1e-3)

    def step_pyg(b, graph):
        pyg_opt.zero_grad()
        emb = pyg.get_embedding(graph)
        u, p_, n = emb[b[0]], emb[U + b[1]], emb[U + b[2]]
        pos, neg = (u * p_).sum(-1), (u * n).sum(-1)
        loss = pyg.recommendation_loss(pos, neg, node_id=torch.cat([b[0], U + b[1], U + b[2]]).unique(),
                                       lambda_reg=1e-4)
        loss.backward()
        pyg_opt.step()

    return ours, {
        OURS: step_ours,
        "torch.sparse autograd (same CSR)": step_plain,
        "PyG LightGCN on edge_index": lambda b: step_pyg(b, homo),
        "PyG LightGCN on torch.sparse adj_t": lambda b: step_pyg(b, adj_t),
    }


def time_steps(impls: dict, batches: list, rounds: int):
    """Median wall and CPU seconds per step, interleaved rounds on the same batches."""
    times = {k: [] for k in impls}
    cpu = {k: [] for k in impls}
    for fn in impls.values():  # warm-up
        fn(batches[0])
    for r in range(rounds):
        for name, fn in impls.items():
            t, c = time.perf_counter(), time.process_time()
            fn(batches[r])
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{v[-1]:.3f}" for v in times.values()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return med, med_cpu


def time_ranking(g, ours, eval_rounds: int) -> dict:
    """Full ranking of all test users: graphkit, block-dense masking, and one propagation."""
    import scipy.sparse as sp

    from graphkit.rec.evaluate import DotProductScorer, full_ranking

    U, I = g.num_users, g.num_items
    ours.eval()
    train_csr = sp.csr_matrix((np.ones(g.num_train, dtype=bool), (g.train[0].numpy(), g.train[1].numpy())),
                              shape=(U, I))
    test_users = torch.unique(g.test[0])

    def eval_ours():
        with torch.no_grad():
            emb = ours.embeddings()
            return full_ranking(DotProductScorer(*emb), U, I, g.test, exclude=(g.train,), ks=(20,),
                                metrics=("recall", "ndcg"))

    def eval_dense_mask():
        with torch.no_grad():
            emb = ours.embeddings()
            tops = []
            for s in range(0, test_users.numel(), 2048):
                users = test_users[s:s + 2048]
                scores = emb[0][users] @ emb[1].t()
                mask = torch.from_numpy(train_csr[users.numpy()].toarray())
                scores[mask] = -float("inf")
                tops.append(torch.topk(scores, 20).indices)
            return torch.cat(tops)

    def propagate_once():
        with torch.no_grad():
            ours.embeddings()

    ev = {FULL_RANKING: [], DENSE_MASK: [], "one propagation": []}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ev_cpu = {k: [] for k in ev}
    for r in range(eval_rounds):
        for name, fn in zip(ev, (eval_ours, eval_dense_mask, propagate_once)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            ev[name].append(time.perf_counter() - t)
            ev_cpu[name].append(time.process_time() - c)
        print(f"eval round {r + 1}: " + ", ".join(f"{v[-1]:.2f}" for v in ev.values()), flush=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    evm = {k: statistics.median(v) for k, v in ev.items()}
    evm_cpu = {k: statistics.median(v) for k, v in ev_cpu.items()}
    ref_est = math.ceil(test_users.numel() / 100) * evm["one propagation"] + evm[DENSE_MASK]
    return {"wall": evm, "cpu": evm_cpu, "ref_est": ref_est, "peak_gb": peak_gb,
            "rss0_gb": rss0 / 1024 ** 2}


def ours_alone_memory(dataset: str, threads) -> dict:
    """Peak RSS of graphkit alone, measured in a fresh process (``--ours-only-memory``)."""
    import subprocess

    mem = subprocess.run([sys.executable, __file__, "--dataset", dataset, "--ours-only-memory"]
                         + (["--threads", str(threads)] if threads else []),
                         capture_output=True, text=True, check=True).stdout.split("PEAK_RSS_GB")[-1].split()
    return {"train_gb": float(mem[0].split("=")[1]), "total_gb": float(mem[1].split("=")[1])}


def format_section(m: dict, cmd: str, env: str) -> str:
    """The markdown of this benchmark's section of ``leaderboards/speed.md``; ``m`` holds the
    measurements (step medians, ranking medians, memory, adjacency build time)."""
    med, med_cpu, rank, mem = m["step_wall"], m["step_cpu"], m["ranking"], m["memory"]
    base, base_cpu = med[OURS], med_cpu[OURS]
    lines = [
        f"## LightGCN ({m['dataset']}, 3 layers, dim 64, batch 2048)", "",
        "One BPR training step (propagation + loss + L2 + backward + Adam, `graphkit.engine.adam` "
        "for all) and one full-ranking pass over all test users (training items masked, top-20), "
        "graphkit against PyG's `LightGCN` and a plain `torch.sparse` autograd version, on the "
        f"same batches, interleaved; medians of {_report.plural(m['rounds'], 'round')} "
        f"(ranking: {m['eval_rounds']}). CPU s = process time of all threads. graphkit propagates with "
        "weighted `embedding_bag` products over a cached CSR adjacency in a locality (reverse "
        "Cuthill-McKee) order, computes only the rows the batch needs in the last layer, and "
        "reuses the symmetric matrix in the backward.", "",
        "| training step | wall s / batch | CPU s / batch | wall s / epoch (est.) "
        "| ours is faster by (wall / CPU) |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.3f} | {med_cpu[k]:.3f} | {v * m['steps_per_epoch']:.0f} | "
                     f"{v / base:.1f}x / {med_cpu[k] / base_cpu:.1f}x |")
    lines += ["", "| full ranking, all test users | wall s | CPU s | ours is faster by (wall) |",
              "|---|---:|---:|---:|"]
    e_base = rank["wall"][FULL_RANKING]
    for k in (FULL_RANKING, DENSE_MASK):
        lines.append(f"| {k} | {rank['wall'][k]:.2f} | {rank['cpu'][k]:.2f} | "
                     f"{rank['wall'][k] / e_base:.1f}x |")
    lines.append(f"| re-propagate per 100 users (reference loop, estimated) | {rank['ref_est']:.1f} | | "
                 f"{rank['ref_est'] / e_base:.1f}x |")
    lines += ["", f"Memory: graphkit alone in a fresh process (load, five training steps, one "
              f"full-ranking pass) peaks at {mem['total_gb']:.2f} GB ({mem['train_gb']:.2f} GB after "
              f"training); the benchmark process with every implementation, {rank['peak_gb']:.2f} GB. "
              f"Adjacency construction: {m['build_s']:.2f} s.",
              "", f"Command: `{cmd}`", "", f"Environment: {env}", "", "Goals (set for Gowalla):", ""]
    vs_edge = med["PyG LightGCN on edge_index"] / base
    vs_sparse = med["PyG LightGCN on torch.sparse adj_t"] / base
    lines += [
        f"- step <= {GOAL_STEP_S} s: {_report.goal(base <= GOAL_STEP_S)} ({base:.3f} s);",
        f"- >= {GOAL_VS_EDGE_INDEX:.0f}x PyG's `LightGCN` on `edge_index`: "
        f"{_report.goal(vs_edge >= GOAL_VS_EDGE_INDEX)} ({vs_edge:.1f}x);",
        f"- >= {GOAL_VS_SPARSE:.0f}x PyG's `LightGCN` on a sparse adjacency: "
        f"{_report.goal(vs_sparse >= GOAL_VS_SPARSE)} ({vs_sparse:.1f}x);",
        f"- full ranking <= {GOAL_RANKING_S:.0f} s: {_report.goal(e_base <= GOAL_RANKING_S)} "
        f"({e_base:.2f} s);",
        f"- graphkit's peak memory < {GOAL_MEMORY_GB:.0f} GB: "
        f"{_report.goal(mem['total_gb'] < GOAL_MEMORY_GB)} ({mem['total_gb']:.2f} GB).",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from graphkit.engine import keep_freed_memory

    keep_freed_memory()  # reuse freed memory instead of page-faulting it in anew
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ours_only_memory:
        return _ours_only_memory(args.dataset)

    from graphkit.datasets import load
    from graphkit.nn.models.lightgcn import bipartite_normalized_adjacency
    from graphkit.rec.sampling import sample_bpr_triples
    from graphkit.utils.ranking import PairIndex

    g = load(args.dataset)
    t0 = time.perf_counter()
    adj = bipartite_normalized_adjacency(g.train, g.num_users, g.num_items)
    build_s = time.perf_counter() - t0
    print(f"{g}; normalised adjacency built in {build_s:.2f} s")
    index = PairIndex(g.train, g.num_users, g.num_items)  # the same batches for everyone
    gen = torch.Generator().manual_seed(0)
    batches = [sample_bpr_triples(index, 2048, g.num_items, gen) for _ in range(args.rounds)]

    ours, impls = step_functions(g, adj)
    med, med_cpu = time_steps(impls, batches, args.rounds)
    m = dict(dataset=args.dataset, rounds=args.rounds, eval_rounds=args.eval_rounds,
             steps_per_epoch=math.ceil(g.num_train / 2048), build_s=build_s, step_wall=med,
             step_cpu=med_cpu, ranking=time_ranking(g, ours, args.eval_rounds),
             memory=ours_alone_memory(args.dataset, args.threads))
    env = _report.environment(_report.threads_label(torch.get_num_threads()), args.note)
    _report.publish(args, SECTION, format_section(m, _report.command(__file__, argv), env))
    return 0


def _high_water_gb() -> float:
    """This process's peak RSS. ``/proc/self/status`` VmHWM starts afresh at ``exec``;
    ``getrusage``'s ``ru_maxrss`` keeps the parent's peak across fork + exec on Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def _ours_only_memory(dataset: str) -> int:
    """Peak RSS of graphkit alone: load, five training steps, one full-ranking pass."""
    from graphkit.datasets import load
    from graphkit.engine import adam
    from graphkit.nn.models import LightGCN
    from graphkit.rec.evaluate import DotProductScorer, full_ranking
    from graphkit.rec.sampling import sample_bpr_triples
    from graphkit.utils.ranking import PairIndex

    g = load(dataset)
    model = LightGCN(g.num_users, g.num_items, 64, 3).set_graph(g.train)
    opt = adam(model.parameters(), lr=1e-3)
    index, gen = PairIndex(g.train, g.num_users, g.num_items), torch.Generator().manual_seed(0)
    for _ in range(5):
        opt.zero_grad()
        model.loss(*sample_bpr_triples(index, 2048, g.num_items, gen)).backward()
        opt.step()
    train_gb = _high_water_gb()
    with torch.no_grad():
        full_ranking(DotProductScorer(*model.embeddings()), g.num_users, g.num_items, g.test,
                     exclude=(g.train,), ks=(20,), metrics=("recall", "ndcg"))
    peak_gb = _high_water_gb()
    print(f"PEAK_RSS_GB train={train_gb:.2f} total={peak_gb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
