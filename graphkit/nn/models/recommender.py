r"""The contract shared by graphkit's recommenders, and their registry.

:class:`Recommender` is the base class of every model that ranks items for users on an
implicit-feedback interaction graph (:class:`~graphkit.nn.models.LightGCN`,
:class:`~graphkit.nn.models.UltraGCN`, :class:`~graphkit.nn.models.MF`). It implements once
what all of them share: validation of user/item ids, reading the training interactions in any
of the accepted formats, top-``k`` recommendation with seen-item masking and ties broken by
ascending item id, and the JSON-able constructor arguments (:attr:`Recommender.model_args`)
that a model folder stores next to the ``state_dict``.

Models are registered by name with :func:`register_recommender` and built by name with
:func:`create_recommender`; the names are those written into model folders
(:mod:`graphkit.rec.io`), so they never change once published.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

import torch
from torch import Tensor

from graphkit.utils.ranking import DotProductScorer, PairIndex, topk_ties_by_index

__all__ = ["Recommender", "register_recommender", "list_recommenders", "get_recommender",
           "create_recommender", "recommender_name", "score_block_rows", "DEFAULT_SCORE_MEMORY"]

_INTEGER_DTYPES = (torch.int64, torch.int32)

#: Default bound, in bytes, on one block of user x all-item scores (recommend, full-ranking
#: evaluation): 512 MiB fits any machine and keeps the paper datasets' blocks of 2048 users
#: (up to 65536 items) unchanged.
DEFAULT_SCORE_MEMORY = 512 * 2 ** 20


def score_block_rows(num_items: int, memory_budget: Optional[int] = None, batch_size: Optional[int] = None,
                     *, bytes_per_score: int = 4, where: str = "scoring") -> int:
    r"""How many users to score at once so that a ``[rows, num_items]`` score block fits in
    ``memory_budget`` bytes (default :data:`DEFAULT_SCORE_MEMORY`).

    The block follows the item count: ``rows = memory_budget // (num_items * bytes_per_score)``,
    at most ``batch_size`` when one is given. Per-row work besides the block (seen-item masks,
    the top-``k`` chunk maxima) is about ``num_items / 16`` bytes and is covered by the
    rounding down. A budget smaller than one user's row is a :class:`ValueError`, raised
    before any scoring.
    """
    if memory_budget is None:
        memory_budget = DEFAULT_SCORE_MEMORY
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float)) \
            or not memory_budget == memory_budget or memory_budget <= 0:
        raise ValueError(f"{where}: memory_budget must be a positive number of bytes, got {memory_budget!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
    row = max(int(num_items), 1) * int(bytes_per_score)
    if memory_budget < row:
        raise ValueError(f"{where}: memory_budget={int(memory_budget)} bytes is smaller than one user's "
                         f"row of scores ({num_items} items x {bytes_per_score} bytes = {row} bytes); "
                         f"give at least {row} bytes")
    rows = int(memory_budget // row)
    return rows if batch_size is None else min(rows, batch_size)


def check_ids(name: str, ids: Tensor, size: int, where: str, kind: str = "") -> None:
    r"""Raise unless ``ids`` is an integer tensor with every entry in ``[0, size)``.

    One ``aminmax`` pass and one host synchronisation; skipped while a graph is being compiled.
    The error names ``where`` (the method), the argument ``name`` and the offending id.
    """
    if not isinstance(ids, Tensor):
        raise TypeError(f"{where}: '{name}' must be a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"{where}: '{name}' must hold integer ids (int64/int32), got {ids.dtype}")
    if ids.numel() == 0 or torch.compiler.is_compiling():
        return
    lo, hi = (int(v) for v in torch.stack(torch.aminmax(ids)).tolist())
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        kind = f"{kind} " if kind else ""
        raise ValueError(f"{where}: '{name}' contains id {bad}; {kind}ids must lie in [0, {size})")


def as_interaction_pairs(x: Tensor, num_users: int, num_items: int, where: str) -> Tensor:
    r"""``[2, E]`` (user, item) ``int64`` pairs from the accepted forms of an interaction set.

    * a ``[2, E]`` integer tensor (or a PyG ``EdgeIndex``) of (user, item) pairs;
    * a ``torch.sparse`` ``[num_users, num_items]`` matrix in COO, CSR or CSC layout: every
      stored entry is an interaction, whatever its value (the values are not used, duplicates
      are merged).

    Floating-point ids are refused (they would be truncated), and so is any id out of range.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: expected a [2, E] integer tensor, an EdgeIndex or a torch.sparse "
                        f"[num_users, num_items] matrix, got {type(x).__name__}")
    if x.layout != torch.strided:
        if x.dim() != 2 or tuple(x.shape) != (num_users, num_items):
            raise ValueError(f"{where}: a sparse interaction matrix must have shape "
                             f"[{num_users}, {num_items}], got {list(x.shape)}")
        x = x.to_sparse_coo().coalesce().indices()
    if hasattr(x, "as_tensor"):  # torch_geometric.EdgeIndex
        x = x.as_tensor()
    if x.dim() != 2 or x.size(0) != 2:
        raise ValueError(f"{where}: expected shape [2, E] (user, item), got {list(x.shape)}")
    check_ids("train_edge_index[0] (users)", x[0], num_users, where, "user")
    check_ids("train_edge_index[1] (items)", x[1], num_items, where, "item")
    return x.long()


