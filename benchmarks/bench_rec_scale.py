"""Recommenders at 1M-64M interactions on one machine: how build, LightGCN epoch, full-ranking
evaluation, UltraGCN's item-item pre-computation and peak memory grow with the data.

Synthetic implicit feedback (:func:`make_interactions`, seeded): ``users = n / 25``,
``items = n / 40``; user activity and item popularity are Zipf-like with exponent 1. User
``r`` (by rank) has ``min(cap, max(1, c / r))`` interactions, ``c`` chosen so that they sum to
about ``n``, and the degree ``cap`` is 1000 (a heavy user of the paper data sets has a few
thousand); each interaction's item is drawn with probability proportional to ``1 / rank``.
Duplicate pairs are merged. The data is split 80/20 per user (``random_split``, seed 0).

Every phase runs in a fresh process with one thread and reports its wall time and the
process's peak resident memory:

* ``build`` - generate and split, with graphkit's malloc tuning (``keep_freed_memory()``) on
  and off;
* ``epoch`` - LightGCN (3 layers, dim 64) with the recipe ``graphkit rec train`` picks for the
  size (:func:`graphkit.rec.train.scale_recipe`; batch, learning rate and steps are reported, with
  the recipe's memory estimate): ``set_graph``, then ``--steps`` steps timed after one warm-up
  step; the epoch is the mean step times the recipe's steps per epoch;
* ``eval`` - full-ranking top-20 on the test part (training items masked) with the default
  512 MiB score-block budget; a random sample of ``--eval-users`` test users is timed (``0``:
  all), the fixed cost of a call (checks, pair indexes) timed on one user and counted once,
  and the rest extrapolated to every test user; wall and CPU time, the score product's flop
  and rate; memory is the peak beyond the embeddings;
* ``constraint`` - UltraGCN's top-10 item-item neighbours (``item_item_constraint``), in full;
* ``ultragcn-epoch`` - UltraGCN with the defaults of ``graphkit rec train --model ultragcn``
  (dim 64, batch 1024, 200 negatives, 10 neighbours, lr 1e-3, ``sampler="epoch"``, fused
  Adam): ``set_graph``, the sampler's pair index, then ``--steps`` steps of one shuffled pass
  timed after one warm-up step; the epoch is the mean step times ``ceil(E / 1024)`` steps. The
  peaks after ``set_graph`` and after the steps are shown beside
  :func:`graphkit.rec.train.ultragcn_memory_parts` (the estimate ``rec train`` checks against
  ``--max-memory``), in a table of its own.

Growth exponents are the slopes of log(time) against log(interactions) between consecutive
sizes and between the smallest and largest. 64M runs only when ``free -g`` shows at least 16 GB
available at that moment (the machine is shared).

    python benchmarks/bench_rec_scale.py --sizes 1M 4M 16M

Runs can be split (one size or phase at a time, under a time limit): ``--rows FILE`` appends
every measured row to ``FILE`` and renders the table from all the rows there (for each size and
phase the latest), so a later run adds to the table instead of replacing it; rows whose
``source`` field is set (copied from another run) are marked in the table. ``--render`` measures
nothing and only rewrites the table from ``--rows``.

With ``--phases eval`` only the evaluation is measured (after the build it needs), into its own
section (``rec-scale-eval``), with earlier figures beside today's from ``--before`` (JSON lines
of ``n``, ``seconds``, ``source``). ``--threads 1 2`` measures the evaluation once per thread
count (the other phases use the first); the goal is checked on this 2-core machine's best.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report  # noqa: E402

SECTION = "rec-scale"
PHASES = ("build", "build-untuned", "epoch", "eval", "constraint", "ultragcn-epoch")
GOALS = {"epoch": 600.0, "eval": 180.0, "constraint": 60.0}  # seconds at 16M
EVAL_USERS = 20_000
STEPS = 5
DEGREE_CAP = 1000


def make_interactions(n: int, seed: int = 0, degree_cap: int = DEGREE_CAP):
    """``(edge_index [2, E], num_users, num_items)``: the synthetic data described above."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    num_users, num_items = max(1, n // 25), max(1, n // 40)
    ranks = np.arange(1, num_users + 1, dtype=np.float64)

    def degrees(c):
        return np.minimum(degree_cap, np.maximum(1.0, np.floor(c / ranks))).astype(np.int64)

    lo, hi = 1.0, float(n)
    for _ in range(60):  # c such that the degrees sum to n
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if degrees(mid).sum() < n else (lo, mid)
    deg = degrees(hi)
    users = np.repeat(rng.permutation(num_users), deg)
    popularity = 1.0 / np.arange(1, num_items + 1)
    cdf = np.cumsum(popularity / popularity.sum())
    item_of_rank = rng.permutation(num_items)
    items = item_of_rank[np.minimum(np.searchsorted(cdf, rng.random(users.size)), num_items - 1)]
    key = np.unique(users.astype(np.int64) * num_items + items)
    edge_index = torch.from_numpy(np.stack([key // num_items, key % num_items]))
    return edge_index, num_users, num_items


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _build(n: int):
    from graphkit.rec.data import InteractionGraph
    from graphkit.rec.split import random_split

    edge_index, num_users, num_items = make_interactions(n)
    return random_split(InteractionGraph(num_users, num_items, edge_index, name=f"synthetic-{n}"),
                        test_ratio=0.2, seed=0)


def run_phase(phase: str, n: int, cache: str, eval_users_limit: int = EVAL_USERS, steps: int = STEPS,
              threads: int = 1) -> dict:
    """One phase in this process; returns its measurements."""
    import torch

    torch.set_num_threads(threads)
    if phase != "build-untuned":
        from graphkit.engine.memory import keep_freed_memory

        keep_freed_memory()
    out = {"phase": phase, "n": n, "threads": threads}
    if phase.startswith("build"):
        t = time.perf_counter()
        graph = _build(n)
        out["seconds"] = time.perf_counter() - t
        out["peak_bytes"] = _peak_rss()
        if phase == "build":
            torch.save({"train": graph.train, "test": graph.test, "num_users": graph.num_users,
                        "num_items": graph.num_items}, cache)
            train = graph.train
            deg = torch.bincount(train[0], minlength=graph.num_users).double()
            out.update(users=graph.num_users, items=graph.num_items, train=graph.num_train,
                       sum_deg2=float((deg * deg).sum()))
        return out
    data = torch.load(cache)
    base = _rss()
    if phase == "epoch":
        from graphkit.nn.models.lightgcn import LightGCN
        from graphkit.rec.sampling import sample_bpr_triples
        from graphkit.rec.train import scale_recipe
        from graphkit.utils.ranking import PairIndex

        train, U, num_items = data["train"], data["num_users"], data["num_items"]
        recipe = scale_recipe(train.size(1), U, num_items)
        model = LightGCN(U, num_items)
        t = time.perf_counter()
        model.set_graph(train)
        out["set_graph_s"] = time.perf_counter() - t
        positives = PairIndex(train, U, num_items)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        gen = torch.Generator().manual_seed(0)
        times = []
        for step in range(steps + 1):
            t = time.perf_counter()
            users, pos, neg = sample_bpr_triples(positives, recipe.batch_size, num_items, gen)
            opt.zero_grad(set_to_none=True)
            model.loss(users, pos, neg).backward()
            opt.step()
            if step:
                times.append(time.perf_counter() - t)
        step_s = sum(times) / len(times)
        out.update(seconds=step_s * recipe.steps_per_epoch, step_s=step_s, batch=recipe.batch_size,
                   steps_per_epoch=recipe.steps_per_epoch, lr=recipe.lr, recipe=recipe.name, steps_timed=steps,
                   estimated_bytes=recipe.estimated_bytes)
    elif phase == "eval":
        from graphkit.rec.evaluate import DotProductScorer, full_ranking

        U, num_items = data["num_users"], data["num_items"]
        gen = torch.Generator().manual_seed(0)
        user_emb, item_emb = torch.randn(U, 64, generator=gen), torch.randn(num_items, 64, generator=gen)
        base = _rss()
        eval_users = torch.unique(data["test"][0])
        limit = eval_users_limit if eval_users_limit > 0 else eval_users.numel()
        timed = eval_users[torch.randperm(eval_users.numel(), generator=gen)[:limit]]

        def run(users):
            wall, cpu = time.perf_counter(), time.process_time()
            res = full_ranking(DotProductScorer(user_emb, item_emb), U, num_items, data["test"],
                               exclude=(data["train"],), ks=(20,), metrics=("recall", "ndcg"), users=users)
            return time.perf_counter() - wall, time.process_time() - cpu, res

        # the fixed cost (input checks, pair indexes of train and test) is paid once per
        # evaluation: timed on one user, it is not scaled with the number of users
        fixed, fixed_cpu, _ = run(timed[:1])
        spent, spent_cpu, res = run(timed)
        scale = (eval_users.numel() - 1) / max(res["num_users"] - 1, 1)
        total = fixed + (spent - fixed) * scale
        flop = 2.0 * 64 * eval_users.numel() * num_items
        out.update(seconds=total, cpu_seconds=fixed_cpu + (spent_cpu - fixed_cpu) * scale,
                   fixed_s=fixed, timed_users=res["num_users"], eval_users=int(eval_users.numel()),
                   score_gflop=flop / 1e9, effective_gflops=flop / 1e9 / total)
    elif phase == "ultragcn-epoch":
        out.update(_ultragcn_epoch(data, steps))
    elif phase == "constraint":
        from graphkit.nn.models.ultragcn import item_item_constraint

        t, cpu = time.perf_counter(), time.process_time()
        item_item_constraint(data["train"], data["num_users"], data["num_items"], 10)
        out["seconds"] = time.perf_counter() - t
        out["cpu_seconds"] = time.process_time() - cpu
    out["peak_bytes"] = _peak_rss()
    out["beyond_data_bytes"] = out["peak_bytes"] - base
    return out


def _ultragcn_epoch(data: dict, steps: int) -> dict:
    """UltraGCN with the defaults of ``graphkit rec train`` (dim 64, batch 1024, 200 negatives,
    10 item-item neighbours, lr 1e-3, ``sampler="epoch"``), trained as :func:`graphkit.rec.train.fit`
    does (``set_graph``, the sampler's pair index, fused Adam, one shuffled pass): ``steps``
    steps timed after one warm-up step. Peaks are recorded after ``set_graph`` and after the
    steps, beside :func:`graphkit.rec.train.ultragcn_memory_parts`."""
    import torch

    from graphkit.engine.optim import adam
    from graphkit.nn.models.ultragcn import UltraGCN
    from graphkit.rec.cli import MODEL_DEFAULTS
    from graphkit.rec.train import ultragcn_memory_estimate, ultragcn_memory_parts
    from graphkit.utils.ranking import PairIndex

    defaults = MODEL_DEFAULTS["ultragcn"]
    train, U, num_items = data["train"], data["num_users"], data["num_items"]
    E, batch = train.size(1), defaults["batch_size"]
    model = UltraGCN(U, num_items, embedding_dim=defaults["embedding_dim"])
    parts = ultragcn_memory_parts(E, U, num_items, model.embedding_dim, batch, model.num_negatives,
                                  model.num_neighbors)
    t = time.perf_counter()
    model.set_graph(train)
    set_graph_s = time.perf_counter() - t
    peak_set_graph = _peak_rss()
    positives = PairIndex(train, U, num_items)  # what fit builds for its samplers
    opt = adam(model.parameters(), lr=defaults["lr"])
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(E, generator=gen)
    times = []
    for step in range(steps + 1):
        t = time.perf_counter()
        idx = perm[step * batch:(step + 1) * batch]
        users, pos = train[0][idx], train[1][idx]
        neg = model.sample_negatives(users.numel(), generator=gen, users=users)
        opt.zero_grad(set_to_none=True)
        model.loss(users, pos, neg).backward()
        opt.step()
        if step:
            times.append(time.perf_counter() - t)
    del positives
    step_s = sum(times) / len(times)
    steps_per_epoch = math.ceil(E / batch)
    return dict(seconds=step_s * steps_per_epoch, step_s=step_s, batch=batch, steps_per_epoch=steps_per_epoch,
                lr=defaults["lr"], steps_timed=steps, set_graph_s=set_graph_s, peak_set_graph_bytes=peak_set_graph,
                num_negatives=model.num_negatives, estimated_bytes=ultragcn_memory_estimate(
                    E, U, num_items, model.embedding_dim, batch, model.num_negatives, model.num_neighbors),
                estimated_parts=parts)


def _available_gb() -> float:
    out = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    head, mem = out[0].split(), out[1].split()
    return float(mem[1 + head.index("available")])


def _size(text: str) -> int:
    text = text.upper()
    scale = {"K": 10 ** 3, "M": 10 ** 6}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _fmt_gb(b: float) -> str:
    return f"{b / 2 ** 30:.2f}"


def _latest(rows):
    """For each (size, phase) the last one-thread row given (runs with more threads appear in
    the evaluation section only)."""
    by = {}
    for r in rows:
        if r.get("threads", 1) == 1:
            by[(r["n"], r["phase"])] = r
    return by


def _exponent(a: dict, z: dict) -> float:
    return math.log(z["seconds"] / a["seconds"]) / math.log(z["n"] / a["n"])


def format_section(rows, command, env) -> str:
    by = _latest(rows)
    sizes = sorted({n for n, _ in by})
    sources = []

    def mark(r):
        if not r or not r.get("source"):
            return ""
        if r["source"] not in sources:
            sources.append(r["source"])
        return f" [{sources.index(r['source']) + 1}]"

    lines = ["## Recommenders at scale (synthetic, one thread)", "",
             f"`{command}`. {env}", "",
             "| interactions | users | items | sum d_u^2 | build + split (tuned / untuned peak GB) | LightGCN epoch "
             "(recipe used; its memory estimate) | full-ranking eval (GB beyond embeddings; users timed) | "
             "UltraGCN item-item | peak GB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        b, bu = by.get((n, "build"), {}), by.get((n, "build-untuned"), {})
        e, v, c = by.get((n, "epoch"), {}), by.get((n, "eval"), {}), by.get((n, "constraint"), {})
        peak = max([r.get("peak_bytes", 0) for r in (b, bu, e, v, c)])
        build = (f"{b['seconds']:.1f} s ({_fmt_gb(b.get('peak_bytes', 0))} / "
                 f"{_fmt_gb(bu['peak_bytes']) if bu else '-'}){mark(b)}" if b else "-")
        epoch = (f"{e['seconds']:.0f} s ({e.get('recipe', '')} batch {e['batch']}, lr {e['lr']:.3g}, "
                 f"{e['steps_per_epoch']} steps x {e['step_s']:.2f} s; est. "
                 f"{_fmt_gb(e['estimated_bytes']) if 'estimated_bytes' in e else '?'} GB, peak "
                 f"{_fmt_gb(e['peak_bytes'])} GB){mark(e)}" if e else "-")
        timed = ("all" if v and v.get("timed_users") == v.get("eval_users")
                 else f"{v.get('timed_users')} of {v.get('eval_users')}")
        ev = (f"{v['seconds']:.1f} s ({_fmt_gb(v.get('beyond_data_bytes', 0))}; {timed}){mark(v)}" if v else "-")
        con = f"{c['seconds']:.1f} s{mark(c)}" if c else "-"
        lines.append(f"| {n / 1e6:g}M | {b.get('users', '')} | {b.get('items', '')} | {b.get('sum_deg2', 0):.3g} | "
                     f"{build} | {epoch} | {ev} | {con} | {_fmt_gb(peak)} |")
    lines.append("")
    parts = []
    for phase in ("build", "epoch", "eval", "constraint"):
        have = [by[(n, phase)] for n in sizes if (n, phase) in by and by[(n, phase)]["seconds"] > 0]
        if len(have) >= 2:
            steps = ", ".join(f"{x['n'] / 1e6:g}M-{y['n'] / 1e6:g}M {_exponent(x, y):.2f}"
                              for x, y in zip(have, have[1:]))
            whole = f"; {have[0]['n'] / 1e6:g}M-{have[-1]['n'] / 1e6:g}M {_exponent(have[0], have[-1]):.2f}" \
                if len(have) > 2 else ""
            parts.append(f"{phase} {steps}{whole}")
    if parts:
        lines.append("Growth exponents of time: " + "; ".join(parts) + ".")
    at16 = 16 * 10 ** 6
    if at16 in sizes:
        goals = []
        for phase, limit in GOALS.items():
            r = by.get((at16, phase))
            if r:
                goals.append(f"{phase} <= {limit:.0f} s: {_report.goal(r['seconds'] <= limit)}")
        v = by.get((at16, "eval"))
        if v:
            goals.append(f"eval memory <= 2 GB beyond embeddings: {_report.goal(v['beyond_data_bytes'] <= 2 ** 31)}")
        lines.append("Goals at 16M: " + "; ".join(goals) + ".")
    at64 = 64 * 10 ** 6
    done = [p for p in PHASES if (at64, p) in by]
    if done:
        peak = max(by[(at64, p)]["peak_bytes"] for p in done)
        missing = [p for p in PHASES if p not in done]
        lines.append(f"At 64M, the peak of the phases measured ({', '.join(done)}) is {_fmt_gb(peak)} GB: inside "
                     f"24 GB {_report.goal(peak <= 24 * 2 ** 30)}" + (f"; not measured: {', '.join(missing)}" if missing
                                                                         else "") + ".")
        e, v = by.get((at64, "epoch")), by.get((at64, "eval"))
        sampled = []
        if e:
            sampled.append(f"the epoch is {e.get('steps_timed', STEPS)} timed steps times the recipe's "
                           f"{e['steps_per_epoch']} (no full epoch was run)")
        if v and v["timed_users"] < v["eval_users"]:
            sampled.append(f"the evaluation timed {v['timed_users']} of {v['eval_users']} test users (its time "
                           "is extrapolated; its memory is the full evaluation's)")
        if sampled:
            lines.append("At 64M " + " and ".join(sampled) + "; build and the item-item constraint ran in full.")
    lines.append("")
    timed = sorted({r.get("steps_timed", STEPS) for r in by.values() if r["phase"] == "epoch"})
    lines.append(f"Epochs: {'/'.join(map(str, timed))} steps timed after one warm-up step, times the recipe's steps "
                 "per epoch (the recipe of `graphkit rec train`, `scale_recipe`; est. is its memory estimate, "
                 "peak the measured peak of the process: data, `set_graph`, the steps). Evaluation: the "
                 "test users timed as stated, the rest extrapolated; memory is the full evaluation's, since "
                 "the score blocks are bounded by the 512 MiB budget whatever the number of users. Build "
                 "peaks: with `keep_freed_memory()` (64 MiB mmap threshold, at most 512 MiB kept) and with "
                 "`GRAPHKIT_MALLOC_TUNING=0`. Peak GB: the largest peak of the size's phases (each in its own "
                 "process).")
    ultra = _ultragcn_lines(by, sizes, mark)
    for i, src in enumerate(sources):
        lines.append(f"[{i + 1}] {src}")
    return "\n".join(lines + ultra)


def _ultragcn_lines(by, sizes, mark):
    """The ``ultragcn-epoch`` rows: step and extrapolated epoch times, and the peaks measured
    after ``set_graph`` and after the steps beside ``ultragcn_memory_parts`` of today's code."""
    from graphkit.rec.train import ultragcn_memory_parts

    have = [n for n in sizes if (n, "ultragcn-epoch") in by]
    if not have:
        return []
    lines = ["", "UltraGCN training with the defaults of `graphkit rec train --model ultragcn` (dim 64, batch 1024, "
             "200 negatives, 10 item-item neighbours, lr 1e-3, `sampler=\"epoch\"`, fused Adam), phase "
             "`ultragcn-epoch`:", "",
             "| interactions | training pairs | `set_graph` | step | epoch (steps x step) | memory after `set_graph`: "
             "est. / peak GB | after the steps: est. / peak GB | estimate `rec train` checks (GB) |",
             "|---|---|---|---|---|---|---|---|"]
    for n in have:
        r, b = by[(n, "ultragcn-epoch")], by.get((n, "build"), {})
        if "train" in b:
            est = ultragcn_memory_parts(b["train"], b["users"], b["items"])
            sg, st, total = (_fmt_gb(est["set_graph"]), _fmt_gb(est["step"]), _fmt_gb(max(est.values())))
        else:
            sg = st = total = "?"
        hours = r["seconds"] / 3600
        epoch = f"{r['seconds']:.0f} s" + (f" ({hours:.1f} h)" if hours >= 1 else "")
        lines.append(f"| {n / 1e6:g}M | {b.get('train', '')} | {r['set_graph_s']:.1f} s | {r['step_s']:.3f} s | "
                     f"{r['steps_per_epoch']} x {r['step_s']:.3f} s = {epoch}{mark(r)} | "
                     f"{sg} / {_fmt_gb(r['peak_set_graph_bytes'])} | {st} / {_fmt_gb(r['peak_bytes'])} | {total} |")
    timed = sorted({by[(n, "ultragcn-epoch")].get("steps_timed", STEPS) for n in have})
    lines += ["", f"{'/'.join(map(str, timed))} steps timed after one warm-up step; the epoch is extrapolated, no "
              "full epoch was run. Peaks are the process's (`ru_maxrss`: the loaded pairs, `set_graph`, the "
              "sampler's pair index, the steps); est. is `graphkit.rec.train.ultragcn_memory_parts` of the code "
              "that rendered this table; `rec train` checks the largest of its stages against `--max-memory`, "
              "an evaluation (not run in this phase) included."]
    return lines


EVAL_SECTION = "rec-scale-eval"


def format_eval_section(rows, command, env, before=()) -> str:
    """The section of an evaluation-only run (``--phases eval``): time, CPU time, the score
    product's size and rate, memory, growth and the goal, per size and thread count, with
    earlier figures (``--before``) beside today's."""
    evals = sorted((r for r in rows if r["phase"] == "eval"), key=lambda r: (r["n"], r.get("threads", 1)))
    sizes = sorted({r["n"] for r in evals})
    builds = {r["n"]: r for r in rows if r["phase"] == "build"}
    one = {r["n"]: r for r in evals if r.get("threads", 1) == 1}
    earlier = {}
    for r in before:
        earlier.setdefault(r["n"], []).append(r)
    lines = ["## Full-ranking evaluation at scale (synthetic)", "",
             f"`{command}`. {env}", "",
             "| interactions | users | items | test users | threads | score product (TFLOP) | time | CPU time | "
             "effective GFLOP/s | GB beyond embeddings | before |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in evals:
        n, b = v["n"], builds.get(v["n"], {})
        prior = "; ".join(f"{r['seconds']:.1f} s" + (f" / {r['cpu_seconds']:.1f} s CPU" if "cpu_seconds" in r else "")
                          + f" ({r['source']})" for r in earlier.get(n, [])) or "-"
        lines.append(
            f"| {n / 1e6:g}M | {b.get('users', '')} | {b.get('items', '')} | {v['eval_users']} | "
            f"{v.get('threads', 1)} | {v['score_gflop'] / 1e3:.2f} | {v['seconds']:.1f} s | {v['cpu_seconds']:.1f} s | "
            f"{v['effective_gflops']:.0f} | {_fmt_gb(v['beyond_data_bytes'])} | {prior} |")
    lines.append("")
    grow = sorted(one)
    if len(grow) >= 2:
        lo, hi = grow[0], grow[-1]
        a, z = one[lo], one[hi]
        slope = math.log(z["seconds"] / a["seconds"]) / math.log(hi / lo)
        work = math.log(z["score_gflop"] / a["score_gflop"]) / math.log(hi / lo)
        cpu = math.log(z["cpu_seconds"] / a["cpu_seconds"]) / math.log(hi / lo)
        lines.append(f"Growth exponent, one thread ({lo / 1e6:g}M to {hi / 1e6:g}M) of time: {slope:.2f}; of CPU "
                     f"time: {cpu:.2f}; of the score product (test users x items x 2 x 64 flop): {work:.2f}.")
    at16 = [r for r in evals if r["n"] == 16 * 10 ** 6 and r.get("threads", 1) <= 2]
    v = min(at16, key=lambda r: r["seconds"]) if at16 else None
    if v:
        lines.append(f"Goals at 16M (best of the runs with at most this machine's 2 cores: {v.get('threads', 1)} "
                     f"thread(s)): eval <= {GOALS['eval']:.0f} s: {_report.goal(v['seconds'] <= GOALS['eval'])} "
                     f"({v['seconds']:.0f} s); eval memory <= 2 GB beyond embeddings: "
                     f"{_report.goal(max(r['beyond_data_bytes'] for r in at16) <= 2 ** 31)}.")
    rate = max(r["score_gflop"] / r["cpu_seconds"] for r in evals)
    need = f" A {GOALS['eval']:.0f} s goal at 16M needs {v['score_gflop'] / GOALS['eval']:.0f} GFLOP/s." if v else ""
    timed = {r["n"]: r["timed_users"] for r in evals}
    all_timed = all(r["timed_users"] == r["eval_users"] for r in evals)
    lines += ["",
              "Exact full ranking scores every test user against every item, so its work is "
              "test users x items x 2d flop. With users and items both proportional to the "
              "interactions, that is quadratic in the data: the expected growth exponent is 2, "
              "not 1, and no implementation of exact full ranking changes it, only the constant. "
              "Time is wall-clock; CPU time is the process's own, all threads. Embedding scores "
              "are ranked by `DotProductScorer.topk` (`graphkit.utils.ranking.DotProductTopK`): a "
              "screening product in bfloat16 on this CPU (AVX512-BF16) in tiles of 4096 items, "
              "reduced in cache to maxima of groups of consecutive items (8 at 25k items, 16 at 100k, "
              "32 at 400k: `screening_group_size`), then a certified error bound leaves about 30-40 "
              "groups per user to re-score in float32; the screening product is about half of the "
              "time (a bfloat16 GEMM peaks near 210 GFLOP/s on one core here, so it alone needs "
              f"about 155 s of CPU at 16M). The whole evaluation ran at up to {rate:.0f} GFLOP/s of "
              "CPU time (screening flop counted as full-ranking flop); two threads work on separate "
              "blocks of users." + need,
              "",
              f"Evaluation: {'all' if all_timed else 'a random sample of'} "
              "test users timed (" + ", ".join(f"{timed[n]} at {n / 1e6:g}M" for n in sizes)
              + "); the fixed cost (checks and pair indexes, timed on one user) is added once and "
              "the rest extrapolated to every test user. Training items masked, top-20, recall and "
              "NDCG, random 64-dimensional embeddings, blocks of one byte per item and user within "
              "the default 512 MiB budget."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["1M", "4M", "16M", "64M"])
    p.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per phase")
    p.add_argument("--steps", type=int, default=STEPS,
                   help="steps timed in the epoch and ultragcn-epoch phases")
    p.add_argument("--rows", help="JSON lines file: measured rows are appended to it, and the table is "
                                  "rendered from all the rows it holds")
    p.add_argument("--render", action="store_true", help="measure nothing: render the table from --rows")
    p.add_argument("--eval-users", type=int, default=EVAL_USERS,
                   help="test users timed in the eval phase, the rest extrapolated (0: all)")
    p.add_argument("--threads", type=int, nargs="+", default=[1],
                   help="torch threads: the eval phase runs once per value, the others with the first")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    p.add_argument("--before", help="JSON lines of earlier eval rows (n, seconds, source) shown "
                                     "beside today's in an evaluation-only run")
    _report.add_output_args(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.phase:  # a worker
        print(json.dumps(run_phase(args.phase, args.n, args.cache, args.eval_users, args.steps, args.threads[0])),
              flush=True)
        return 0
    if args.render and not args.rows:
        raise SystemExit("--render needs --rows FILE")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rec-scale-") as tmp:
        for n in sorted(_size(s) for s in ([] if args.render else args.sizes)):
            if n >= 64 * 10 ** 6 and _available_gb() < 16:
                print(f"skipping {n / 1e6:g}M: `free -g` shows {_available_gb():g} GB available (< 16)", flush=True)
                continue
            cache = os.path.join(tmp, f"{n}.pt")
            jobs = [(phase, t) for phase in ("build",) + tuple(p for p in args.phases if p != "build")
                    for t in (args.threads if phase == "eval" else args.threads[:1])]
            for phase, threads in jobs:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
                if phase == "build-untuned":
                    env["GRAPHKIT_MALLOC_TUNING"] = "0"
                try:
                    proc = subprocess.run([sys.executable, __file__, "--phase", phase, "--n", str(n),
                                           "--cache", cache, "--eval-users", str(args.eval_users),
                                           "--steps", str(args.steps), "--threads", str(threads)],
                                          capture_output=True, text=True, env=env,
                                          timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    print(f"{n / 1e6:g}M {phase}: over {args.timeout:.0f} s, skipped", flush=True)
                    continue
                if proc.returncode != 0:
                    print(f"{n / 1e6:g}M {phase} failed:\n{proc.stderr[-2000:]}", flush=True)
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.rows:
                    with open(args.rows, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
    threads = "1 thread" if args.threads == [1] else " and ".join(map(str, args.threads)) + " threads"
    command, env = _report.command(__file__, argv), _report.environment(threads, args.note)
    if set(args.phases) <= {"build", "eval"} and any(r["phase"] == "eval" for r in rows):
        before = []
        if args.before:
            with open(args.before) as fh:
                before = [json.loads(line) for line in fh if line.strip()]
        _report.publish(args, EVAL_SECTION, format_eval_section(rows, command, env, before))
    else:
        if args.rows and os.path.exists(args.rows):
            with open(args.rows) as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
        _report.publish(args, SECTION, format_section(rows, command, env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
