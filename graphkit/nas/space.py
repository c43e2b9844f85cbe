r"""The Auto-GNN search space: a registry of named choices per component class of a layer.

An architecture is a plain JSON-able dict::

    {"layers": [{"operator": "autognn", "attention": "gat", "heads": 8, "hidden": 64,
                 "aggregation": "sum", "activation": "elu", "skip": "none"},
                {...}]}

holding the *names* of the chosen values; the :class:`SearchSpace` maps names to values. The
controllers only ever see names, so a new choice (say, a user's own layer) is added with
:meth:`SearchSpace.add_choice` and is searched without touching any controller code.

Component classes the model builder reads:

* ``operator``: a builder ``f(in_channels, out_channels, *, heads, attention, aggregation,
  last) -> Module`` whose module is called as ``module(x, edge_index)`` and returns
  ``out_channels`` features (``aggregation`` is a factory ``channels -> str | Aggregation``;
  ``last`` is true for the output layer, where heads are averaged);
* ``attention``: a name understood by the operators that use one (:data:`ATTENTIONS`);
* ``heads``, ``hidden``: positive ints (``hidden`` is the layer's output width, ignored on the
  last layer, whose width is the number of classes);
* ``aggregation``: ``"sum"``/``"mean"``/``"max"`` or a factory ``channels -> Aggregation``;
* ``activation``: a callable on tensors (not applied after the last layer);
* ``skip``: ``"none"`` or ``"residual"`` (add a linear projection of the layer's input).
"""
from __future__ import annotations

import copy
import random
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

__all__ = ["SearchSpace", "default_search_space", "REQUIRED_COMPONENTS"]

ChoiceName = Union[str, int]
#: component classes the model builder needs in every layer
REQUIRED_COMPONENTS = ("operator", "attention", "heads", "hidden", "aggregation", "activation",
                       "skip")


