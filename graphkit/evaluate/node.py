"""Accuracy for Planetoid-style node classification (logits or labels, optional masks)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]


def _tensor(value: Any, name: str, where: str) -> Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Tensor):
        return value
    raise TypeError(f"{where}: '{name}' must be a torch tensor or numpy array "
                    f"(got {type(value).__name__})")


def accuracy(y_pred: ArrayLike, y_true: ArrayLike, mask: Optional[ArrayLike] = None,
             num_classes: Optional[int] = None) -> float:
    r"""Fraction of correctly classified nodes.

    Args:
        y_pred: Predicted labels :math:`(N,)` or scores/logits :math:`(N, C)` (arg-max taken).
        y_true: True labels :math:`(N,)` (or :math:`(N, 1)`, as OGB stores them).
        mask: Optional boolean mask :math:`(N,)` or index vector selecting the nodes to score.
        num_classes: If given, labels must lie in ``[0, num_classes)``.

    Raises :class:`ValueError` for mismatched sizes, labels out of range and empty selections.
    """
    where = "accuracy"
    y_pred = _tensor(y_pred, "y_pred", where)
    y_true = _tensor(y_true, "y_true", where)
    if y_true.dim() == 2 and y_true.size(1) == 1:
        y_true = y_true.view(-1)
    if y_true.dim() != 1:
        raise ValueError(f"{where}: y_true must have shape (N,) or (N, 1), got "
                         f"{tuple(y_true.shape)}")
    if y_pred.dim() == 2 and y_pred.size(1) == 1 and not y_pred.is_floating_point():
        y_pred = y_pred.view(-1)
    if y_pred.size(0) != y_true.size(0):
        raise ValueError(f"{where}: y_pred has {y_pred.size(0)} rows but y_true has "
                         f"{y_true.size(0)} labels")
    if y_pred.dim() == 2:
        if num_classes is not None and y_pred.size(1) != num_classes:
            raise ValueError(f"{where}: y_pred has {y_pred.size(1)} columns but "
                             f"num_classes={num_classes}")
        if y_pred.is_floating_point() and not torch.isfinite(y_pred).all():
            raise ValueError(f"{where}: y_pred contains NaN or infinite scores")
        num_classes = y_pred.size(1) if num_classes is None else num_classes
        y_pred = y_pred.argmax(dim=-1)
    elif y_pred.dim() != 1:
        raise ValueError(f"{where}: y_pred must have shape (N,) or (N, C), got "
                         f"{tuple(y_pred.shape)}")
    y_pred = y_pred.to(y_true.device)
    if mask is not None:
        mask = _tensor(mask, "mask", where).to(y_true.device)
        if mask.dtype == torch.bool:
            if mask.numel() != y_true.size(0):
                raise ValueError(f"{where}: boolean mask has {mask.numel()} entries for "
                                 f"{y_true.size(0)} nodes")
        elif mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= y_true.size(0)):
            raise ValueError(f"{where}: mask indices must lie in [0, {y_true.size(0)})")
        y_pred, y_true = y_pred[mask], y_true[mask]
    if y_true.numel() == 0:
        raise ValueError(f"{where}: no nodes selected (empty mask or empty input)")
    if num_classes is not None:
        lo, hi = int(y_true.min()), int(y_true.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{where}: labels must lie in [0, {num_classes}), found "
                             f"{lo if lo < 0 else hi}")
    return float((y_pred == y_true).sum()) / y_true.numel()


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
