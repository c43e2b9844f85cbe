r"""Matrix factorisation with BPR: the non-graph baseline of the recommenders."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Embedding

from graphkit.nn.models.recommender import (
    _EmbeddingRecommender,
    as_interaction_pairs,
    check_triples,
    hardest_candidates,
    register_recommender,
)


@register_recommender("mf")
class MF(_EmbeddingRecommender):
    r"""Matrix factorisation trained with BPR, from `"BPR: Bayesian Personalized Ranking from
    Implicit Feedback" <https://arxiv.org/abs/1205.2618>`_ — the non-graph baseline.

    .. math::
        \hat{y}_{ui} = \mathbf{p}_u^{\top} \mathbf{q}_i, \qquad
        \mathcal{L} = \frac{1}{B} \sum_{(u,i,j)} \operatorname{softplus}(\hat{y}_{uj} -
        \hat{y}_{ui}) + \lambda \frac{\lVert \mathbf{p}_u \rVert^2 + \lVert \mathbf{q}_i \rVert^2
        + \lVert \mathbf{q}_j \rVert^2}{2B}

    Args:
        num_users (int): number of users.
        num_items (int): number of items.
        embedding_dim (int): embedding size. (default: :obj:`64`)
        reg_weight (float): L2 coefficient on the batch's embeddings. (default: :obj:`1e-4`)
        init_std (float): standard deviation of the normal initialisation. (default: :obj:`0.1`)

    Shapes:
        - **input:** training interactions ``[2, E]`` or a sparse ``[U, I]`` matrix via
          :meth:`set_graph`; user ids ``[B]``
        - **output:** :meth:`embeddings` → ``([U, F], [I, F])``; :meth:`score_all` → ``[B, I]``
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, reg_weight: float = 1e-4,
                 init_std: float = 0.1):
        super().__init__(num_users, num_items)
        if int(embedding_dim) < 1:
            raise ValueError(f"MF: 'embedding_dim' must be positive, got {embedding_dim}")
        self.embedding_dim = int(embedding_dim)
        self.reg_weight = float(reg_weight)
        self.init_std = float(init_std)
        self.user_embedding = Embedding(self.num_users, self.embedding_dim)
        self.item_embedding = Embedding(self.num_items, self.embedding_dim)
        self.train_edge_index: Optional[Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        torch.nn.init.normal_(self.item_embedding.weight, std=self.init_std)

    def set_graph(self, edge_index: Tensor) -> "MF":
        r"""Remember the training interactions (masked by :meth:`recommend`): a ``[2, E]``
        (user, item) integer tensor, a PyG ``EdgeIndex`` or a ``torch.sparse`` ``[U, I]`` matrix
        whose stored entries are the interactions (values not used)."""
        pairs = as_interaction_pairs(edge_index, self.num_users, self.num_items, "MF.set_graph")
        self.train_edge_index = pairs.to(self.user_embedding.weight.device)
        self._seen = None
        return self

    def _apply(self, fn, *args, **kwargs):  # the training pairs follow the parameters' device
        super()._apply(fn, *args, **kwargs)
        if self.train_edge_index is not None:
            self.train_edge_index = fn(self.train_edge_index)
        return self

    def embeddings(self) -> Tuple[Tensor, Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def loss(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Tensor:
        r"""BPR loss plus the L2 penalty on the batch's embeddings; ``neg_items`` is ``[B]`` or
        ``[B, M]`` candidates of which the highest-scoring is used (see :meth:`LightGCN.loss`).
        Ids out of range raise a :class:`ValueError` naming the argument."""
        check_triples(users, pos_items, neg_items, self.num_users, self.num_items, "MF.loss")
        u = self.user_embedding(users)
        if neg_items.dim() == 2:
            with torch.no_grad():
                neg_items = hardest_candidates(u, self.item_embedding(neg_items), neg_items)
        p, n = self.item_embedding(pos_items), self.item_embedding(neg_items)
        bpr = F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
        reg = (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / (2 * users.numel())
        return bpr + self.reg_weight * reg

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_users}, {self.num_items}, embedding_dim={self.embedding_dim})"