def check_triples(users: Tensor, pos_items: Tensor, neg_items: Tensor, num_users: int, num_items: int,
                  where: str, *, candidates: bool = True) -> None:
    r"""Shape and range checks of a training batch: ``users`` and ``pos_items`` ``[B]``,
    ``neg_items`` ``[B]`` or ``[B, M]`` (only ``[B, N]`` with ``candidates=False``).

    The three id tensors are range-checked with one synchronisation in all.
    """
    if users.dim() != 1 or pos_items.shape != users.shape:
        raise ValueError(f"{where}: users and pos_items must be 1-D of equal length, got "
                         f"{list(users.shape)} and {list(pos_items.shape)}")
    dims = (1, 2) if candidates else (2,)
    if neg_items.dim() not in dims or neg_items.size(0) != users.numel() or \
            (neg_items.dim() == 2 and neg_items.size(1) < 1):
        shape = "[B] or [B, M]" if candidates else "[B, N]"
        raise ValueError(f"{where}: neg_items must be {shape} with B={users.numel()}, got "
                         f"{list(neg_items.shape)}")
    named = (("users", users, num_users, "user"), ("pos_items", pos_items, num_items, "item"),
             ("neg_items", neg_items, num_items, "item"))
    for name, ids, _, _ in named:
        if ids.dtype not in _INTEGER_DTYPES:
            raise TypeError(f"{where}: '{name}' must hold integer ids (int64/int32), got {ids.dtype}")
    if users.numel() == 0 or torch.compiler.is_compiling():
        return
    bounds = torch.stack([torch.stack(torch.aminmax(ids)).long() for _, ids, _, _ in named]).tolist()
    for (name, _, size, kind), (lo, hi) in zip(named, bounds):
        if lo < 0 or hi >= size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{where}: '{name}' contains id {bad}; {kind} ids must lie in [0, {size})")


