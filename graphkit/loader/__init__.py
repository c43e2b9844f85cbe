r"""Device-resident loaders: index batches and samplers that live on the model's device.

* :class:`IndexLoader`: seeded, shuffled mini-batches of indices (or of tensor rows) drawn on
  the device, sharded over ``torch.distributed`` ranks; no worker processes, no per-item collate;
* :class:`BPRLoader`, :func:`sample_bpr_triples`, :func:`sample_negatives`: the BPR and negative
  samplers of the recommenders (:mod:`graphkit.rec.sampling` re-exports the two functions);
* :class:`NeighborSampler`, :class:`NeighborLoader`: uniform multi-hop neighbour sampling in
  plain torch, with the batch format of PyG's ``NeighborLoader``;
* :class:`TemporalBatcher`: chronological event batches of a PyG ``TemporalData``;
* :class:`Prefetcher`, :func:`move_to`: pinned-memory, one-ahead copies to a CUDA device (a
  pass-through on CPU).

Names are imported on first use.
"""
from __future__ import annotations

from graphkit._lazy import lazy_exports

_EXPORTS = {
    "IndexLoader": "index",
    "derive_seed": "index",
    "BPRLoader": "negative",
    "sample_bpr_triples": "negative",
    "sample_negatives": "negative",
    "NeighborSampler": "neighbor",
    "NeighborLoader": "neighbor",
    "SamplerOutput": "neighbor",
    "TemporalBatcher": "temporal",
    "Prefetcher": "prefetch",
    "move_to": "prefetch",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
