r"""The name-keyed metric registry: :func:`get_metric` and :func:`list_metrics`.

A metric name is a lower-case base name, followed by ``@K`` for cut-off metrics
(``"accuracy"``, ``"macro_f1"``, ``"hits@50"``, ``"recall@20"``). :func:`get_metric` returns a
:class:`Metric`, a callable whose arguments depend on its :attr:`Metric.kind`:

================  =============================================  ===============================
kind              call                                           returns
================  =============================================  ===============================
``"label"``       ``metric(y_pred, y_true, mask=None)``          ``float``
``"link"``        ``metric(y_pred_pos, y_pred_neg)``             ``float``
``"ranking"``     ``metric(hits, num_relevant)``                 per-user ``(U,)`` tensor
                                                                 (``f1@K``: 0-dim tensor)
================  =============================================  ===============================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from graphkit.evaluate import classification, link, ranking, regression


@dataclass(frozen=True)
class _Entry:
    fn: Callable
    kind: str
    per_user: bool = False
    higher_is_better: bool = True


_REGISTRY: Dict[str, _Entry] = {
    # label: (y_pred, y_true, mask=None) -> float
    "accuracy": _Entry(classification.accuracy, "label"),
    "micro_f1": _Entry(classification.micro_f1, "label"),
    "macro_f1": _Entry(classification.macro_f1, "label"),
    "roc_auc": _Entry(classification.roc_auc_by_task, "label"),
    "ap": _Entry(classification.average_precision_by_task, "label"),
    "mae": _Entry(regression.mae, "label", higher_is_better=False),
    "rmse": _Entry(regression.rmse, "label", higher_is_better=False),
    # link: (y_pred_pos, y_pred_neg) -> float
    "mrr": _Entry(link.mrr, "link"),
    "hits@K": _Entry(link.hits_at_k, "link"),
    # ranking: (hits, num_relevant) -> per-user tensor
    "recall@K": _Entry(ranking.recall_at_k, "ranking", per_user=True),
    "ndcg@K": _Entry(ranking.ndcg_at_k, "ranking", per_user=True),
    "precision@K": _Entry(ranking.precision_at_k, "ranking", per_user=True),
    "hit@K": _Entry(ranking.hit_at_k, "ranking", per_user=True),
    "mrr@K": _Entry(ranking.mrr_at_k, "ranking", per_user=True),
    "map@K": _Entry(ranking.map_at_k, "ranking", per_user=True),
    "f1@K": _Entry(ranking.f1_at_k, "ranking"),
}

KINDS = ("label", "link", "ranking")


@dataclass(frozen=True)
class Metric:
    r"""A metric resolved by :func:`get_metric`; calling it calls :attr:`fn` with the cut-off
    :attr:`k` (if any) bound.

    Attributes:
        name (str): the full name, e.g. ``"recall@20"``.
        kind (str): ``"label"``, ``"link"`` or ``"ranking"`` (see :mod:`graphkit.evaluate`).
        fn (callable): the metric function, e.g. :func:`graphkit.evaluate.recall_at_k`.
        k (int, optional): the cut-off, for ``@K`` metrics.
        per_user (bool): ``True`` for ranking metrics returning one value per user, to be
            averaged over users.
        higher_is_better (bool): ``False`` for errors (``mae``, ``rmse``), ``True`` otherwise.
    """
    name: str
    kind: str
    fn: Callable
    k: Optional[int] = None
    per_user: bool = False
    higher_is_better: bool = True

    def __call__(self, *args, **kwargs):
        if self.k is not None:
            return self.fn(*args, k=self.k, **kwargs)
        return self.fn(*args, **kwargs)


def list_metrics(kind: Optional[str] = None) -> List[str]:
    r"""The metric names :func:`get_metric` accepts, ``@K`` marking a cut-off to fill in
    (``["accuracy", "ap", "f1@K", ...]``), optionally of one ``kind``."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"list_metrics: unknown kind {kind!r}; choose from {KINDS}")
    return sorted(key for key, entry in _REGISTRY.items() if kind in (None, entry.kind))


def get_metric(name: str) -> Metric:
    r"""The metric called ``name`` (see :func:`list_metrics`), e.g. ``get_metric("macro_f1")``
    or ``get_metric("recall@20")``. Raises :class:`ValueError` for an unknown name, a missing
    or unexpected cut-off and a cut-off that is not a positive integer."""
    if not isinstance(name, str):
        raise TypeError(f"get_metric: name must be a string (got {type(name).__name__})")
    base, sep, cut = name.partition("@")
    entry = _REGISTRY.get(base + "@K" if sep else base)
    if entry is None:
        if (base if sep else base + "@K") in _REGISTRY:
            raise ValueError(f"get_metric: {name!r} " + (f"takes no cut-off; use {base!r}" if sep
                             else f"needs a cut-off, e.g. '{base}@20'"))
        raise ValueError(f"get_metric: unknown metric {name!r}; available: "
                         f"{', '.join(list_metrics())}")
    if not sep:
        return Metric(name, entry.kind, entry.fn, None, entry.per_user, entry.higher_is_better)
    if not (cut.isascii() and cut.isdigit()) or int(cut) < 1:
        raise ValueError(f"get_metric: the cut-off of {name!r} must be a positive integer")
    k = int(cut)
    return Metric(f"{base}@{k}", entry.kind, entry.fn, k, entry.per_user, entry.higher_is_better)