class Recommender(torch.nn.Module):
    r"""Base class of graphkit's recommenders: users ``0..U-1``, items ``0..I-1``, a training
    interaction graph, and a score for every (user, item) pair.

    A subclass implements :meth:`score_all` and :meth:`set_graph` (and, when it is trained by
    gradient descent, :meth:`loss` and :meth:`reset_parameters`); it gets from this class:

    * :meth:`recommend` — top-``k`` items per user in blocks of users, the training items
      masked, ties broken by ascending item id (:func:`graphkit.utils.topk_ties_by_index`,
      the same rule as the full-ranking evaluation);
    * :attr:`model_args` — the constructor arguments as a JSON-able dict, read from the
      attributes named like the ``__init__`` parameters, so ``type(m)(**m.model_args)``
      rebuilds the model;
    * id validation shared by all entry points (clear errors naming the argument and the id).

    Class attributes:
        trainable (bool): ``False`` for training-free models (graph filters), which have no
            :meth:`loss`.

    Args:
        num_users (int): number of users ``U``.
        num_items (int): number of items ``I``.
    """

    trainable: bool = True

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        for name, value in (("num_users", num_users), ("num_items", num_items)):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{type(self).__name__}: '{name}' must be a positive integer, got {value!r}")
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self._seen: Optional[PairIndex] = None

    # ----------------------------------------------------------------- contract
    @property
    def model_args(self) -> Dict[str, Any]:
        """JSON-able constructor arguments: ``type(model)(**model.model_args)`` rebuilds it."""
        args = {}
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if not hasattr(self, name):
                raise AttributeError(f"{type(self).__name__} stores no attribute for its constructor "
                                     f"argument {name!r}; override model_args")
            args[name] = getattr(self, name)
        return args

    def reset_parameters(self) -> None:
        """Re-initialise the learnable parameters (nothing to do for training-free models)."""

    def set_graph(self, edge_index: Tensor) -> "Recommender":  # pragma: no cover - abstract
        r"""Take the training interactions: a ``[2, E]`` (user, item) integer tensor, a PyG
        ``EdgeIndex`` or a ``torch.sparse`` ``[U, I]`` matrix (see
        :func:`as_interaction_pairs`). Returns the model."""
        raise NotImplementedError

    def score_all(self, users: Tensor) -> Tensor:  # pragma: no cover - abstract
        r"""Scores of ``users`` ``[B]`` against every item, ``[B, I]``."""
        raise NotImplementedError

    def loss(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Tensor:
        r"""The training objective on a batch of (user, positive, negative) triples."""
        raise NotImplementedError(f"{type(self).__name__} is not trained by gradient descent "
                                  "(trainable=False): it has no loss")

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        r"""Scores of ``users[b]`` for ``items[b]`` (``[B]``) or ``items[b, n]`` (``[B, N]``).

        This default gathers from :meth:`score_all`; models with cheaper pair scores override it.
        """
        scores = self.score_all(users)
        return scores.gather(1, items.view(users.numel(), -1)).view_as(items)

    def scorer(self) -> Callable[[Tensor], Tensor]:
        r"""A block scorer ``users -> [B, I]`` with any work common to all blocks (propagation)
        done once; :meth:`recommend` calls it per block. Defaults to :meth:`score_all`."""
        return self.score_all

    # ----------------------------------------------------------------- ranking
    @torch.no_grad()
    def recommend(self, users: Tensor, k: int = 20, exclude_seen: bool = True,
                  batch_size: Optional[int] = 4096, return_scores: bool = False,
                  memory_budget: Optional[int] = None):
        r"""Top-``k`` item ids for each user, best first, shape ``[B, k]``.

        Users are scored in blocks bounded by bytes: at most ``batch_size`` users and at most
        ``memory_budget`` bytes of scores (:func:`score_block_rows`), so memory stays flat
        however many users and items there are. With
        ``exclude_seen=True`` the training interactions given to :meth:`set_graph` are
        masked; a user with fewer than ``k`` unseen items gets masked items last, with score
        ``-inf``. Ties are broken by ascending item id, as in the full-ranking evaluation.

        Args:
            users (torch.Tensor): ``[B]`` user ids (integers).
            k (int): list length, in ``[1, num_items]``. (default: ``20``)
            exclude_seen (bool): mask the training items. (default: ``True``)
            batch_size (int, optional): at most this many users scored at once (``None``:
                as many as the memory budget allows). (default: ``4096``)
            return_scores (bool): also return the ``[B, k]`` scores of the listed items.
                (default: ``False``)
            memory_budget (int, optional): bytes one block of float32 scores may take
                (default :data:`DEFAULT_SCORE_MEMORY`, 512 MiB); smaller than one user's row
                (``4 * num_items``) is a :class:`ValueError`.

        Returns:
            ``LongTensor[B, k]``, or ``(items, scores)`` with ``return_scores=True``.
        """
        where = f"{type(self).__name__}.recommend"
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.num_items:
            raise ValueError(f"{where}: k must be an int, and k must lie in [1, {self.num_items}]; got {k!r}")
        rows_per_block = score_block_rows(self.num_items, memory_budget, batch_size, where=where)
        device = self._device()
        users = torch.as_tensor(users, device=device)
        if users.numel() == 0:
            users = users.long()
        if users.dim() != 1:
            raise ValueError(f"{where}: users must be 1-D, got shape {list(users.shape)}")
        check_ids("users", users, self.num_users, where, "user")
        users = users.long()
        if exclude_seen:
            seen = self._seen_index(where)
        score = self.scorer()
        ranks = getattr(score, "ranks_without_scores", None)
        if ranks is not None and ranks(k):  # no [B, I] block: about 0.45 bytes per item and user
            rows_per_block = score_block_rows(self.num_items, memory_budget, batch_size, bytes_per_score=1,
                                              where=where)
        batch_size = rows_per_block
        top, top_scores = [], []
        for start in range(0, users.numel(), batch_size):
            block = users[start:start + batch_size]
            ranked = score.topk(block, k, seen if exclude_seen else None) if hasattr(score, "topk") else None
            if ranked is not None:  # exact, without a [B, I] score block: the lists full ranking scores
                top.append(ranked[0])
                if return_scores:
                    top_scores.append(ranked[1])
                continue
            scores = score(block)
            if exclude_seen:
                rows, cols = seen.block(block)
                scores[rows, cols] = float("-inf")
            items = topk_ties_by_index(scores, k)
            top.append(items)
            if return_scores:
                top_scores.append(scores.gather(1, items))
        items = torch.cat(top) if top else torch.zeros(0, k, dtype=torch.long, device=device)
        if not return_scores:
            return items
        return items, (torch.cat(top_scores) if top_scores else torch.zeros(0, k, device=device))

    def _seen_pairs(self) -> Optional[Tensor]:
        """The training pairs ``[2, E]`` to mask, ``None`` before :meth:`set_graph`."""
        return getattr(self, "train_edge_index", None)

    def _seen_index(self, where: str = "recommend") -> PairIndex:
        """The training pairs as a :class:`~graphkit.utils.PairIndex` on the model's device
        (built once per graph and device)."""
        device = self._device()
        cached = self._seen
        if cached is None or cached.keys.device != device:
            pairs = self._seen_pairs()
            if pairs is None:
                raise RuntimeError(f"{where}: exclude_seen=True needs the training interactions: "
                                   "call set_graph(train_edge_index) first")
            cached = self._seen = PairIndex(pairs.to(device), self.num_users, self.num_items)
        return cached

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


class _EmbeddingRecommender(Recommender):
    r"""A :class:`Recommender` whose score is a dot product of final user and item embeddings,
    :math:`\hat{y}_{ui} = \mathbf{e}_u^{\top}\mathbf{e}_i`: subclasses implement
    :meth:`embeddings`; scoring, pair scores and the block scorer follow from it."""

    def embeddings(self) -> Tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """Final user and item embeddings ``([U, F], [I, F])``."""
        raise NotImplementedError

    def score_all(self, users: Tensor, embeddings: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        r"""Scores of ``users`` against every item, ``[B, I]`` (``embeddings`` from
        :meth:`embeddings` may be passed to skip recomputing them)."""
        user_emb, item_emb = self.embeddings() if embeddings is None else embeddings
        return user_emb[users] @ item_emb.t()

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        r"""Scores of the ``(users[j], items[j])`` pairs."""
        user_emb, item_emb = self.embeddings()
        return (user_emb[users] * item_emb[items]).sum(-1)

    def scorer(self) -> DotProductScorer:
        """A :class:`~graphkit.utils.ranking.DotProductScorer` of the final embeddings (computed
        once): blocks of scores, or an exact top-k without them."""
        return DotProductScorer(*self.embeddings())


def hardest_candidates(user_emb: Tensor, candidate_emb: Tensor, candidates: Tensor) -> Tensor:
    r"""The entry of each row of ``candidates`` ``[B, M]`` whose embedding (``candidate_emb``,
    ``[B, M, F]``) has the highest dot product with the user's (``user_emb``, ``[B, F]``);
    ties go to the first candidate."""
    scores = torch.bmm(candidate_emb, user_emb.unsqueeze(-1)).squeeze(-1)
    return candidates.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)


# ---------------------------------------------------------------------- registry
R = TypeVar("R", bound=Type[Recommender])
_REGISTRY: Dict[str, Type[Recommender]] = {}


def register_recommender(name: str) -> Callable[[R], R]:
    r"""Class decorator: register a :class:`Recommender` subclass under ``name`` (lower case;
    the name model folders store, so it must never change once published)."""
    if not isinstance(name, str) or not name or name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"register_recommender: name must be a non-empty lower-case identifier, got {name!r}")

    def wrap(cls: R) -> R:
        if not (isinstance(cls, type) and issubclass(cls, Recommender)):
            raise TypeError(f"register_recommender({name!r}): {cls!r} is not a Recommender subclass")
        known = _REGISTRY.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"register_recommender: {name!r} is already registered to {known.__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def _builtin() -> Dict[str, Type[Recommender]]:
    import graphkit.nn.models  # noqa: F401  (registers the built-in recommenders)

    return _REGISTRY


def list_recommenders() -> List[str]:
    """The registered recommender names, sorted."""
    return sorted(_builtin())


def get_recommender(name: str) -> Type[Recommender]:
    """The recommender class registered as ``name``."""
    registry = _builtin()
    if name not in registry:
        raise ValueError(f"unknown recommender {name!r}; known: {sorted(registry)}")
    return registry[name]


def create_recommender(name: str, num_users: int, num_items: int, **kwargs: Any) -> Recommender:
    r"""Build the recommender registered as ``name``: ``get_recommender(name)(num_users,
    num_items, **kwargs)``. Unknown keyword arguments raise a :class:`TypeError` naming the model."""
    cls = get_recommender(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"create_recommender({name!r}): unexpected arguments {unknown}; "
                            f"{cls.__name__} takes {[p for p in params if p != 'self']}")
    return cls(num_users, num_items, **kwargs)


def recommender_name(model: Any) -> str:
    """The registered name of ``model``'s class (or of the class ``model`` itself); exact class
    match, so a subclass must register a name of its own."""
    cls = model if isinstance(model, type) else type(model)
    for name, known in _builtin().items():
        if known is cls:
            return name
    raise TypeError(f"{cls.__name__} is not a registered recommender (see register_recommender)")
