"""Evaluators: OGB-compatible name-keyed evaluators (torch implementations) and node
classification accuracy. Best-validation tracking over runs is
:class:`graphkit.engine.RunTracker`."""

from graphkit.evaluate.node import NodeClassificationEvaluator, accuracy
from graphkit.evaluate.ogb_style import (Evaluator, average_precision, list_evaluators,
                                         roc_auc)

__all__ = [
    "Evaluator",
    "NodeClassificationEvaluator",
    "accuracy",
    "average_precision",
    "list_evaluators",
    "roc_auc",
]