class SearchSpace:
    r"""Named choices per component class, shared by every layer of a fixed-depth GNN.

    Args:
        num_layers (int): number of message-passing layers. (default: :obj:`2`)
        components (Mapping[str, Mapping[name, value]], optional): initial choices per component
            class, in order. (default: empty)

    Example::

        space = default_search_space()
        space.add_choice("operator", "my_layer", lambda i, o, **kw: MyConv(i, o))
    """

    def __init__(self, num_layers: int = 2,
                 components: Optional[Mapping[str, Mapping[ChoiceName, Any]]] = None) -> None:
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"SearchSpace: num_layers must be an int >= 1 (got {num_layers!r})")
        self.num_layers = num_layers
        self.components: Dict[str, Dict[ChoiceName, Any]] = {}
        for comp, choices in (components or {}).items():
            for name, value in choices.items():
                self.add_choice(comp, name, value)

    # -- registry ------------------------------------------------------------------------------
    def add_choice(self, component: str, name: ChoiceName, value: Any = None) -> "SearchSpace":
        """Register choice ``name`` (a string or an int) of ``component`` with its ``value``
        (defaults to the name itself, e.g. for ``heads``). Returns ``self``."""
        if not isinstance(component, str) or not component:
            raise ValueError(f"SearchSpace: component class must be a non-empty string "
                             f"(got {component!r})")
        if isinstance(name, bool) or not isinstance(name, (str, int)) or name == "":
            raise ValueError(f"SearchSpace: choice names of {component!r} must be non-empty "
                             f"strings or ints (got {name!r})")
        choices = self.components.setdefault(component, {})
        if name in choices:
            raise ValueError(f"SearchSpace: {component!r} already has a choice {name!r}")
        choices[name] = name if value is None else value
        return self

    def remove_choice(self, component: str, name: ChoiceName) -> "SearchSpace":
        self._check_component(component)
        if name not in self.components[component]:
            raise ValueError(f"SearchSpace: {component!r} has no choice {name!r}")
        del self.components[component][name]
        return self

    def choices(self, component: str) -> List[ChoiceName]:
        """The choice names of ``component``, in registration order."""
        self._check_component(component)
        return list(self.components[component])

    def value(self, component: str, name: ChoiceName) -> Any:
        self._check_component(component)
        try:
            return self.components[component][name]
        except KeyError:
            raise ValueError(f"SearchSpace: {component!r} has no choice {name!r} (choices: "
                             f"{', '.join(map(str, self.components[component]))})") from None

    @property
    def component_names(self) -> List[str]:
        return list(self.components)

    def _check_component(self, component: str) -> None:
        if component not in self.components:
            raise ValueError(f"SearchSpace: no component class {component!r} (has "
                             f"{', '.join(self.components) or 'none'})")

    def copy(self) -> "SearchSpace":
        out = SearchSpace(self.num_layers)
        out.components = {c: dict(v) for c, v in self.components.items()}
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{c}={len(v)}" for c, v in self.components.items())
        return f"{self.__class__.__name__}(num_layers={self.num_layers}, {sizes})"

    # -- checks and sampling -------------------------------------------------------------------
    def check(self) -> None:
        """Raise a :class:`ValueError` naming what is missing: no components, a required
        component class absent, or a component without choices."""
        if not self.components:
            raise ValueError("SearchSpace: the search space is empty (no component classes); "
                             "start from default_search_space() or add choices with add_choice")
        missing = [c for c in REQUIRED_COMPONENTS if c not in self.components]
        if missing:
            raise ValueError(f"SearchSpace: component classes {missing} are missing (every "
                             f"layer needs {', '.join(REQUIRED_COMPONENTS)})")
        empty = [c for c, v in self.components.items() if not v]
        if empty:
            raise ValueError(f"SearchSpace: component classes {empty} have no choices")

    def size(self) -> int:
        """Number of distinct architectures (product over layers and components)."""
        n = 1
        for v in self.components.values():
            n *= len(v) ** self.num_layers
        return n

    def sample(self, rng: random.Random) -> Dict[str, Any]:
        """A uniformly random architecture."""
        self.check()
        return {"layers": [{c: rng.choice(list(v)) for c, v in self.components.items()}
                           for _ in range(self.num_layers)]}

    def validate(self, arch: Mapping[str, Any]) -> Dict[str, Any]:
        """A normalised copy of ``arch`` or a :class:`ValueError` naming the bad layer/part."""
        self.check()
        if not isinstance(arch, Mapping) or not isinstance(arch.get("layers"), Sequence):
            raise ValueError("architecture must be a dict with a 'layers' list")
        layers = arch["layers"]
        if len(layers) != self.num_layers:
            raise ValueError(f"architecture has {len(layers)} layers, the search space "
                             f"{self.num_layers}")
        out = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, Mapping):
                raise ValueError(f"architecture layer {i} must be a dict")
            unknown = set(layer) - set(self.components)
            if unknown:
                raise ValueError(f"architecture layer {i}: unknown component classes "
                                 f"{sorted(unknown)}")
            row = {}
            for comp, choices in self.components.items():
                if comp not in layer:
                    raise ValueError(f"architecture layer {i}: no {comp!r}")
                if layer[comp] not in choices:
                    raise ValueError(f"architecture layer {i}: {comp}={layer[comp]!r} is not a "
                                     f"choice of the search space ({', '.join(map(str, choices))})")
                row[comp] = layer[comp]
            out.append(row)
        return {**copy.deepcopy({k: v for k, v in arch.items() if k != "layers"}),
                "layers": out}


def arch_key(arch: Mapping[str, Any]) -> str:
    """A canonical string of an architecture's layers (for de-duplication)."""
    import json

    return json.dumps(arch["layers"], sort_keys=True)


# ----------------------------------------------------------------------------------------------
# Default choices
# ----------------------------------------------------------------------------------------------
def _autognn(in_channels: int, out_channels: int, *, heads: int, attention: str,
             aggregation: Callable, last: bool, **_: Any):
    from graphkit.nas.conv import AutoGNNConv

    if last:
        return AutoGNNConv(in_channels, out_channels, heads, attention, aggregation(
            heads * out_channels), concat=False)
    if out_channels % heads:
        raise ValueError(f"{out_channels} channels do not split into {heads} heads")
    per = out_channels // heads
    return AutoGNNConv(in_channels, per, heads, attention, aggregation(out_channels))


def _gcn(in_channels: int, out_channels: int, **_: Any):
    from torch_geometric.nn import GCNConv

    return GCNConv(in_channels, out_channels, cached=True)


