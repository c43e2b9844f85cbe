"""OGB-style evaluator for Planetoid-style node classification (logits or labels, optional
masks); the metric itself is :func:`graphkit.evaluate.accuracy`."""
from __future__ import annotations

from typing import Any, Dict, Optional

from graphkit.evaluate.classification import accuracy

__all__ = ["NodeClassificationEvaluator", "accuracy"]


class NodeClassificationEvaluator:
    r"""OGB-style evaluator for single-label node classification on non-OGB datasets (Cora,
    CiteSeer, Coauthor, Amazon, ...): ``eval({"y_true": ..., "y_pred": ...})`` returns
    ``{"acc": float}`` in :math:`[0, 1]`, like ``Evaluator("ogbn-arxiv")``, and also takes
    logits and a ``"mask"``.

    Args:
        num_classes (int, optional): If given, labels and logit widths are checked against it.
    """

    def __init__(self, num_classes: Optional[int] = None) -> None:
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"NodeClassificationEvaluator: num_classes must be a positive int "
                             f"(got {num_classes!r})")
        self.num_classes = num_classes
        self.eval_metric = "acc"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_classes={self.num_classes})"

    @property
    def expected_input_format(self) -> str:
        return ("==== Expected input format of NodeClassificationEvaluator\n"
                "{'y_true': y_true, 'y_pred': y_pred[, 'mask': mask]}\n"
                "- y_true: labels, shape (N,) or (N, 1)\n"
                "- y_pred: predicted labels (N,) / (N, 1), or scores/logits (N, C)\n"
                "- mask: optional boolean mask (N,) or index vector\n")

    @property
    def expected_output_format(self) -> str:
        return ("==== Expected output format of NodeClassificationEvaluator\n"
                "{'acc': acc}\n- acc (float): accuracy in [0, 1]\n")

    def eval(self, input_dict: Dict[str, Any]) -> Dict[str, float]:
        for key in ("y_true", "y_pred"):
            if key not in input_dict:
                raise KeyError(f"NodeClassificationEvaluator.eval: missing key '{key}'")
        return {"acc": accuracy(input_dict["y_pred"], input_dict["y_true"],
                                input_dict.get("mask"), self.num_classes)}
