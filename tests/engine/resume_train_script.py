"""A small deterministic training loop used by test_kill_resume.py (run as a subprocess).

It uses every random source the engine checkpoints (torch: init, dropout, shuffling, noise;
NumPy; Python's random), Adam state and a learning-rate scheduler, and saves a checkpoint at
the end of each epoch. ``--die-at EPOCH BATCH`` sends SIGKILL to itself in the middle of an
epoch; ``--sleep`` slows each epoch down so that a parent process can kill it.
"""
import argparse
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from graphkit.engine import Checkpointer, seed_everything


def train(ckpt_dir, out, epochs=6, die_at=None, sleep=0.0, log=print) -> int:
    """Train (resuming from ``ckpt_dir`` if it holds a checkpoint); return the start epoch."""
    torch.set_num_threads(1)
    seed_everything(0)
    x = torch.randn(256, 16)
    y = (x[:, :4].sum(1) > 0).long()
    model_args = {"in_dim": 16, "hidden": 32, "out_dim": 2, "dropout": 0.3}
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ckpt = Checkpointer(ckpt_dir, keep_last=2)
    start = ckpt.resume(model, opt, scheduler=sched)
    log(f"start {start}")

    for epoch in range(start, epochs):
        model.train()
        perm = torch.randperm(x.size(0))
        noise = float(np.random.uniform(0.0, 0.1))
        skip = random.randrange(8)
        for b, idx in enumerate(perm.split(32)):
            if die_at is not None and (epoch, b) == tuple(die_at):
                os.kill(os.getpid(), signal.SIGKILL)
            if b == skip:
                continue
            xb = x[idx] + noise * torch.randn(idx.numel(), 16)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        ckpt.save(epoch, model=model, optimizer=opt, scheduler=sched, model_args=model_args,
                  extra={"loss": float(loss.detach())})
        log(f"epoch {epoch}")
        if sleep:
            time.sleep(sleep)

    torch.save(model.state_dict(), out)
    log("done")
    return start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--die-at", type=int, nargs=2, default=None, metavar=("EPOCH", "BATCH"))
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    train(args.ckpt_dir, args.out, args.epochs, args.die_at, args.sleep,
          log=lambda msg: print(msg, flush=True))


if __name__ == "__main__":
    sys.exit(main())