def _gat(in_channels: int, out_channels: int, *, heads: int, last: bool, **_: Any):
    from torch_geometric.nn import GATConv

    if last:
        return GATConv(in_channels, out_channels, heads, concat=False)
    if out_channels % heads:
        raise ValueError(f"{out_channels} channels do not split into {heads} heads")
    return GATConv(in_channels, out_channels // heads, heads)


def _message_width_aggr(in_channels: int, out_channels: int, aggregation: Callable):
    """PyG operators that aggregate raw input features (SAGE, GIN): with a learned
    aggregation module the input is first projected to ``out_channels`` (a learned
    aggregation over thousands of bag-of-words channels is out of reach); a string
    aggregation runs on the input as in PyG."""
    aggr = aggregation(in_channels) if isinstance(aggregation(1), str) else None
    if aggr is not None:
        return None, in_channels, aggr
    return torch.nn.Linear(in_channels, out_channels), out_channels, aggregation(out_channels)


class _Projected(torch.nn.Module):
    def __init__(self, pre: Optional[torch.nn.Module], conv: torch.nn.Module) -> None:
        super().__init__()
        self.pre, self.conv = pre, conv

    def reset_parameters(self) -> None:
        if self.pre is not None:
            self.pre.reset_parameters()
        self.conv.reset_parameters()

    def forward(self, x, edge_index):
        return self.conv(x if self.pre is None else self.pre(x), edge_index)


def _sage(in_channels: int, out_channels: int, *, aggregation: Callable, **_: Any):
    from torch_geometric.nn import SAGEConv

    pre, width, aggr = _message_width_aggr(in_channels, out_channels, aggregation)
    return _Projected(pre, SAGEConv(width, out_channels, aggr=aggr))


def _gin(in_channels: int, out_channels: int, *, aggregation: Callable, **_: Any):
    from torch_geometric.nn import GINConv

    pre, width, aggr = _message_width_aggr(in_channels, out_channels, aggregation)
    mlp = torch.nn.Sequential(torch.nn.Linear(width, out_channels), torch.nn.ReLU(),
                              torch.nn.Linear(out_channels, out_channels))
    return _Projected(pre, GINConv(mlp, aggr=aggr))


def _dagnn(in_channels: int, out_channels: int, **_: Any):
    from graphkit.nn.conv.dagnn_conv import DAGNNConv

    return _Projected(torch.nn.Linear(in_channels, out_channels),
                      DAGNNConv(out_channels, K=10, cached=True))


def _lcm(channels: int):
    from graphkit.nn.aggr.lcm import LCMAggregation

    return LCMAggregation(channels, channels, project=False)


def _ggem(channels: int):
    from graphkit.nn.aggr.ggem import GGeMAggregation

    return GGeMAggregation(channels)


def _fixed(name: str) -> Callable[[int], str]:
    def factory(channels: int) -> str:
        return name
    factory.__name__ = f"aggr_{name}"
    return factory


def default_search_space(num_layers: int = 2, *, learned_aggregations: bool = True
                         ) -> SearchSpace:
    r"""The Auto-GNN / GraphNAS layer space plus PyG's and graphkit's operators.

    * ``operator``: ``autognn`` (:class:`~graphkit.nas.conv.AutoGNNConv`, uses attention,
      heads and aggregation), ``gcn``, ``gat`` (uses heads), ``sage`` and ``gin`` (use the
      aggregation) from PyG, and ``dagnn`` (a linear layer followed by graphkit's
      :class:`~graphkit.nn.conv.dagnn_conv.DAGNNConv`, :math:`K = 10`);
    * ``attention``: the seven functions of :data:`~graphkit.nas.conv.ATTENTIONS`;
    * ``heads``: 1, 2, 4, 8; ``hidden``: 16, 32, 64, 128, 256;
    * ``aggregation``: ``sum``, ``mean``, ``max`` and, with ``learned_aggregations``,
      graphkit's ``lcm`` (:class:`~graphkit.nn.aggr.lcm.LCMAggregation`) and ``ggem``
      (:class:`~graphkit.nn.aggr.ggem.GGeMAggregation`);
    * ``activation``: sigmoid, tanh, relu, identity, softplus, leaky_relu, relu6, elu;
    * ``skip``: none, residual.
    """
    from graphkit.nas.conv import ATTENTIONS

    space = SearchSpace(num_layers)
    for name, fn in (("autognn", _autognn), ("gcn", _gcn), ("gat", _gat), ("sage", _sage),
                     ("gin", _gin), ("dagnn", _dagnn)):
        space.add_choice("operator", name, fn)
    for a in ATTENTIONS:
        space.add_choice("attention", a, a)
    for h in (1, 2, 4, 8):
        space.add_choice("heads", h)
    for h in (16, 32, 64, 128, 256):
        space.add_choice("hidden", h)
    for a in ("sum", "mean", "max"):
        space.add_choice("aggregation", a, _fixed(a))
    if learned_aggregations:
        space.add_choice("aggregation", "lcm", _lcm)
        space.add_choice("aggregation", "ggem", _ggem)
    for name, fn in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", F.relu),
                     ("identity", lambda x: x), ("softplus", F.softplus),
                     ("leaky_relu", F.leaky_relu), ("relu6", F.relu6), ("elu", F.elu)):
        space.add_choice("activation", name, fn)
    for s in ("none", "residual"):
        space.add_choice("skip", s)
    return space
