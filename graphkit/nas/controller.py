r"""The conservative explorer's RNN policies of Auto-GNN (Zhou et al., 2019,
https://arxiv.org/abs/1909.03184).

Given the best architecture so far, an LSTM encoder reads its choices (one token per layer and
component class); a *class policy* picks which component class to change, and a *value
policy* for that class (an LSTM step per layer) picks the class's new value in every layer, so
one step changes only the few components of one class. Both are trained with REINFORCE against
a moving-average baseline of the rewards (validation accuracies of the children):

.. math::
    \nabla J = (R - b)\,\nabla \log \pi(\text{class}, \text{values}), \qquad
    b \leftarrow \beta b + (1 - \beta) R .

The policies see only choice *indices* of the :class:`~graphkit.nas.space.SearchSpace`, so
adding a choice to the space changes nothing here.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from graphkit.nas.space import SearchSpace

__all__ = ["ConservativeController"]


class ConservativeController(torch.nn.Module):
    r"""RNN policies that propose a modification of the current best architecture.

    Args:
        space (SearchSpace): the search space (its component classes and choices, in order).
        hidden (int): LSTM width. (default: :obj:`64`)
        baseline_decay (float): :math:`\beta` of the moving baseline. (default: :obj:`0.95`)
        entropy_weight (float): weight of the entropy bonus. (default: :obj:`1e-3`)
        lr (float): Adam learning rate of the policies. (default: :obj:`3.5e-4`)
    """

    def __init__(self, space: SearchSpace, hidden: int = 64, baseline_decay: float = 0.95,
                 entropy_weight: float = 1e-3, lr: float = 3.5e-4) -> None:
        super().__init__()
        space.check()
        self.components = space.component_names
        self.sizes = [len(space.choices(c)) for c in self.components]
        self.num_layers = space.num_layers
        self.hidden, self.baseline_decay, self.entropy_weight = hidden, baseline_decay, \
            entropy_weight
        self.offsets = [0]
        for s in self.sizes:
            self.offsets.append(self.offsets[-1] + s)
        self.embed = torch.nn.Embedding(self.offsets[-1], hidden)
        self.encoder = torch.nn.LSTM(hidden, hidden, batch_first=True)
        self.class_head = torch.nn.Linear(hidden, len(self.components))
        self.value_cell = torch.nn.LSTMCell(hidden, hidden)
        self.value_heads = torch.nn.ModuleList(torch.nn.Linear(hidden, s) for s in self.sizes)
        self.register_buffer("baseline", torch.tensor(float("nan")))
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def _tokens(self, space: SearchSpace, arch: Mapping[str, Any]) -> Tensor:
        ids = []
        for layer in arch["layers"]:
            for c, comp in enumerate(self.components):
                ids.append(self.offsets[c] + space.choices(comp).index(layer[comp]))
        return torch.tensor(ids).view(1, -1)

    def propose(self, space: SearchSpace, arch: Mapping[str, Any], generator: torch.Generator
                ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Sample a modification of ``arch``. Returns ``(child, decision)``, where the decision
        (class index and per-layer value indices) is what :meth:`update` scores."""
        with torch.no_grad():
            c, values = self._sample(space, arch, generator)
        comp = self.components[c]
        names = space.choices(comp)
        child = {"layers": [dict(layer) for layer in arch["layers"]]}
        for i, v in enumerate(values):
            child["layers"][i][comp] = names[v]
        return child, {"class": c, "values": values}

    def _forward(self, space, arch):
        tokens = self._tokens(space, arch)
        out, (h, cst) = self.encoder(self.embed(tokens))
        return tokens, out, h[0], cst[0]

    def _sample(self, space, arch, generator) -> Tuple[int, List[int]]:
        tokens, out, h, cst = self._forward(space, arch)
        probs = torch.softmax(self.class_head(h), -1)[0]
        c = int(torch.multinomial(probs, 1, generator=generator))
        values = []
        L, K = self.num_layers, len(self.components)
        for i in range(L):
            inp = self.embed(tokens[:, i * K + c])
            h, cst = self.value_cell(inp, (h, cst))
            p = torch.softmax(self.value_heads[c](h), -1)[0]
            values.append(int(torch.multinomial(p, 1, generator=generator)))
        return c, values

    def log_prob(self, space: SearchSpace, arch: Mapping[str, Any], decision: Mapping[str, Any]
                 ) -> Tuple[Tensor, Tensor]:
        """``(log π(decision | arch), entropy)`` with gradients."""
        tokens, out, h, cst = self._forward(space, arch)
        c = decision["class"]
        logp = torch.log_softmax(self.class_head(h), -1)[0]
        total, entropy = logp[c], -(logp.exp() * logp).sum()
        K = len(self.components)
        for i, v in enumerate(decision["values"]):
            h, cst = self.value_cell(self.embed(tokens[:, i * K + c]), (h, cst))
            lp = torch.log_softmax(self.value_heads[c](h), -1)[0]
            total = total + lp[v]
            entropy = entropy - (lp.exp() * lp).sum()
        return total, entropy

    def update(self, space: SearchSpace, arch: Mapping[str, Any], decision: Mapping[str, Any],
               reward: float) -> float:
        """One REINFORCE step for the decision taken from ``arch`` that earned ``reward``;
        returns the advantage :math:`R - b` (the baseline is updated afterwards)."""
        b = float(self.baseline)
        if b != b:  # first reward: the baseline starts at it
            b = reward
        advantage = reward - b
        logp, entropy = self.log_prob(space, arch, decision)
        loss = -advantage * logp - self.entropy_weight * entropy
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.baseline.fill_(self.baseline_decay * b + (1 - self.baseline_decay) * reward)
        return advantage

    def full_state(self) -> Dict[str, Any]:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_full_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
