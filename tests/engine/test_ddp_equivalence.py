"""DDP over 2 CPU processes (gloo) with rank-sharded loaders trains to the same parameters as
one process with the same global batch."""
import os
import socket
import tempfile

import torch
import torch.multiprocessing as mp

EPOCHS, GLOBAL_BATCH, N = 2, 16, 64


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, 1, generator=g, dtype=torch.float64)
    y = x @ w + 0.1 * torch.randn(N, 1, generator=g, dtype=torch.float64)
    src = torch.randint(0, N, (256,), generator=g)
    dst = torch.randint(0, N, (256,), generator=g)
    return x, y, torch.stack([src, dst])


class MeanSage(torch.nn.Module):
    """One GraphSAGE-mean layer in plain torch (the worker processes then skip importing PyG)."""

    def __init__(self, channels: int):
        super().__init__()
        self.root, self.neigh = torch.nn.Linear(channels, 1), torch.nn.Linear(channels, 1, bias=False)

    def forward(self, x, row, col):
        agg = torch.zeros_like(x).index_add_(0, col, x[row])
        deg = torch.zeros(x.size(0), dtype=x.dtype).index_add_(0, col, torch.ones_like(col, dtype=x.dtype))
        return self.root(x) + self.neigh(agg / deg.clamp(min=1).view(-1, 1))


def _models():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    return mlp, MeanSage(5).double()


def _train(rank: int, world_size: int):
    """Train both models; the loaders shard every global batch by rank."""
    from graphkit.loader.index import IndexLoader
    from graphkit.loader.neighbor import NeighborSampler

    x, y, ei = _data()
    mlp, sage = _models()
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        mlp, sage = DDP(mlp), DDP(sage)
    opt = torch.optim.SGD(list(mlp.parameters()) + list(sage.parameters()), lr=0.1)
    rows = IndexLoader((x, y), GLOBAL_BATCH, shuffle=True, seed=0, rank=rank, world_size=world_size)
    seeds = IndexLoader(N, GLOBAL_BATCH, shuffle=True, seed=1, rank=rank, world_size=world_size)
    sampler = NeighborSampler(ei, N)
    for _ in range(EPOCHS):
        for (xb, yb), nodes in zip(rows, seeds):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(mlp(xb), yb)
            # every neighbour (-1): the subgraphs do not depend on a rank's random stream
            s = sampler.sample(nodes, [-1])
            out = sage(x[s.node], s.row, s.col)[:s.batch_size]
            loss = loss + torch.nn.functional.mse_loss(out, y[nodes])
            loss.backward()
            opt.step()
    unwrap = (lambda m: m.module) if world_size > 1 else (lambda m: m)
    return [p.detach().clone() for m in (mlp, sage) for p in unwrap(m).parameters()]


def _worker(rank: int, world_size: int, port: int, out: str):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    from graphkit.engine.distributed import cleanup_distributed, get_rank, get_world_size, init_distributed

    init_distributed(backend="gloo", timeout_s=60)
    try:
        assert (get_rank(), get_world_size()) == (rank, world_size)
        params = _train(get_rank(), get_world_size())  # loaders read rank and size from the group
        torch.save(params, f"{out}.{rank}.tmp")
        os.replace(f"{out}.{rank}.tmp", f"{out}.{rank}")
    except BaseException:
        cleanup_distributed(barrier=False)
        raise
    cleanup_distributed()  # waits for the other rank before tearing the group down


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_single_process():
    single = _train(rank=0, world_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "params")
        mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
        ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    assert len(single) == len(ranks[0]) == 7
    for a, b, s in zip(ranks[0], ranks[1], single):
        torch.testing.assert_close(a, b, rtol=0, atol=0)   # DDP keeps replicas identical
        torch.testing.assert_close(a, s, rtol=1e-10, atol=1e-12)
    initial = [p for m in _models() for p in m.parameters()]
    assert any(not torch.allclose(p, s) for p, s in zip(initial, single))  # training moved them
