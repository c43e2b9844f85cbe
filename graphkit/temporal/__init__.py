r"""Temporal interaction graphs: N-caches (:class:`NCache`), event validation and a CSV reader,
the chronological transductive / inductive split, negatives drawn at random or from history,
and a leak-free train / evaluate loop for stateful link predictors (NAT, TGN)."""
from graphkit.temporal.data import (
    NegativeSampler,
    TemporalSplit,
    check_event_batch,
    check_events,
    chronological_split,
    read_events_csv,
)
from graphkit.temporal.ncache import NCache
from graphkit.temporal.train import EventStream, fit_link_predictor, link_metrics, make_adam, score_events, train_epoch

__all__ = ["NCache", "NegativeSampler", "TemporalSplit", "check_events", "check_event_batch",
           "chronological_split",
           "read_events_csv", "EventStream", "fit_link_predictor", "link_metrics", "score_events",
           "train_epoch", "make_adam"]
