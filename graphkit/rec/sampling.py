"""Training samplers for implicit-feedback recommenders.

They live in :mod:`graphkit.loader.negative`; this module re-exports them so that
``from graphkit.rec.sampling import sample_bpr_triples`` keeps working.
"""
from graphkit.loader.negative import sample_bpr_triples, sample_negatives

__all__ = ["sample_bpr_triples", "sample_negatives"]
