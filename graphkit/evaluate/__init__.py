r"""Metrics, by name: the one place graphkit computes them.

**By name.** :func:`get_metric` turns a name into a callable :class:`Metric`;
:func:`list_metrics` lists the names (``@K`` marks a cut-off to fill in)::

    from graphkit.evaluate import get_metric
    acc = get_metric("accuracy")(logits, data.y, data.test_mask)
    f1 = get_metric("macro_f1")(logits, data.y, data.test_mask)
    r20 = get_metric("recall@20")(hits, num_relevant).mean()

Each metric has a *kind*, which fixes how it is called:

- ``"label"`` -- ``metric(y_pred, y_true, mask=None) -> float``: ``accuracy``, ``micro_f1``,
  ``macro_f1`` (single-label: labels or logits :math:`(N, C)`; multi-label: a 0/1
  :math:`(N, C)` ``y_true`` and 0/1 predictions or logits, positive above 0), ``roc_auc``,
  ``ap`` (scores :math:`(N,)` or :math:`(N, T)`, 0/1 labels with NaN = unlabelled, averaged
  over tasks as OGB does). ``mask`` is a boolean mask or an index vector of rows.
- ``"link"`` -- ``metric(y_pred_pos, y_pred_neg) -> float``: ``mrr`` (negatives
  :math:`(E, Q)`, one row per positive) and ``hits@K`` (shared negatives :math:`(Q,)`, or
  :math:`(E, Q)`), in OGB's conventions.
- ``"ranking"`` -- ``metric(hits, num_relevant)`` on the top-K hit matrix of a full ranking
  (``hits[u, i]``: is the item user ``u`` ranks at position ``i + 1`` relevant;
  ``num_relevant[u]``: its number of relevant items): ``recall@K``, ``ndcg@K``,
  ``precision@K``, ``hit@K``, ``mrr@K``, ``map@K`` return per-user values to average over
  users; ``f1@K`` returns the F1 of the averaged precision and recall.
  :func:`graphkit.rec.full_ranking` ranks all items and dispatches to these by name.

The functions behind the names are importable too (:func:`accuracy`, :func:`macro_f1`,
:func:`recall_at_k`, ...), each with its formula in its docstring. Every metric rejects NaN
predictions with a :class:`ValueError` naming the argument and the row (and infinite ones
where the value, not only the order, matters).

**OGB evaluators.** :class:`Evaluator` (``Evaluator("ogbg-molhiv")``, see
:func:`list_evaluators`) takes ``ogb``'s ``input_dict`` and returns its keys and numbers,
computed with the functions above; :class:`NodeClassificationEvaluator` does the same for
Planetoid-style accuracy. Best-validation tracking over runs is
:class:`graphkit.engine.RunTracker`.

Importing this package imports torch and nothing heavier.
"""

from graphkit.evaluate.classification import (
                                              accuracy,
                                              average_precision,
                                              average_precision_by_task,
                                              macro_f1,
                                              mean_over_tasks,
                                              micro_f1,
                                              roc_auc,
                                              roc_auc_by_task,
)
from graphkit.evaluate.link import hits_at_k, link_ranks, mrr
from graphkit.evaluate.node import NodeClassificationEvaluator
from graphkit.evaluate.ogb_style import Evaluator, list_evaluators
from graphkit.evaluate.ranking import (
                                              RANKING_METRICS,
                                              f1_at_k,
                                              f1_from_precision_recall,
                                              hit_at_k,
                                              map_at_k,
                                              mrr_at_k,
                                              ndcg_at_k,
                                              precision_at_k,
                                              recall_at_k,
)
from graphkit.evaluate.registry import Metric, get_metric, list_metrics

__all__ = [
    "Evaluator",
    "Metric",
    "NodeClassificationEvaluator",
    "RANKING_METRICS",
    "accuracy",
    "average_precision",
    "average_precision_by_task",
    "f1_at_k",
    "f1_from_precision_recall",
    "get_metric",
    "hit_at_k",
    "hits_at_k",
    "link_ranks",
    "list_evaluators",
    "list_metrics",
    "macro_f1",
    "map_at_k",
    "mean_over_tasks",
    "micro_f1",
    "mrr",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "roc_auc",
    "roc_auc_by_task",
]
