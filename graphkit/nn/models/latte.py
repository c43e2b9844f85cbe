r"""LATTE node classifier: stacked :class:`~graphkit.nn.conv.latte_conv.LATTEConv` layers whose
outputs are all kept."""
from __future__ import annotations

from typing import Dict, List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphkit.nn.conv.latte_conv import LATTEConv

__all__ = ["LATTE"]


class LATTE(nn.Module):
    r"""Node classification with LATTE from "Layer-stacked Attention for Heterogeneous
    Network Embedding" (Tran & Gao, 2020, https://arxiv.org/abs/2009.08072).

    :math:`T` :class:`~graphkit.nn.conv.latte_conv.LATTEConv` layers are applied in turn,
    layer :math:`t` working on the outputs of layer :math:`t-1` and so decomposing the meta
    relations of order :math:`t`; the target nodes' representations of all layers are
    concatenated ("layer pooling") and classified:

    .. math::
        z_i = \Vert_{t=1}^{T} h_i^{(t)}, \qquad
        \hat{y}_i = W \operatorname{dropout}(z_i) + b.

    Args:
        in_channels (int or Dict[str, int]): input widths (``-1``: lazy).
        hidden_channels (int): width of every layer (the paper's embedding dimension).
        out_channels (int): classes.
        metadata: ``HeteroData.metadata()``.
        target (str): the node type to classify.
        num_layers (int): :math:`T` (the paper's LATTE-1 / LATTE-2). (default: ``2``)
        heads (int): attention heads. (default: ``2``)
        dropout (float): layer output dropout. (default: ``0.2``)
        attn_dropout (float): attention dropout. (default: ``0.2``)
        classifier_dropout (float): dropout before the classifier. (default: ``0.4``)

    Shapes:
        - **input:** ``x_dict``, ``edge_index_dict`` as for
          :class:`~graphkit.nn.conv.latte_conv.LATTEConv`
        - **output:** ``[N_target, out_channels]`` logits
    """

    def __init__(self, in_channels: Union[int, Dict[str, int]], hidden_channels: int,
                 out_channels: int, metadata: Tuple[List[str], List[Tuple[str, str, str]]],
                 target: str, num_layers: int = 2, heads: int = 2, dropout: float = 0.2,
                 attn_dropout: float = 0.2, classifier_dropout: float = 0.4) -> None:
        super().__init__()
        if target not in metadata[0]:
            raise ValueError(f"LATTE: target node type {target!r} is not in metadata "
                             f"{list(metadata[0])}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"LATTE: num_layers must be a positive int, got {num_layers!r}")
        self.target, self.num_layers = target, num_layers
        self.hidden_channels, self.out_channels = hidden_channels, out_channels
        self.classifier_dropout = classifier_dropout
        self.convs = nn.ModuleList([
            LATTEConv(in_channels if t == 0 else hidden_channels, hidden_channels, metadata,
                      heads=heads, dropout=dropout, attn_dropout=attn_dropout)
            for t in range(num_layers)])
        self.classifier = nn.Linear(hidden_channels * num_layers, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        self.classifier.reset_parameters()

    def embed(self, x_dict: Dict[str, Tensor], edge_index_dict: Dict) -> Tensor:
        """The concatenated layer representations of the target nodes."""
        if self.target not in x_dict:
            raise ValueError(f"LATTE: x_dict has no features for the target node type "
                             f"{self.target!r}")
        # layer t only needs the node types within T - 1 - t relations of the target
        needed = [set() for _ in self.convs]
        needed[-1] = {self.target}
        for t in range(self.num_layers - 1, 0, -1):
            needed[t - 1] = needed[t] | {et[0] for et in edge_index_dict
                                         if et[2] in needed[t] and et[0] in x_dict}
        layers = []
        h = x_dict
        for t, conv in enumerate(self.convs):
            h = conv(h, edge_index_dict, out_types=[n for n in h if n in needed[t]])
            if t < self.num_layers - 1:
                h = {k: torch.tanh(v) for k, v in h.items()}
            layers.append(h[self.target])
        return torch.cat(layers, dim=-1)

    def forward(self, x_dict: Dict[str, Tensor], edge_index_dict: Dict) -> Tensor:
        z = self.embed(x_dict, edge_index_dict)
        return self.classifier(F.dropout(z, self.classifier_dropout, self.training))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(target={self.target!r}, hidden_channels="
                f"{self.hidden_channels}, out_channels={self.out_channels}, "
                f"num_layers={self.num_layers})")
