r"""Heterogeneous-graph pre-computation and training helpers.

* :func:`rphgnn_precompute` — RpHGNN's one-time relation-wise neighbour collection with
  even-odd propagation and random-projection squashing on any PyG ``HeteroData``; returns plain
  tensors (:class:`RandomProjectionFeatures`) with its wall time and peak memory;
* :func:`hgb_split` — HGB's training/validation split and the full test labels;
* :func:`train_target_batches` — a mini-batch loop over target nodes on ``engine.loops.fit``.
"""
from __future__ import annotations

from graphkit.hetero.hgb import HGBSplit, hgb_split, read_hgb_labels, stratified_split
from graphkit.hetero.precompute import (
    RandomProjectionFeatures,
    hetero_relations,
    rphgnn_precompute,
    sparse_random_projection,
)
from graphkit.hetero.train import evaluate_target, target_loss, train_target_batches

__all__ = ["RandomProjectionFeatures", "rphgnn_precompute", "hetero_relations",
           "sparse_random_projection", "HGBSplit", "hgb_split", "read_hgb_labels",
           "stratified_split", "train_target_batches", "evaluate_target", "target_loss"]
