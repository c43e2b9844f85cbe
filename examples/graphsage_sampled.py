"""GraphSAGE trained on sampled neighbourhoods, "Inductive Representation Learning on Large
Graphs" (Hamilton, Ying, Leskovec, NeurIPS 2017, https://arxiv.org/abs/1706.02216).

PyG's ``GraphSAGE`` model (mean aggregation), unchanged, trained on mini-batches from
``graphkit.loader.NeighborLoader`` (uniform neighbour sampling in plain torch; no pyg-lib or
torch-sparse needed). The paper has no Amazon-Computers number: this entry records ours only
(no paper value, no tolerance).

Protocol: random split per run (60% train, 20% valid, 20% test of the nodes, seeded by the run's
seed), fan-outs 25-10 and batch 512 as in the paper, hidden 256, Adam lr 0.01, dropout 0.5;
inference on the full graph (exact, no sampling); test accuracy (``graphkit.evaluate``
``"accuracy"``) at the epoch of best validation accuracy.

``--dataset synthetic`` trains on a power-law graph instead, from ``power_law_graph``: a
Chung-Lu graph whose expected degrees follow :math:`w_i \\propto (i + 1)^{-1/(\\gamma - 1)}`
(``--gamma``, default 2.5), ``--num-nodes`` nodes and ``num_nodes * avg_degree / 2`` undirected
edges drawn (both directions stored, self-loops dropped; mean degree about ``--avg-degree``),
``--classes`` classes; features are 0.3 times a class centroid plus unit Gaussian noise, and
each edge endpoint keeps its class with probability 0.8 (so the graph carries signal). The peak
resident memory of the process is printed and recorded. Inference is exact and layer-wise: each
layer is computed for all nodes in chunks of at most ``--eval-batch-size`` nodes and 2^20
in-edges, each with all its in-neighbours, so its memory follows the chunk, not the graph's edge
count (a whole-graph pass would gather a [E, hidden] message tensor per layer: 12 GB at 12 M
edges and hidden 256).
``--max-batches`` caps the training mini-batches per epoch (a deviation recorded as such).

    python examples/graphsage_sampled.py --dataset Amazon-Computers --epochs 10 --threads 1
    python examples/graphsage_sampled.py --dataset synthetic --num-nodes 100000 --epochs 3
    python examples/graphsage_sampled.py --dataset synthetic --num-nodes 1000000 --avg-degree 12 \
        --epochs 1 --max-batches 300 --threads 1

Under ``torchrun --nproc_per_node=N`` the model is wrapped in DDP and every global batch of
``--batch-size`` seeds is split over the N ranks (``graphkit.loader.IndexLoader``; a last batch
that does not split evenly is padded with the epoch's first seeds, as ``DistributedSampler``
does); rank 0 evaluates, prints, and writes the run log and the record. The mean training time
per epoch is recorded as ``train_s_per_epoch``.

Every finished run is appended to ``runs/<entry id>/runs.jsonl``; rerunning with the same
settings resumes after the last finished run (``--no-resume`` starts afresh). Checkpoints within
a run are not written.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from typing import List, Optional

import torch
import torch.nn.functional as F

from graphkit.engine.args import apply_threads, entry_id, example_parser

NAMES = ("Amazon-Computers", "synthetic")


def parse_args(argv: Optional[List[str]] = None):
    p = example_parser(__doc__, datasets=NAMES, dataset="Amazon-Computers", runs=1, epochs=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--fanouts", default="25,10", help="fan-out per hop, comma-separated")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--replace", action="store_true", help="sample neighbours with replacement")
    p.add_argument("--max-batches", type=int, default=0,
                   help="train on at most this many mini-batches per epoch (0: all)")
    p.add_argument("--eval-batch-size", type=int, default=16384,
                   help="nodes per chunk of the layer-wise inference")
    p.add_argument("--num-nodes", type=int, default=20000, help="synthetic graph: nodes")
    p.add_argument("--avg-degree", type=float, default=10.0, help="synthetic graph: edges per node")
    p.add_argument("--gamma", type=float, default=2.5, help="synthetic graph: power-law exponent")
    p.add_argument("--classes", type=int, default=10, help="synthetic graph: classes")
    p.add_argument("--features", type=int, default=64, help="synthetic graph: feature size")
    args = p.parse_args(argv)
    try:
        args.fanouts = [int(k) for k in args.fanouts.split(",")]
    except ValueError:
        p.error(f"--fanouts: expected comma-separated integers, got {args.fanouts!r}")
    from graphkit.loader.neighbor import check_num_neighbors

    try:
        check_num_neighbors(args.fanouts, "--fanouts")
    except ValueError as e:
        p.error(str(e))
    if args.max_batches < 0 or args.eval_batch_size < 1:
        p.error("--max-batches must be >= 0 and --eval-batch-size >= 1")
    if args.dataset == "synthetic" and (args.num_nodes < 2 or args.gamma <= 2 or args.classes < 2):
        p.error("synthetic graph needs --num-nodes >= 2, --gamma > 2 and --classes >= 2")
    variant = f"n{args.num_nodes}" if args.dataset == "synthetic" else ""
    args.entry = entry_id("graphsage-sampled", args.dataset, variant=variant)
    args.log = os.path.join(args.checkpoint_dir or os.path.join("runs", args.entry), "runs.jsonl")
    return args


def power_law_graph(num_nodes: int, avg_degree: float, gamma: float, classes: int,
                    features: int, generator: torch.Generator):
    """A Chung-Lu power-law graph with class-correlated edges and features (see the header)."""
    from torch_geometric.data import Data

    weight = (torch.arange(num_nodes, dtype=torch.float64) + 1) ** (-1.0 / (gamma - 1.0))
    y = torch.randint(0, classes, (num_nodes,), generator=generator)
    m = int(num_nodes * avg_degree / 2)
    src = torch.multinomial(weight, m, replacement=True, generator=generator)
    dst = torch.multinomial(weight, m, replacement=True, generator=generator)
    # homophily: with probability 0.8 move dst to a node of src's class (a uniform one)
    same = torch.rand(m, generator=generator) < 0.8
    order = torch.sort(y, stable=True).indices
    counts = torch.bincount(y, minlength=classes)
    starts = torch.cumsum(counts, 0) - counts
    c = y[src[same]]
    pick = (torch.rand(c.numel(), generator=generator) * counts[c]).long()
    dst[same] = order[starts[c] + torch.minimum(pick, counts[c] - 1)]
    keep = src != dst
    ei = torch.stack([src[keep], dst[keep]])
    ei = torch.cat([ei, ei.flip(0)], 1)
    centroids = torch.randn(classes, features, generator=generator)
    x = 0.3 * centroids[y] + torch.randn(num_nodes, features, generator=generator)
    return Data(x=x, y=y, edge_index=ei)


def split_masks(n: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    a, b = int(0.6 * n), int(0.8 * n)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    for m, idx in zip(masks, (perm[:a], perm[a:b], perm[b:])):
        m[idx] = True
    return masks


#: layer-wise inference: at most this many in-edges per chunk (a power-law graph's first
#: nodes can hold a large share of all edges, so a chunk is capped by edges, not only nodes)
EVAL_MAX_EDGES = 1 << 20


def node_chunks(degree, max_nodes: int, max_edges: int = EVAL_MAX_EDGES):
    """``(start, end)`` ranges of consecutive nodes holding at most ``max_nodes`` nodes and
    ``max_edges`` in-edges (a node of larger degree gets a range of its own)."""
    cum = torch.cumsum(degree, 0)
    n, start, out = degree.numel(), 0, []
    while start < n:
        base = int(cum[start - 1]) if start else 0
        end = int(torch.searchsorted(cum, base + max_edges, right=True))
        end = min(max(end, start + 1), start + max_nodes, n)
        out.append((start, end))
        start = end
    return out


@torch.no_grad()
def layerwise_inference(model, x, sampler, chunk: int, max_edges: int = EVAL_MAX_EDGES):
    """Exact full-graph logits of a PyG ``BasicGNN`` (GraphSAGE), one layer at a time over
    chunks of at most ``chunk`` destination nodes and ``max_edges`` in-edges, each with all
    its in-neighbours."""
    h = x
    ranges = node_chunks(sampler.degree(), chunk, max_edges)
    for i, conv in enumerate(model.convs):
        out = []
        for start, end in ranges:
            s = sampler.sample(torch.arange(start, end, device=x.device), [-1])
            z = conv(h[s.node], torch.stack([s.row, s.col]))[:s.batch_size]
            if i < len(model.convs) - 1:
                z = model.act(z)
            out.append(z)
        h = torch.cat(out)
    return h


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    apply_threads(args)
    from torch_geometric.nn.models import GraphSAGE

    from graphkit.engine import fit, mean_std, run_many
    from graphkit.engine.distributed import (
        broadcast_object,
        cleanup_distributed,
        get_world_size,
        is_main_process,
        print0,
        setup_device,
        wrap_ddp,
    )
    from graphkit.evaluate import get_metric
    from graphkit.loader import NeighborLoader

    device = setup_device(args.device)  # under torchrun: the process group, one device per rank
    if args.dataset == "synthetic":
        data = power_law_graph(args.num_nodes, args.avg_degree, args.gamma, args.classes,
                               args.features, torch.Generator().manual_seed(args.seed))
        num_classes = args.classes
    else:
        from graphkit.datasets import load

        dataset = load(args.dataset, root=args.root)
        data, num_classes = dataset[0], int(dataset.num_classes)
    if not torch.isfinite(data.x).all():
        raise ValueError(f"{args.dataset}: node features contain NaN or infinite values")
    print0(f"{args.dataset}: {data.num_nodes} nodes, {data.edge_index.size(1)} edges, "
          f"{data.num_features} features, {num_classes} classes")
    data = data.to(device)
    accuracy = get_metric("accuracy")
    model = GraphSAGE(data.num_features, args.hidden, num_layers=len(args.fanouts),
                      out_channels=num_classes, dropout=args.dropout).to(device)

    def train_run(run: int, seed: int):
        torch.manual_seed(seed)
        train, val, test = (m.to(device) for m in split_masks(data.num_nodes,
                                                               torch.Generator().manual_seed(seed)))
        loader = NeighborLoader(data, args.fanouts, input_nodes=train, batch_size=args.batch_size,
                                shuffle=True, replace=args.replace, seed=seed, device=device,
                                uneven="wrap")
        model.reset_parameters()
        net = wrap_ddp(model)  # DDP under torchrun (replicas start from rank 0's weights)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        train_times = []

        def step() -> float:
            net.train()
            total, count = 0.0, 0
            t0 = time.perf_counter()
            for i, batch in enumerate(loader):
                if args.max_batches and i >= args.max_batches:
                    break
                opt.zero_grad()
                out = net(batch.x, batch.edge_index)[:batch.batch_size]
                loss = F.cross_entropy(out, batch.y[:batch.batch_size])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * batch.batch_size
                count += batch.batch_size
            train_times.append(time.perf_counter() - t0)
            return total / count

        @torch.no_grad()
        def evaluate():
            metrics = None
            if is_main_process():  # the replicas are equal: rank 0 evaluates for all
                model.eval()
                out = layerwise_inference(model, data.x, loader.sampler, args.eval_batch_size)
                metrics = {"val_acc": 100 * accuracy(out, data.y, val),
                           "test_acc": 100 * accuracy(out, data.y, test)}
            return broadcast_object(metrics)

        best = fit(step, evaluate, args.epochs, select="val_acc" if args.select == "valid"
                   else "test_acc", time_budget=args.time_budget,
                   callback=lambda m: print0(f"  epoch {m['epoch']:3d}: loss {m['train_loss']:.4f} "
                                             f"val {m['val_acc']:.2f} test {m['test_acc']:.2f} "
                                             f"(train {train_times[-1]:.1f} s)", flush=True))
        return {**best, "peak_rss_mb": peak_memory_mb(), "world_size": get_world_size(),
                "batches_per_epoch": min(len(loader), args.max_batches or len(loader)),
                "train_s_per_epoch": sum(train_times) / len(train_times)}

    settings = dict(dataset=args.dataset, hidden=args.hidden, fanouts=args.fanouts,
                    batch_size=args.batch_size, lr=args.lr, dropout=args.dropout,
                    replace=args.replace, epochs=args.epochs, seed=args.seed, select=args.select)
    if args.max_batches:  # absent by default, so earlier logs stay resumable
        settings["max_batches"] = args.max_batches
    if get_world_size() > 1:
        settings["world_size"] = get_world_size()
    if args.dataset == "synthetic":
        settings.update(num_nodes=args.num_nodes, avg_degree=args.avg_degree, gamma=args.gamma,
                        classes=args.classes, features=args.features)
    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    t_all = time.perf_counter()
    records, resumed = run_many(args.runs, train_run, seed=args.seed, settings=settings,
                                log=args.log, resume=args.resume)
    values = [float(r["test_acc"]) for r in records]
    mean, std = mean_std(values)
    peak = max(float(r.get("peak_rss_mb", 0.0)) for r in records)
    per_epoch = sum(float(r.get("train_s_per_epoch", 0.0)) for r in records) / len(records)
    print0(f"GraphSAGE (sampled) {args.dataset}: test {mean:.2f} ± {std:.2f} over {args.runs} "
           f"runs; peak resident memory {peak:.0f} MiB (rank 0); training {per_epoch:.1f} s per "
           f"epoch on {get_world_size()} process(es)")
    if args.record and is_main_process():
        from graphkit.engine import write_result_record

        deviations = list(args.deviation)
        if resumed:
            deviations.append(f"{len(resumed)} runs read back from {args.log} (resume)")
        if args.time_budget:
            deviations.append(f"training capped at {args.time_budget:g} s per run")
        if args.max_batches:
            deviations.append(f"at most {args.max_batches} training mini-batches per epoch")
        path = write_result_record(
            entry=args.entry, method="GraphSAGE (sampled)", dataset=args.dataset,
            task="node classification", primary_metric="accuracy",
            metrics={"accuracy": {"paper": None, "paper_source": "none: the paper has no "
                                  "result on this dataset", "tolerance": None, "values": values}},
            runs=args.runs,
            protocol=("random 60/20/20 split per run; mini-batches of sampled neighbourhoods "
                      f"(fan-outs {args.fanouts}, batch {args.batch_size}); full-graph "
                      "inference (exact, layer-wise); test accuracy at the best "
                      + ("validation" if args.select == "valid" else "test") + " epoch"),
            deviations=deviations, wall_time_s=time.perf_counter() - t_all, out_dir=args.out,
            extra=dict(settings=settings, peak_rss_mb=peak, train_s_per_epoch=per_epoch,
                       world_size=get_world_size(), num_edges=int(data.edge_index.size(1)),
                       epochs=[r.get("epoch") for r in records]))
        print(f"wrote {path}")
    cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
