r"""Exact full-ranking evaluation of recommenders.

Every user with at least one held-out item is scored against **all** items, in blocks bounded
by bytes: a block holds as many users as fit in ``memory_budget`` bytes of float32 scores
(default 512 MiB, :func:`~graphkit.nn.models.recommender.score_block_rows`), and at most
``batch_size``, so memory stays flat however many items there are. Items the user
interacted with in the ``exclude`` parts (training, and validation at test time) are masked
before ranking. One top-``max(ks)`` pass yields every metric at every cut-off.

The metrics are the functions of :mod:`graphkit.evaluate.ranking` (``recall``, ``ndcg``,
``precision``, ``hit``, ``mrr``, ``map`` and ``f1`` at each cut-off; formulas in their
docstrings), looked up by name with :func:`graphkit.evaluate.get_metric` and applied to the
top-K hit matrix of each block of users (:func:`topk_hits`). Each is averaged over the users
that have at least one held-out item; ``f1@K`` is :math:`2PR/(P+R)` of the *averaged*
precision and recall, as in the UltraGCN and LCFN evaluation code.

**Ties.** Items with exactly equal scores are ranked by ascending item index, so results are
deterministic and independent of the top-k kernel. This matters for untrained or degenerate
models; it is enforced cheaply (only rows with a tie at the cut-off are re-sorted).

**Cost.** Exact full ranking scores every evaluated user against every item: ``2 B I F``
flop per block of ``B`` users, so on data whose users and items both grow with the number of
interactions ``n`` the cost grows as ``n^2``, not ``n``: a growth exponent of 2 is what exact
full ranking costs, and only its constant can be improved. Two paths:

* embedding models (:class:`DotProductScorer`, with enough items) rank without a score block
  (:class:`~graphkit.utils.ranking.DotProductTopK`): a screening product in cache-sized
  tiles, in bfloat16 where the hardware has it, keeps group maxima, and a certified error
  bound leaves about 40 groups of items per user to score exactly in float32. It is the
  exact top-k of those float32 scores (ties by item index); they can differ from the
  score-block product's in the last bit, so two items within one rounding of each other
  may swap (4 of 29,858 Gowalla users with trained LightGCN embeddings, identical metrics).
  On 400k items it ranks about 1.7x faster on one core than the score-block path; its
  memory is about ``0.45 I`` bytes per user;
* any other ``score_fn``: one ``[B, F] x [F, I]`` product into a block bounded by bytes,
  ``-inf`` written over the block's training items, and
  :func:`~graphkit.utils.topk_ties_by_index`, whose only pass over the ``B x I`` scores
  computes maxima of 64-column chunks.

The pair indexes are built once per call (linear in ``n``).

**NaN.** A NaN score is an error naming the user and the item (it would otherwise rank first).
Infinite scores are allowed: only their order matters, and ``-inf`` is how masked items rank.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor

from graphkit.evaluate.ranking import RANKING_METRICS, f1_from_precision_recall
from graphkit.evaluate.registry import get_metric
from graphkit.nn.models.recommender import DEFAULT_SCORE_MEMORY, score_block_rows  # noqa: F401
from graphkit.utils.ranking import DotProductScorer, PairIndex, topk_ties_by_index  # noqa: F401

ALL_METRICS = RANKING_METRICS

ScoreFn = Callable[[Tensor], Tensor]


def _block_rows(score_fn, num_items: int, k: int, memory_budget: Optional[int], batch_size: Optional[int],
                where: str) -> int:
    """Users per block: a ``[B, I]`` float32 score block within ``memory_budget``, or, for a
    scorer that ranks without one (:meth:`DotProductScorer.topk`), one byte per item and
    user (its working memory is about ``0.45 I`` bytes per user). A budget below one float32
    row is refused either way."""
    rows = score_block_rows(num_items, memory_budget, batch_size, where=where)
    ranks = getattr(score_fn, "ranks_without_scores", None)
    if ranks is not None and ranks(k):
        rows = score_block_rows(num_items, memory_budget, batch_size, bytes_per_score=1, where=where)
    return rows


def _check_pairs(name: str, pairs: Tensor, num_users: int, num_items: int) -> Tensor:
    if not isinstance(pairs, Tensor) or pairs.dim() != 2 or pairs.size(0) != 2:
        raise ValueError(f"{name}: expected a [2, E] tensor of (user, item) pairs, got "
                         f"{tuple(pairs.shape) if isinstance(pairs, Tensor) else type(pairs).__name__}")
    pairs = pairs.long()
    if pairs.numel():
        if int(pairs[0].min()) < 0 or int(pairs[0].max()) >= num_users:
            raise ValueError(f"{name}: user ids must lie in [0, {num_users}), found "
                             f"[{int(pairs[0].min())}, {int(pairs[0].max())}]")
        if int(pairs[1].min()) < 0 or int(pairs[1].max()) >= num_items:
            raise ValueError(f"{name}: item ids must lie in [0, {num_items}), found "
                             f"[{int(pairs[1].min())}, {int(pairs[1].max())}]")
    return pairs


def topk_hits(
    score_fn: ScoreFn,
    num_users: int,
    num_items: int,
    test: Tensor,
    exclude: Iterable[Optional[Tensor]] = (),
    k: int = 20,
    batch_size: int = 2048,
    device: Optional[torch.device] = None,
    users: Optional[Tensor] = None,
    memory_budget: Optional[int] = None,
) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
    r"""The full-ranking pass: ranks all items for every user with held-out items, in blocks,
    and yields each block's top-``k`` hit matrix, the input of the
    :mod:`graphkit.evaluate.ranking` metrics.

    Arguments are those of :func:`full_ranking` (``k`` is the largest cut-off). Inputs are
    checked when this is called; scoring happens as the iterator is consumed.

    Yields:
        ``(users, hits, num_relevant)``: ``[B]`` user ids (ascending), a ``[B, k]`` bool
        matrix (``hits[b, i]``: the item user ``users[b]`` ranks at position ``i + 1`` is a
        held-out item), and the ``[B]`` number of held-out items of each user.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > num_items:
        raise ValueError(f"the largest cut-off K={k} exceeds the number of items ({num_items})")
    batch_size = _block_rows(score_fn, num_items, k, memory_budget, batch_size, "full_ranking")
    test = _check_pairs("test", test, num_users, num_items)
    excl = [_check_pairs(f"exclude[{i}]", e, num_users, num_items)
            for i, e in enumerate(exclude) if e is not None]

    dev = torch.device(device) if device is not None else test.device
    test_index = PairIndex(test, num_users, num_items, dev)
    excl_index = (PairIndex(torch.cat(excl, dim=1), num_users, num_items, dev) if excl else None)

    eval_users = (test_index.counts > 0).nonzero().view(-1)
    if users is not None:
        keep = torch.zeros(num_users, dtype=torch.bool, device=dev)
        keep[users.to(dev).long()] = True
        eval_users = eval_users[keep[eval_users]]
    return _topk_hit_blocks(score_fn, num_items, eval_users, test_index, excl_index, k,
                            batch_size, dev)


