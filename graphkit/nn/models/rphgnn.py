r"""RpHGNN's trainable encoder over pre-computed relation groups."""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from graphkit.utils.dropout import fast_dropout

__all__ = ["RpHGNN"]


class RpHGNN(nn.Module):
    r"""The encoder of RpHGNN from "Efficient Heterogeneous Graph Learning via Random
    Projection" (Hu, Hooi, He, TKDE 2024, https://arxiv.org/abs/2310.14481).

    It takes the groups computed once by :func:`graphkit.hetero.rphgnn_precompute` (one
    tensor :math:`H_g \in \mathbb{R}^{N \times C_g \times F_g}` per relation and parity, the
    :math:`C_g` hop iterations stacked) and encodes them: a per-group 1x1 convolution mixes the
    hops into :math:`c` filters, a per-group MLP maps the flattened result to the hidden
    size, the groups are merged (concatenated or averaged) and a final MLP gives the logits:

    .. math::
        z_g = \mathrm{MLP}_g\big(\mathrm{vec}(W_g H_g + b_g)\big), \qquad
        \hat{y} = \mathrm{MLP}\big(\Vert_g\, z_g\big),

    with :math:`W_g \in \mathbb{R}^{c \times C_g}` (:math:`c = 1` for a single-member group),
    MLP layers ``Linear -> PReLU -> Dropout`` and dropout on the inputs. It is trained on
    mini-batches of target nodes: the groups are plain tensors, so a batch is ``[h[idx] for h
    in groups]``.

    Args:
        group_shapes (Sequence[Tuple[int, int]]): ``(C_g, F_g)`` of every group
            (``RandomProjectionFeatures.group_shapes``).
        hidden_channels (int): hidden size.
        out_channels (int): number of classes.
        num_filters (int): filters :math:`c` of the hop-mixing convolution. (default: ``2``)
        group_layers (int): layers of each group MLP. (default: ``2``)
        out_layers (int): layers of the final MLP (the last one outputs the logits).
            (default: ``2``)
        merge (str): ``"concat"`` or ``"mean"`` of the group outputs. (default: ``"concat"``)
        input_dropout (float): dropout on the group inputs. (default: ``0.0``)
        dropout (float): dropout after every hidden layer. (default: ``0.0``)

    Shapes:
        - **input:** a list of ``[B, C_g, F_g]`` tensors (any floating dtype; computed in the
          parameters' dtype)
        - **output:** ``[B, out_channels]`` logits
    """

    def __init__(self, group_shapes: Sequence[Tuple[int, int]], hidden_channels: int,
                 out_channels: int, num_filters: int = 2, group_layers: int = 2,
                 out_layers: int = 2, merge: str = "concat", input_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        shapes = [tuple(int(v) for v in s) for s in group_shapes]
        if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
            raise ValueError(f"RpHGNN: group_shapes must be a non-empty list of (channels, width) "
                             f"pairs of positive ints, got {group_shapes!r}")
        for name, v in (("hidden_channels", hidden_channels), ("out_channels", out_channels),
                        ("num_filters", num_filters), ("group_layers", group_layers),
                        ("out_layers", out_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RpHGNN: {name} must be a positive int, got {v!r}")
        if merge not in ("concat", "mean"):
            raise ValueError(f"RpHGNN: merge must be 'concat' or 'mean', got {merge!r}")
        for name, p in (("input_dropout", input_dropout), ("dropout", dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"RpHGNN: {name} must lie in [0, 1), got {p!r}")
        self.group_shapes: List[Tuple[int, int]] = shapes
        self.hidden_channels, self.out_channels = hidden_channels, out_channels
        self.num_filters, self.group_layers, self.out_layers = num_filters, group_layers, out_layers
        self.merge, self.input_dropout, self.dropout = merge, input_dropout, dropout

        self.filters = [1 if c == 1 else num_filters for c, _ in shapes]
        self.mix_weight = nn.ParameterList(
            [nn.Parameter(torch.empty(f, c)) for f, (c, _) in zip(self.filters, shapes)])
        self.mix_bias = nn.ParameterList([nn.Parameter(torch.empty(f)) for f in self.filters])

        def mlp(dims: List[int], last_plain: bool) -> nn.Sequential:
            layers: List[nn.Module] = []
            for i in range(len(dims) - 1):
                layers.append(nn.Linear(dims[i], dims[i + 1]))
                if not (last_plain and i == len(dims) - 2):
                    layers += [nn.PReLU(), nn.Dropout(dropout)]
            return nn.Sequential(*layers)

        self.group_mlps = nn.ModuleList([
            mlp([f * w] + [hidden_channels] * group_layers, last_plain=False)
            for f, (_, w) in zip(self.filters, shapes)])
        fused = hidden_channels * (len(shapes) if merge == "concat" else 1)
        self.out_mlp = mlp([fused] + [hidden_channels] * (out_layers - 1) + [out_channels],
                           last_plain=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w, b in zip(self.mix_weight, self.mix_bias):
            # Xavier-normal of a 1x1 Conv1d: fan_in = C_g, fan_out = c
            nn.init.normal_(w, 0.0, math.sqrt(2.0 / (w.size(0) + w.size(1))))
            nn.init.zeros_(b)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.PReLU):
                nn.init.constant_(m.weight, 0.25)

    def _mix(self, h: Tensor, g: int) -> Tensor:
        """The 1x1 convolution over the hops, ``[B, C, F] -> [B, c * F]`` (filter-major), as
        ``c * C`` scaled additions: a GEMM with inner size ``C <= 10`` is far slower."""
        w, b = self.mix_weight[g], self.mix_bias[g]
        rows = []
        for f in range(w.size(0)):
            acc = h[:, 0] * w[f, 0] + b[f]
            for c in range(1, w.size(1)):
                acc = acc + h[:, c] * w[f, c]
            rows.append(acc)
        return torch.cat(rows, dim=1)

    def forward(self, groups: Sequence[Tensor]) -> Tensor:
        if len(groups) != len(self.group_shapes):
            raise ValueError(f"RpHGNN: expected {len(self.group_shapes)} groups, got {len(groups)}")
        dtype = self.mix_bias[0].dtype
        outs = []
        for g, (h, shape) in enumerate(zip(groups, self.group_shapes)):
            if h.dim() != 3 or tuple(h.shape[1:]) != shape:
                raise ValueError(f"RpHGNN: group {g} has shape {tuple(h.shape)}, expected "
                                 f"[batch, {shape[0]}, {shape[1]}]")
            h = fast_dropout(h.to(dtype), self.input_dropout, self.training)
            outs.append(self.group_mlps[g](self._mix(h, g)))
        z = torch.cat(outs, dim=-1) if self.merge == "concat" else torch.stack(outs).mean(0)
        return self.out_mlp(z)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(groups={len(self.group_shapes)}, "
                f"hidden_channels={self.hidden_channels}, out_channels={self.out_channels}, "
                f"merge={self.merge!r})")
