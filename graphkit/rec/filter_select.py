r"""Validation grid search for the training-free graph filters (``gfcf``, ``bspm``, ``polyfilter``).

A graph filter has no epochs to select; its few parameters are chosen on a validation part
carved from the training interactions. :func:`filter_grid` gives a small grid around a setting
and :func:`select_filter` scores it on ``graph.valid`` (training pairs masked) and returns the
best setting by the monitored metric, the grid's figures and the time it took. The singular
vectors depend only on the graph and the rank, so they are computed once and reused across the
grid. Scoring a seeded sample of the validation users (``users=``) makes the search cheaper on
large data; the caller says so where it reports the result.
"""
from __future__ import annotations

import inspect
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

__all__ = ["filter_grid", "select_filter", "sample_users"]

POLY_GRID = ([0.0, 1.0], [0.0, 2.0, -1.0], [0.0, 3.0, -3.0, 1.0], [0.0, 1.0, 1.0])


def _defaults(name: str) -> Dict[str, Any]:
    from graphkit.nn.models import get_recommender

    params = inspect.signature(get_recommender(name).__init__).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def filter_grid(name: str, base: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    r"""The validation grid of filter ``name`` around the setting ``base`` (constructor
    arguments; those not given take the model's defaults):

    * ``gfcf``: ``alpha`` in ``{0, 0.1, 0.3, 0.5, 1}``;
    * ``bspm``: ``sharpen_time`` times ``{0.6, 1, 1.4}`` by ``beta`` times ``{0.5, 1, 1.5}``;
    * ``polyfilter``: the coefficient sets ``λ``, ``2λ - λ²``, ``3λ - 3λ² + λ³``, ``λ + λ²``.
    """
    base = dict(base or {})
    if name == "gfcf":
        return [dict(base, alpha=a) for a in (0.0, 0.1, 0.3, 0.5, 1.0)]
    if name == "polyfilter":
        return [dict(base, coefficients=list(c)) for c in POLY_GRID]
    if name == "bspm":
        full = {**_defaults(name), **base}
        return [dict(base, sharpen_time=round(full["sharpen_time"] * t, 4), beta=round(full["beta"] * b, 4))
                for t in (0.6, 1.0, 1.4) for b in (0.5, 1.0, 1.5)]
    raise ValueError(f"no validation grid for model {name!r}; choose 'gfcf', 'bspm' or 'polyfilter'")


def sample_users(valid: Tensor, count: int, seed: int = 0) -> Tensor:
    """The users with validation pairs (sorted), or a seeded sample of ``count`` of them
    (``count <= 0``: all)."""
    import torch

    users = torch.unique(valid[0])
    if count <= 0 or count >= users.numel():
        return users
    gen = torch.Generator().manual_seed(seed)
    return torch.sort(users[torch.randperm(users.numel(), generator=gen)[:count]]).values


def select_filter(name: str, graph, grid: Sequence[Dict[str, Any]], *, ks: Sequence[int] = (20,),
                  monitor: Optional[str] = None, users: Optional[Tensor] = None, batch_size: int = 2048,
                  memory_budget: Optional[int] = None, log=None) -> Tuple[Dict[str, Any], List[dict], float]:
    r"""Score every setting of ``grid`` for filter ``name`` on ``graph.valid`` (the filter built
    on ``graph.train``, training pairs masked) and return ``(best setting, rows, seconds)``.

    Args:
        name (str): a registered training-free recommender (``gfcf``, ``bspm``, ``polyfilter``).
        graph: an :class:`~graphkit.rec.InteractionGraph` with a ``valid`` part.
        grid (sequence of dict): constructor arguments to try (e.g. :func:`filter_grid`).
        ks (sequence of int): cut-offs reported. (default: ``(20,)``)
        monitor (str, optional): the metric that picks the best setting, highest first; ties
            keep the earlier setting. (default: ``recall@<first k>``)
        users (Tensor, optional): score only these validation users (e.g. :func:`sample_users`).
        batch_size (int): users per evaluation block. (default: ``2048``)
        memory_budget (int, optional): bytes one block of scores may take.
        log (callable, optional): called with one line per setting.

    Returns:
        tuple: the best setting (a dict from ``grid``), one row per setting (``settings`` and
        the validation figures) and the wall time of the search in seconds.
    """
    from graphkit.nn.models import create_recommender
    from graphkit.rec.evaluate import full_ranking

    if getattr(graph, "valid", None) is None or graph.valid.numel() == 0:
        raise ValueError("selecting a graph filter on validation needs a validation part (graph.valid); "
                         "carve one from training, e.g. graphkit.rec.split.holdout_validation")
    if not grid:
        raise ValueError("the validation grid is empty")
    ks = tuple(ks)
    monitor = monitor or f"recall@{ks[0]}"
    start = time.perf_counter()
    rows: List[dict] = []
    model = None
    for settings in grid:
        fresh = create_recommender(name, graph.num_users, graph.num_items, **settings)
        if getattr(fresh, "trainable", True):
            raise ValueError(f"{name!r} is a trained model; select it by its training loop, not a filter grid")
        if model is not None and model.item_vectors.numel():
            fresh.load_state_dict(model.state_dict())  # same graph and rank: the SVD is reused
        model = fresh.set_graph(graph.train)
        res = full_ranking(model.scorer(), graph.num_users, graph.num_items, graph.valid, exclude=[graph.train],
                           ks=ks, metrics=("recall", "ndcg"), batch_size=batch_size, users=users,
                           memory_budget=memory_budget)
        if monitor not in res:
            raise ValueError(f"monitor {monitor!r} is not among the validation figures {sorted(res)}")
        rows.append({"settings": dict(settings), **{k: float(v) for k, v in res.items() if "@" in k}})
        if log is not None:
            log(f"  valid {settings}: " + "  ".join(f"{k} {v:.4f}" for k, v in rows[-1].items() if "@" in k))
    best = max(range(len(rows)), key=lambda i: (rows[i][monitor], -i))
    return dict(grid[best]), rows, time.perf_counter() - start
