"""Statistics of a loaded dataset, in the vocabulary of the cards' ``stats`` field."""
from __future__ import annotations

from typing import Any, Dict

import torch

__all__ = ["compute_stats", "compare_stats"]


def compute_stats(obj: Any) -> Dict[str, Any]:
    """Compute the statistics that cards record for an object returned by ``load``."""
    from torch_geometric.data import Data, HeteroData, InMemoryDataset, TemporalData

    from graphkit.datasets.readers import KnowledgeGraph

    s: Dict[str, Any] = {}
    if isinstance(obj, dict):  # graph families
        for k, graphs in obj.items():
            s[f"{k}.num_graphs"] = len(graphs)
            s[f"{k}.num_nodes"] = sorted({int(g.num_nodes) for g in graphs})
        return s
    if isinstance(obj, list) and obj and isinstance(obj[0], Data):
        s["num_graphs"] = len(obj)
        return s
    if isinstance(obj, KnowledgeGraph):
        return {"num_entities": obj.num_entities, "num_relations": obj.num_relations,
                "num_train": int(obj.train.size(0)), "num_valid": int(obj.valid.size(0)),
                "num_test": int(obj.test.size(0))}
    if isinstance(obj, TemporalData):
        return {"num_events": int(obj.num_events), "num_nodes": int(torch.cat([obj.src, obj.dst]).unique().numel()),
                "t_min": int(obj.t.min()), "t_max": int(obj.t.max())}
    if type(obj).__name__ == "InteractionGraph":
        s = {"num_users": obj.num_users, "num_items": obj.num_items, "num_train": obj.num_train}
        if obj.test is not None:
            s["num_test"] = int(obj.test.size(1))
        if "social" in obj.meta:
            s["num_social"] = int(obj.meta["social"].size(1))
        return s
    if isinstance(obj, InMemoryDataset):
        data = obj._data
        if isinstance(data, HeteroData):
            for nt in data.node_types:
                s[f"{nt}.num_nodes"] = int(data[nt].num_nodes)
                for m in ("train_mask", "val_mask", "test_mask"):
                    if m in data[nt]:
                        s[f"{nt}.{m}"] = int(data[nt][m].sum())
            for et in data.edge_types:
                s[f"{'__'.join(et)}.num_edges"] = int(data[et].edge_index.size(1))
            return s
        if len(obj) == 1:
            d = obj[0]
            s["num_nodes"] = int(d.num_nodes)
            s["num_edges"] = int(d.edge_index.size(1))
            if d.x is not None:
                s["num_features"] = int(d.x.size(1))
            if d.y is not None and d.y.dtype == torch.long:
                s["num_classes"] = int(d.y.max()) + 1
            for m in ("train_mask", "val_mask", "test_mask"):
                if m in d:
                    s[m] = int(d[m].sum())
            return s
        s["num_graphs"] = len(obj)
        if isinstance(getattr(type(obj), "num_nodes", None), property):  # e.g. BitcoinOTC: one node set
            s["num_nodes"] = int(obj.num_nodes)
            s["num_edges_windowed"] = int(data.edge_index.size(1))
            return s
        s["num_nodes"] = int(data.num_nodes) if data.num_nodes is not None else None
        if data.edge_index is not None:
            s["num_edges"] = int(data.edge_index.size(1))
        if data.y is not None and data.y.dtype == torch.long and data.y.dim() == 1:
            s["num_classes"] = int(data.y.max()) + 1
        return s
    raise TypeError(f"no statistics for objects of type {type(obj).__name__}")


def compare_stats(expected: Dict[str, Any], actual: Dict[str, Any]) -> Dict[str, tuple]:
    """``{key: (expected, actual)}`` for every expected statistic that differs or is missing."""
    out = {}
    for k, v in expected.items():
        a = actual.get(k, "<missing>")
        if isinstance(v, float) or isinstance(a, float):
            same = isinstance(a, (int, float)) and abs(float(a) - float(v)) <= 1e-6 * max(1.0, abs(float(v)))
        else:
            same = a == v
        if not same:
            out[k] = (v, a)
    return out
