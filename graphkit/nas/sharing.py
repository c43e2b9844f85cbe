r"""Constrained parameter sharing of Auto-GNN (Zhou et al., 2019, https://arxiv.org/abs/1909.03184).

A child architecture inherits the weights of layer :math:`l` only from an *ancestor* (the
chain of best architectures it descends from, newest first) whose layer :math:`l` is
*homogeneous* with its own: the same operator, the same attention function and activation
function, and trainable tensors of identical names and shapes. The operator's weights and the
residual projection (``skip``) are checked and inherited as separate parts, so switching a
residual connection on or off keeps the operator's trained weights. Parts without a homogeneous
ancestor start from a fresh initialisation. A child that inherited anything is fine-tuned
briefly instead of trained from scratch.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["homogeneous", "AncestorWeights", "inherit"]

LayerState = Dict[str, Tensor]


def _shapes(state: Mapping[str, Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def homogeneous(layer_a: Mapping[str, Any], state_a: Mapping[str, Tensor],
                layer_b: Mapping[str, Any], state_b: Mapping[str, Tensor]) -> bool:
    """Whether two layers (their choice dicts and :meth:`AutoGNNModel.layer_parameters`)
    may share weights: same operator, attention and activation, same tensor names and shapes."""
    return (layer_a["operator"] == layer_b["operator"]
            and layer_a["attention"] == layer_b["attention"]
            and layer_a["activation"] == layer_b["activation"]
            and _shapes(state_a) == _shapes(state_b))


class AncestorWeights:
    """The trained layer weights of the last ``max_ancestors`` best architectures, newest
    first (kept on the CPU; part of the search checkpoint)."""

    def __init__(self, max_ancestors: int = 10) -> None:
        if isinstance(max_ancestors, bool) or not isinstance(max_ancestors, int) \
                or max_ancestors < 1:
            raise ValueError(f"AncestorWeights: max_ancestors must be an int >= 1 "
                             f"(got {max_ancestors!r})")
        self.max_ancestors = max_ancestors
        self.entries: List[Tuple[Dict[str, Any], List[LayerState]]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def push(self, arch: Mapping[str, Any], model: torch.nn.Module) -> None:
        """Record a new best architecture and its trained weights."""
        layers = [{k: v.detach().to("cpu", copy=True) for k, v in
                   model.layer_parameters(i).items()} for i in range(len(model.convs))]
        self.entries.insert(0, (dict(arch), layers))
        del self.entries[self.max_ancestors:]

    def state_dict(self) -> Dict[str, Any]:
        return {"max_ancestors": self.max_ancestors, "entries": self.entries}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.max_ancestors = int(state["max_ancestors"])
        self.entries = list(state["entries"])


def _part(state: Mapping[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def inherit(model: torch.nn.Module, ancestors: AncestorWeights) -> List[Optional[int]]:
    """Load into every layer of ``model`` the weights of the newest ancestor whose same layer
    is homogeneous, the operator (``conv.*``) and a residual projection (``skip.*``, when both
    have one) as separate parts. Returns, per layer, the index of the ancestor its operator
    weights came from (0 = the parent) or ``None`` when they were left freshly initialised."""
    layers: Sequence[Mapping[str, Any]] = model.architecture["layers"]
    sources: List[Optional[int]] = []
    for i, layer in enumerate(layers):
        own = model.layer_parameters(i)
        found: Dict[str, Optional[int]] = {}
        for prefix in ("conv.", "skip."):
            mine = _part(own, prefix)
            found[prefix] = None
            if not mine:
                continue
            for j, (arch, states) in enumerate(ancestors.entries):
                if i >= len(states):
                    continue
                theirs = _part(states[i], prefix)
                if homogeneous(layer, mine, arch["layers"][i], theirs):
                    model.load_layer(i, {**model.layer_parameters(i), **theirs})
                    found[prefix] = j
                    break
        sources.append(found["conv."])
    return sources
