r"""A GNN built from an Auto-GNN architecture description."""
from __future__ import annotations

import json
import weakref
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import Tensor

from graphkit.nas.space import SearchSpace, default_search_space
from graphkit.utils.dropout import fast_dropout

__all__ = ["AutoGNNModel", "build_model", "ARCH_FORMAT"]

#: ``format`` field of a serialised description
ARCH_FORMAT = "graphkit.nas.architecture/1"


class AutoGNNModel(torch.nn.Module):
    r"""The child network of `"Auto-GNN: Neural Architecture Search of Graph Neural Networks"
    <https://arxiv.org/abs/1909.03184>`_ (Zhou, Song, Huang and Hu, 2019): a stack of
    message-passing layers, each with its own operator, attention function, heads, width,
    aggregation, activation and skip connection, read from a search space by choice name.
    (Unrelated to PyG's ``AGNNConv``.)

    .. math::
        \mathbf{X}^{(l+1)} = \sigma_l\Big(\mathrm{OP}_l\big(\mathrm{drop}(\mathbf{X}^{(l)}),
        \mathcal{E}\big) + [\text{skip}_l]\,\mathbf{W}_l \mathbf{X}^{(l)}\Big)

    with no activation after the last layer, which returns class logits.

    Args:
        in_channels (int): input features.
        out_channels (int): classes.
        architecture (dict): ``{"layers": [{component: choice name}, ...]}`` (see
            :mod:`graphkit.nas.space`).
        space (SearchSpace, optional): the space that names the choices.
            (default: :func:`~graphkit.nas.space.default_search_space`)
        dropout (float): dropout before every layer. (default: :obj:`0.6`)

    The input features of citation graphs are bag-of-words vectors with about 1% non-zeros;
    dropout before the first layer draws its mask over the non-zero entries only (dropped
    zeros stay zero, so the result has the distribution of dense dropout), with the positions
    of the non-zeros found once per input tensor (and again whenever it is modified in
    place). Inputs with more than a quarter of non-zeros, and inputs that require gradients,
    use dense dropout.

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F)`, edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** :math:`(|\mathcal{V}|, \text{out\_channels})`
    """

    def __init__(self, in_channels: int, out_channels: int, architecture: Mapping[str, Any],
                 space: Optional[SearchSpace] = None, dropout: float = 0.6) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"AutoGNNModel: '{name}' must be a positive int (got {val!r})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"AutoGNNModel: dropout must be in [0, 1) (got {dropout!r})")
        space = space if space is not None else default_search_space(
            len(architecture.get("layers", [])) or 2)
        self.architecture = space.validate(architecture)
        self.in_channels, self.out_channels, self.dropout = in_channels, out_channels, dropout
        self.convs = torch.nn.ModuleList()
        self.skips = torch.nn.ModuleList()
        self._acts = []
        layers = self.architecture["layers"]
        d_in = in_channels
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            d_out = out_channels if last else int(space.value("hidden", layer["hidden"]))
            aggr = space.value("aggregation", layer["aggregation"])
            factory = aggr if callable(aggr) else (lambda c, a=aggr: a)
            builder = space.value("operator", layer["operator"])
            try:
                conv = builder(d_in, d_out, heads=int(space.value("heads", layer["heads"])),
                               attention=space.value("attention", layer["attention"]),
                               aggregation=factory, last=last)
                if not isinstance(conv, torch.nn.Module):
                    raise TypeError(f"the builder returned {type(conv).__name__}, not a Module")
            except Exception as e:
                raise ValueError(f"AutoGNNModel: layer {i}: operator {layer['operator']!r} "
                                 f"failed to build ({d_in} -> {d_out} channels, heads="
                                 f"{layer['heads']}, attention={layer['attention']!r}, "
                                 f"aggregation={layer['aggregation']!r}): "
                                 f"{type(e).__name__}: {e}") from e
            self.convs.append(conv)
            skip = space.value("skip", layer["skip"])
            if skip not in ("none", "residual"):
                raise ValueError(f"AutoGNNModel: layer {i}: skip must be 'none' or 'residual' "
                                 f"(got {skip!r})")
            self.skips.append(torch.nn.Linear(d_in, d_out, bias=False) if skip == "residual"
                              else torch.nn.Identity())
            self._acts.append(space.value("activation", layer["activation"]))
            d_in = d_out
        self._input_nonzeros: Optional[tuple] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            if hasattr(conv, "reset_parameters"):
                conv.reset_parameters()
        for skip in self.skips:
            if isinstance(skip, torch.nn.Linear):
                skip.reset_parameters()

    def layer_parameters(self, i: int) -> Dict[str, Tensor]:
        """Parameters (and buffers) of layer ``i`` by name, operator and skip together."""
        state = {f"conv.{k}": v for k, v in self.convs[i].state_dict().items()}
        state.update({f"skip.{k}": v for k, v in self.skips[i].state_dict().items()})
        return state

    def load_layer(self, i: int, state: Mapping[str, Tensor]) -> None:
        self.convs[i].load_state_dict({k[5:]: v for k, v in state.items()
                                       if k.startswith("conv.")})
        self.skips[i].load_state_dict({k[5:]: v for k, v in state.items()
                                       if k.startswith("skip.")})

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_input_nonzeros"] = None  # a weak reference to the last input: not picklable
        return state

    def _input_dropout(self, x: Tensor) -> Tensor:
        """Dropout of the input features, over their non-zero entries when they are sparse."""
        if not self.training or self.dropout == 0.0:
            return x
        if x.layout != torch.strided or x.requires_grad:
            # features that require grad get dense dropout: its gradient at zero entries
            # is not zero
            return fast_dropout(x, self.dropout, True)
        cache = self._input_nonzeros
        if cache is None or cache[0]() is not x or cache[1] != x._version:
            flat = x.detach().reshape(-1)
            idx = flat.nonzero().view(-1)
            cache = (weakref.ref(x), x._version, idx if 4 * idx.numel() < flat.numel()
                     else None)
            self._input_nonzeros = cache
        idx = cache[2]
        if idx is None:
            return fast_dropout(x, self.dropout, True)
        keep = idx[torch.rand(idx.numel(), device=x.device) >= self.dropout]
        vals = x.reshape(-1)[keep] * (1.0 / (1.0 - self.dropout))
        return x.new_zeros(x.numel()).index_put((keep,), vals).view_as(x)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n = len(self.convs)
        for i, (conv, skip, act) in enumerate(zip(self.convs, self.skips, self._acts)):
            h = conv(self._input_dropout(x) if i == 0
                     else fast_dropout(x, self.dropout, self.training), edge_index)
            if isinstance(skip, torch.nn.Linear):
                h = h + skip(x)
            x = h if i == n - 1 else act(h)
        return x

    def description(self) -> Dict[str, Any]:
        """The JSON-able description :func:`build_model` rebuilds this model from."""
        return {"format": ARCH_FORMAT, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "dropout": self.dropout,
                "layers": [dict(layer) for layer in self.architecture["layers"]]}

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"layers={json.dumps(self.architecture['layers'])})")


def build_model(description: Mapping[str, Any], space: Optional[SearchSpace] = None
                ) -> AutoGNNModel:
    """Rebuild a model from :meth:`AutoGNNModel.description` (a dict or its JSON text)."""
    if isinstance(description, str):
        description = json.loads(description)
    for key in ("in_channels", "out_channels", "layers"):
        if key not in description:
            raise ValueError(f"build_model: the description has no {key!r}")
    fmt = description.get("format", ARCH_FORMAT)
    if fmt != ARCH_FORMAT:
        raise ValueError(f"build_model: unknown description format {fmt!r} (expected "
                         f"{ARCH_FORMAT!r})")
    layers: List[Any] = list(description["layers"])
    return AutoGNNModel(int(description["in_channels"]), int(description["out_channels"]),
                        {"layers": layers}, space=space,
                        dropout=float(description.get("dropout", 0.6)))