@torch.no_grad()
def _topk_hit_blocks(score_fn: ScoreFn, num_items: int, eval_users: Tensor,
                     test_index: PairIndex, excl_index: Optional[PairIndex], k: int,
                     batch_size: int, dev: torch.device) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
    for start in range(0, eval_users.numel(), batch_size):
        block = eval_users[start:start + batch_size]
        ranked = score_fn.topk(block, k, excl_index) if hasattr(score_fn, "topk") else None
        if ranked is not None:  # exact top-k without a [B, I] score block (DotProductScorer)
            top = ranked[0].to(dev)
            yield block, test_index.contains(block, top), test_index.counts[block]
            continue
        scores = score_fn(block)
        if scores.shape != (block.numel(), num_items):
            raise ValueError(f"score_fn returned shape {tuple(scores.shape)}, expected "
                             f"({block.numel()}, {num_items})")
        scores = scores.to(dev, torch.float32)
        if excl_index is not None:
            rows, cols = excl_index.block(block)
            # never write into a view of the caller's tensor, unless it is declared scratch
            if scores._base is not None and not getattr(score_fn, "returns_scratch", False):
                scores = scores.clone()
            scores[rows, cols] = float("-inf")
        top = topk_ties_by_index(scores, k)
        # top-k ranks NaN above every number, so a row with a NaN has one in its top-k
        if bool(torch.isnan(scores.gather(1, top)).any()):
            row, item = torch.isnan(scores).nonzero()[0].tolist()
            raise ValueError(f"score_fn returned NaN for user {int(block[row])} (item "
                             f"{item}; {int(torch.isnan(scores).sum())} NaN scores in a "
                             f"block of {block.numel()} users); scores must not be NaN")
        yield block, test_index.contains(block, top), test_index.counts[block]


