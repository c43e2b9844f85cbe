r"""Training on mini-batches of target nodes, built on :func:`graphkit.engine.loops.fit`.

:func:`train_target_batches` trains a model whose input for a set of target nodes is a list of
row-gathered tensors (RpHGNN's pre-computed groups) and reports loss, micro-F1 and macro-F1
(from :mod:`graphkit.evaluate`, in %) on the validation and test nodes; single-label targets use
cross-entropy, multi-label 0/1 targets binary cross-entropy with a 0 logit threshold.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["train_target_batches", "evaluate_target", "target_loss"]


def target_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy for class ids, binary cross-entropy with logits for 0/1 matrices."""
    if y.dim() == 2:
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
    return F.cross_entropy(logits, y)


def _gather(groups: Sequence[Tensor], idx: Tensor) -> list:
    return [g[idx] for g in groups]


@torch.no_grad()
def predict(model: torch.nn.Module, groups: Sequence[Tensor], idx: Tensor,
            batch_size: int = 10000) -> Tensor:
    """Logits of the nodes ``idx`` in eval mode, in batches."""
    model.eval()
    return torch.cat([model(_gather(groups, idx[i:i + batch_size]))
                      for i in range(0, idx.numel(), batch_size)])


def evaluate_target(logits: Tensor, y: Tensor, prefix: str) -> Dict[str, float]:
    """``<prefix>_loss``, ``<prefix>_micro_f1``, ``<prefix>_macro_f1`` (F1 in %)."""
    from graphkit.evaluate import get_metric

    out = {f"{prefix}_loss": float(target_loss(logits, y))}
    for name in ("micro_f1", "macro_f1"):
        out[f"{prefix}_{name}"] = 100.0 * get_metric(name)(logits, y)
    out[f"{prefix}_score"] = (out[f"{prefix}_micro_f1"] + out[f"{prefix}_macro_f1"]) / 2
    return out


def train_target_batches(model: torch.nn.Module, groups: Sequence[Tensor], y: Tensor,
                         split: Dict[str, Tensor], optimizer: torch.optim.Optimizer,
                         epochs: int, *, batch_size: int = 10000,
                         generator: Optional[torch.Generator] = None,
                         extra_eval: Optional[Dict[str, Tensor]] = None,
                         loss_fn: Callable[[Tensor, Tensor], Tensor] = target_loss,
                         select: Any = "val_score", **kwargs: Any) -> Dict[str, Any]:
    r"""Train ``model(list_of_batch_tensors) -> logits`` on shuffled mini-batches of the
    ``split["train"]`` nodes and return the selected epoch's metrics (see
    :func:`graphkit.engine.loops.fit`).

    Args:
        model: maps ``[g[idx] for g in groups]`` to logits ``[len(idx), C]``.
        groups: tensors whose first dimension is the target nodes.
        y: ``[N]`` class ids or ``[N, C]`` 0/1 labels.
        split: ``{"train", "val", "test"}`` node ids.
        optimizer: the optimiser of the model.
        epochs (int): maximum epochs.
        batch_size (int): training and evaluation batch size. (default: ``10000``)
        generator: shuffling generator. (default: torch's global one)
        extra_eval: more ``{name: node ids}`` evaluated every epoch (e.g. a public test half).
        loss_fn: loss. (default: :func:`target_loss`)
        select: ``"val_score"`` (mean of validation micro- and macro-F1, highest),
            ``"val_loss"`` (lowest), ... (default: ``"val_score"``). When it is a validation
            metric, the test sets are evaluated only at epochs that improve it (the others
            hold NaN and are never the selected epoch).
        **kwargs: ``stop``, ``time_budget``, ``eval_every``, ``callback`` of ``fit``.
    """
    from graphkit.engine.loops import fit

    for name in ("train", "val", "test"):
        if name not in split or split[name].numel() == 0:
            raise ValueError(f"train_target_batches: split[{name!r}] is missing or empty")
    n = y.size(0)
    for g, t in enumerate(groups):
        if t.size(0) != n:
            raise ValueError(f"train_target_batches: group {g} has {t.size(0)} rows for {n} "
                             f"labelled target nodes")
    train = split["train"]
    evals = {"val": split["val"], "test": split["test"], **(extra_eval or {})}

    def step() -> float:
        model.train()
        perm = train[torch.randperm(train.numel(), generator=generator)]
        total = 0.0
        for i in range(0, perm.numel(), batch_size):
            idx = perm[i:i + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(_gather(groups, idx)), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
        return total / perm.numel()

    from graphkit.engine.loops import _better, _selection

    key, mode = _selection(select)
    lazy = key is not None and key.startswith("val_")
    best: Dict[str, float] = {}

    def evaluate() -> Dict[str, float]:
        out = evaluate_target(predict(model, groups, evals["val"], batch_size), y[evals["val"]],
                              "val")
        improved = not lazy or not best or _better(out[key], best[key], mode)
        for name, idx in evals.items():
            if name == "val":
                continue
            if improved:
                out.update(evaluate_target(predict(model, groups, idx, batch_size), y[idx], name))
            else:  # never reported: the selected epoch is a validation improvement
                out.update({f"{name}_{m}": float("nan")
                            for m in ("loss", "micro_f1", "macro_f1", "score")})
        if improved:
            best.update(out)
        return out

    return fit(step, evaluate, epochs, select=select, **kwargs)
