"""Name-keyed evaluators with the interface and numbers of ``ogb``'s ``Evaluator`` classes,
implemented once in torch (numpy inputs are converted at the boundary). The metrics are the
functions of :mod:`graphkit.evaluate.classification` and :mod:`graphkit.evaluate.link`."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from graphkit.evaluate._checks import as_tensor as _as_tensor
from graphkit.evaluate._checks import check_finite
from graphkit.evaluate.classification import average_precision, mean_over_tasks, roc_auc
from graphkit.evaluate.link import hits_at_k, link_ranks

__all__ = ["Evaluator", "average_precision", "list_evaluators", "roc_auc"]

# name -> (metric, number of tasks); the values of ogb 1.3.6's master.csv files.
_NODE = {
    "ogbn-proteins": ("rocauc", 112), "ogbn-products": ("acc", 1), "ogbn-arxiv": ("acc", 1),
    "ogbn-mag": ("acc", 1), "ogbn-papers100M": ("acc", 1),
}
_LINK = {
    "ogbl-ppa": ("hits@100", None), "ogbl-collab": ("hits@50", None),
    "ogbl-citation2": ("mrr", None), "ogbl-wikikg2": ("mrr", None), "ogbl-ddi": ("hits@20", None),
    "ogbl-biokg": ("mrr", None), "ogbl-vessel": ("rocauc", None),
}
_GRAPH = {
    "ogbg-molbace": ("rocauc", 1), "ogbg-molbbbp": ("rocauc", 1), "ogbg-molclintox": ("rocauc", 2),
    "ogbg-molmuv": ("ap", 17), "ogbg-molpcba": ("ap", 128), "ogbg-molsider": ("rocauc", 27),
    "ogbg-moltox21": ("rocauc", 12), "ogbg-moltoxcast": ("rocauc", 617),
    "ogbg-molhiv": ("rocauc", 1), "ogbg-molesol": ("rmse", 1), "ogbg-molfreesolv": ("rmse", 1),
    "ogbg-mollipo": ("rmse", 1), "ogbg-molchembl": ("rocauc", 1310), "ogbg-ppa": ("acc", 1),
    "ogbg-code2": ("F1", 1),
}

ArrayLike = Union[Tensor, np.ndarray]


def list_evaluators() -> List[str]:
    r"""All names :class:`Evaluator` accepts."""
    return sorted(list(_NODE) + list(_LINK) + list(_GRAPH))


class Evaluator:
    r"""An evaluator for an Open Graph Benchmark dataset, chosen by name (``"ogbn-arxiv"``,
    ``"ogbl-collab"``, ``"ogbg-molhiv"``, ...; see :func:`list_evaluators`).

    It takes the same ``input_dict`` and returns the same keys and numbers as
    ``ogb.nodeproppred.Evaluator``, ``ogb.linkproppred.Evaluator`` and
    ``ogb.graphproppred.Evaluator`` (ogb 1.3.6), with a single torch implementation of every
    metric: numpy arrays are converted to tensors at the boundary, so there is no separate
    numpy path (ogb's numpy MRR path calls ``sum(dim=1)`` on arrays and fails). Tensors may
    live on any device. Metrics:

    - ``acc``: mean over tasks of the accuracy on the labelled (non-NaN) entries.
    - ``rocauc`` / ``ap``: mean over the tasks having both a positive and a negative label
      (NaN = unlabelled); ties in scores count one half (ROC-AUC) / share a threshold (AP).
    - ``rmse``: mean over tasks of the root mean squared error on labelled entries.
    - ``hits@K`` (link): fraction of positive scores strictly above the K-th largest negative
      score (1.0 when there are fewer than K negatives).
    - ``mrr`` (link): per-positive rank against its own row of negatives, ties counted as the
      mean of the optimistic and pessimistic rank; returns per-edge ``mrr_list`` and
      ``hits@{1,3,10}_list`` (average them, as with ogb).
    - ``F1`` (``ogbg-code2``): per-sample precision/recall/F1 of predicted token sets,
      averaged.

    Predictions must be finite where they are scored (labelled entries; for the ranking
    metrics ``hits@K`` and ``mrr`` only NaN is rejected, :math:`\pm\infty` being ordered): a
    NaN raises :class:`ValueError` naming the key and the row, as ``ogb`` (through
    scikit-learn) does for ROC-AUC and AP, instead of ranking it first.

    Read :attr:`expected_input_format` / :attr:`expected_output_format` for the exact
    shapes. For runs, report the test score at the best validation score with
    :class:`graphkit.engine.RunTracker`.

    Args:
        name (str): The dataset name.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Evaluator: name must be a string (got {type(name).__name__})")
        for task, table in (("node", _NODE), ("link", _LINK), ("graph", _GRAPH)):
            if name in table:
                self.task = task
                self.eval_metric, self.num_tasks = table[name]
                break
        else:
            raise ValueError(f"Evaluator: unknown dataset name {name!r}; available: "
                             f"{', '.join(list_evaluators())}")
        self.name = name
        self.K = int(self.eval_metric.split("@")[1]) if "hits@" in self.eval_metric else None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, metric={self.eval_metric!r})"

    # ------------------------------------------------------------------ formats
    @property
    def expected_input_format(self) -> str:
        head = f"==== Expected input format of Evaluator for {self.name}\n"
        m = self.eval_metric
        if self.task in ("node", "graph") and m != "F1":
            shape = f"(num_{'nodes' if self.task == 'node' else 'graphs'}, {self.num_tasks})"
            kind = {"acc": "predicted class labels", "rocauc": "predicted scores/logits",
                    "ap": "predicted scores/logits", "rmse": "predicted values"}[m]
            return (head + "{'y_true': y_true, 'y_pred': y_pred}\n"
                    f"- y_true: numpy ndarray or torch tensor of shape {shape}; NaN marks "
                    "unlabelled entries (float inputs)\n"
                    f"- y_pred: numpy ndarray or torch tensor of shape {shape}: {kind}\n")
        if m == "F1":
            return (head + "{'seq_ref': seq_ref, 'seq_pred': seq_pred}\n"
                    "- seq_ref: a list of lists of tokens (ground truth)\n"
                    "- seq_pred: a list of lists of tokens (prediction), same length\n")
        if m == "mrr":
            return (head + "{'y_pred_pos': y_pred_pos, 'y_pred_neg': y_pred_neg}\n"
                    "- y_pred_pos: numpy ndarray or torch tensor of shape (num_edges,)\n"
                    "- y_pred_neg: numpy ndarray or torch tensor of shape (num_edges, "
                    "num_neg): y_pred_pos[i] is ranked among y_pred_neg[i]\n")
        return (head + "{'y_pred_pos': y_pred_pos, 'y_pred_neg': y_pred_neg}\n"
                "- y_pred_pos: numpy ndarray or torch tensor of shape (num_edges,)\n"
                "- y_pred_neg: numpy ndarray or torch tensor of shape (num_neg_edges,)\n")

    @property
    def expected_output_format(self) -> str:
        head = f"==== Expected output format of Evaluator for {self.name}\n"
        m = self.eval_metric
        if m == "mrr":
            return (head + "{'hits@1_list': ..., 'hits@3_list': ..., 'hits@10_list': ..., "
                    "'mrr_list': ...}\n- one value per positive edge (a tensor, or a numpy "
                    "array if the input was numpy); average them for the final score\n")
        if m == "F1":
            return head + "{'precision': float, 'recall': float, 'F1': float}\n"
        return head + f"{{'{m}': float}}\n"

    # ------------------------------------------------------------------ eval
    def eval(self, input_dict: Dict[str, Any]) -> Dict[str, Any]:
        r"""Evaluates ``input_dict`` (see :attr:`expected_input_format`)."""
        if not isinstance(input_dict, dict):
            raise TypeError(f"Evaluator({self.name!r}).eval: expected a dict "
                            f"(got {type(input_dict).__name__})")
        m = self.eval_metric
        if m == "F1":
            return self._eval_f1(input_dict)
        if self.task == "link":
            return self._eval_link(input_dict)
        y_true, y_pred = self._parse_node_graph(input_dict)
        if m == "acc":
            return {"acc": self._per_task(y_true, y_pred, self._acc)}
        if m == "rmse":
            return {"rmse": self._per_task(y_true, y_pred, self._rmse)}
        fn = roc_auc if m == "rocauc" else average_precision
        try:
            return {m: mean_over_tasks(fn, y_true, y_pred, f"Evaluator({self.name!r}).eval")}
        except ValueError as e:
            if "no task has both" in str(e):
                raise ValueError(f"Evaluator({self.name!r}): no task has both positive and "
                                 f"negative labels; cannot compute {m}") from None
            raise

    def _parse_node_graph(self, d: Dict[str, Any]) -> Tuple[Tensor, Tensor]:
        where = f"Evaluator({self.name!r}).eval"
        for key in ("y_true", "y_pred"):
            if key not in d:
                raise KeyError(f"{where}: missing key '{key}'")
        y_true, _ = _as_tensor(d["y_true"], "y_true", where)
        y_pred, _ = _as_tensor(d["y_pred"], "y_pred", where)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{where}: y_true {tuple(y_true.shape)} and y_pred "
                             f"{tuple(y_pred.shape)} must have the same shape")
        if y_true.dim() != 2:
            raise ValueError(f"{where}: y_true and y_pred must be 2-dimensional "
                             f"(num_samples, num_tasks), got {y_true.dim()} dimensions")
        if self.num_tasks is not None and y_true.size(1) != self.num_tasks:
            raise ValueError(f"{where}: {self.name} has {self.num_tasks} tasks but "
                             f"{y_true.size(1)} columns were given")
        if y_true.size(0) == 0:
            raise ValueError(f"{where}: empty input")
        y_pred = y_pred.to(y_true.device)
        # like ogb, only labelled (non-NaN) entries are scored, so only they are checked
        check_finite(y_pred, "y_pred", where, only=y_true == y_true)
        return y_true, y_pred

    @staticmethod
    def _per_task(y_true: Tensor, y_pred: Tensor, fn) -> float:
        values = []
        for i in range(y_true.size(1)):
            t, p = y_true[:, i], y_pred[:, i]
            labelled = t == t
            values.append(fn(t[labelled], p[labelled]))
        return sum(values) / len(values)

    @staticmethod
    def _acc(t: Tensor, p: Tensor) -> float:
        if t.numel() == 0:
            return float("nan")
        return float((t == p).sum()) / t.numel()

    @staticmethod
    def _rmse(t: Tensor, p: Tensor) -> float:
        if t.numel() == 0:
            return float("nan")
        diff = t.to(torch.float64) - p.to(torch.float64)
        return float(diff.pow(2).mean().sqrt())

    def _eval_link(self, d: Dict[str, Any]) -> Dict[str, Any]:
        where = f"Evaluator({self.name!r}).eval"
        for key in ("y_pred_pos", "y_pred_neg"):
            if key not in d:
                raise KeyError(f"{where}: missing key '{key}'")
        pos, pos_np = _as_tensor(d["y_pred_pos"], "y_pred_pos", where)
        neg, neg_np = _as_tensor(d["y_pred_neg"], "y_pred_neg", where)
        pos = pos.to(neg.device)
        if pos.dim() != 1:
            raise ValueError(f"{where}: y_pred_pos must be 1-dimensional, got {pos.dim()} "
                             "dimensions")
        # a NaN score compares as neither higher nor lower than anything: reject it here
        check_finite(pos, "y_pred_pos", where, allow_inf=True)
        check_finite(neg, "y_pred_neg", where, allow_inf=True)
        m = self.eval_metric
        if m == "mrr":
            rank = link_ranks(pos, neg, where)
            out = {"hits@1_list": (rank <= 1).to(torch.float),
                   "hits@3_list": (rank <= 3).to(torch.float),
                   "hits@10_list": (rank <= 10).to(torch.float),
                   "mrr_list": 1.0 / rank}
            if pos_np and neg_np:
                out = {k: v.cpu().numpy() for k, v in out.items()}
            return out
        if neg.dim() != 1:
            raise ValueError(f"{where}: y_pred_neg must be 1-dimensional, got {neg.dim()} "
                             "dimensions")
        if pos.numel() == 0:
            raise ValueError(f"{where}: y_pred_pos is empty")
        if m == "rocauc":
            check_finite(pos, "y_pred_pos", where)
            check_finite(neg, "y_pred_neg", where)
            y_true = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())])
            return {"rocauc": roc_auc(y_true, torch.cat([pos.cpu(), neg.cpu()]))}
        return {m: hits_at_k(pos, neg, self.K)}

    def _eval_f1(self, d: Dict[str, Any]) -> Dict[str, float]:
        where = f"Evaluator({self.name!r}).eval"
        for key in ("seq_ref", "seq_pred"):
            if key not in d:
                raise KeyError(f"{where}: missing key '{key}'")
            if not isinstance(d[key], list):
                raise TypeError(f"{where}: '{key}' must be a list of token lists")
        ref, pred = d["seq_ref"], d["seq_pred"]
        if len(ref) != len(pred):
            raise ValueError(f"{where}: seq_ref has {len(ref)} entries, seq_pred {len(pred)}")
        if not ref:
            raise ValueError(f"{where}: empty input")
        ps, rs, fs = [], [], []
        for r, p in zip(ref, pred):
            r, p = set(r), set(p)
            tp = len(r & p)
            prec = tp / len(p) if p else 0.0
            rec = tp / len(r) if r else 0.0
            ps.append(prec)
            rs.append(rec)
            fs.append(2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0)
        n = len(ref)
        return {"precision": sum(ps) / n, "recall": sum(rs) / n, "F1": sum(fs) / n}