@torch.no_grad()
def full_ranking(
    score_fn: ScoreFn,
    num_users: int,
    num_items: int,
    test: Tensor,
    exclude: Iterable[Optional[Tensor]] = (),
    ks: Sequence[int] = (20,),
    metrics: Sequence[str] = ALL_METRICS,
    batch_size: int = 2048,
    device: Optional[torch.device] = None,
    users: Optional[Tensor] = None,
    return_per_user: bool = False,
    memory_budget: Optional[int] = None,
) -> Dict[str, float]:
    r"""Rank all items for every user with held-out items and compute top-K metrics.

    Args:
        score_fn (callable): maps a ``[B]`` long tensor of user ids to a ``[B, num_items]``
            score tensor (higher is better; NaN is an error). Called once per block. Its
            result is masked in place only if it is a fresh tensor or the callable says it
            returns scratch memory (``score_fn.returns_scratch``, as :class:`DotProductScorer`
            does); otherwise a copy is masked. For embedding models use
            :class:`DotProductScorer`: it also ranks without score blocks (its ``topk``),
            which :func:`full_ranking` uses when it applies.
        num_users (int): number of users.
        num_items (int): number of items.
        test (torch.Tensor): ``[2, E]`` held-out ``(user, item)`` pairs.
        exclude (iterable of torch.Tensor): ``[2, E]`` pairs masked before ranking, e.g.
            ``(train,)`` for validation and ``(train, valid)`` for testing. ``None`` entries
            are skipped.
        ks (sequence of int): cut-offs. (default: ``(20,)``)
        metrics (sequence of str): any of ``recall, ndcg, precision, hit, mrr, map, f1``
            (the :mod:`graphkit.evaluate.ranking` metrics).
        batch_size (int, optional): at most this many users per block (``None``: as many as
            ``memory_budget`` allows). (default: ``2048``)
        device (torch.device, optional): where masking and ranking run; defaults to the
            device of the first score block.
        users (torch.Tensor, optional): restrict evaluation to these users (those without
            held-out items are still skipped).
        return_per_user (bool): also return ``"users"`` and per-user values under
            ``"per_user"`` (a dict of tensors). (default: ``False``)
        memory_budget (int, optional): bytes one block of float32 scores may take; the block
            holds ``memory_budget // (4 * num_items)`` users (at most ``batch_size``), or
            ``memory_budget // num_items`` when :class:`DotProductScorer` ranks without
            scores. Smaller than one user's row of float32 scores is a :class:`ValueError`
            raised before any scoring.
            (default: ``DEFAULT_SCORE_MEMORY``, 512 MiB)

    Returns:
        dict: ``{"recall@20": ..., "ndcg@20": ..., ..., "num_users": n}``.
    """
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {ALL_METRICS}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    blocks = topk_hits(score_fn, num_users, num_items, test, exclude, ks[-1], batch_size,
                       device, users, memory_budget)

    # Per-user metrics are summed over blocks; f1@K is derived from the averaged precision and
    # recall at the end (ranking.f1_at_k), so those two are summed when f1 is asked for.
    summed = sorted((set(metrics) - {"f1"}) | ({"precision", "recall"} if "f1" in metrics else set()))
    per_user_fns = {f"{m}@{k}": get_metric(f"{m}@{k}") for m in summed for k in ks}
    sums: Dict[str, Tensor] = {}
    per_user = {key: [] for key in per_user_fns} if return_per_user else None
    seen = []
    for block, hits, num_relevant in blocks:
        seen.append(block)
        for key, metric in per_user_fns.items():
            values = metric(hits, num_relevant)
            sums[key] = sums[key] + values.sum() if key in sums else values.sum()
            if per_user is not None:
                per_user[key].append(values.cpu())

    eval_users = torch.cat(seen) if seen else torch.zeros(0, dtype=torch.long)
    n_eval = eval_users.numel()
    out: Dict[str, float] = {}
    denom = max(n_eval, 1)
    mean = {key: float(sums[key]) / denom if key in sums else 0.0 for key in per_user_fns}
    for m in metrics:
        for k in ks:
            key = f"{m}@{k}"
            if m == "f1":
                out[key] = f1_from_precision_recall(mean[f"precision@{k}"], mean[f"recall@{k}"])
            else:
                out[key] = mean[key]
    out["num_users"] = int(n_eval)
    if per_user is not None:
        out["users"] = eval_users.cpu()
        out["per_user"] = {k: torch.cat(v) if v else torch.zeros(0) for k, v in per_user.items()}
    return out
