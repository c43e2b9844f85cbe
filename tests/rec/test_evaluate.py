import math

import numpy as np
import pytest
import torch

from graphkit.rec.evaluate import full_ranking


def brute_force(scores, train, test, ks):
    """Per-user loops, stable sort by (-score, item)."""
    num_users, num_items = scores.shape
    train_sets = [set() for _ in range(num_users)]
    test_sets = [set() for _ in range(num_users)]
    for u, i in train.t().tolist():
        train_sets[u].add(i)
    for u, i in test.t().tolist():
        test_sets[u].add(i)
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "precision", "hit", "mrr", "map") for k in ks}
    for u in range(num_users):
        if not test_sets[u]:
            continue
        s = scores[u].clone()
        for i in train_sets[u]:
            s[i] = -math.inf
        order = sorted(range(num_items), key=lambda i: (-float(s[i]), i))
        for k in ks:
            top = order[:k]
            hits = [1.0 if i in test_sets[u] else 0.0 for i in top]
            n = len(test_sets[u])
            out[f"recall@{k}"].append(sum(hits) / n)
            out[f"precision@{k}"].append(sum(hits) / k)
            out[f"hit@{k}"].append(float(sum(hits) > 0))
            dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(n, k)))
            out[f"ndcg@{k}"].append(dcg / idcg)
            rr = [h / (j + 1) for j, h in enumerate(hits)]
            out[f"mrr@{k}"].append(max(rr))
            ap, c = 0.0, 0
            for j, h in enumerate(hits):
                if h:
                    c += 1
                    ap += c / (j + 1)
            out[f"map@{k}"].append(ap / min(n, k))
    res = {key: float(np.mean(v)) for key, v in out.items()}
    for k in ks:
        p, r = res[f"precision@{k}"], res[f"recall@{k}"]
        res[f"f1@{k}"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return res


def random_split(num_users, num_items, density, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(num_users, num_items, generator=g) < density
    pairs = mask.nonzero().t()
    perm = torch.randperm(pairs.size(1), generator=g)
    cut = int(0.7 * pairs.size(1))
    return pairs[:, perm[:cut]], pairs[:, perm[cut:]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("integer_scores", [False, True])
def test_full_ranking_matches_brute_force(seed, integer_scores):
    num_users, num_items = 23, 37
    train, test = random_split(num_users, num_items, 0.2, seed)
    g = torch.Generator().manual_seed(100 + seed)
    if integer_scores:  # many exact ties: exercises the tie rule
        scores = torch.randint(0, 4, (num_users, num_items), generator=g).float()
    else:
        scores = torch.randn(num_users, num_items, generator=g)
    ks = (1, 5, 10)
    ours = full_ranking(lambda u: scores[u], num_users, num_items, test, exclude=(train,), ks=ks,
                        batch_size=7)
    ref = brute_force(scores, train, test, ks)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert ours["num_users"] == int(torch.unique(test[0]).numel())


def test_users_without_test_items_are_excluded_and_training_items_masked():
    # user 0: test item 2; user 1: no test items; the best-scored item (0) is a training item.
    train = torch.tensor([[0, 1], [0, 0]])
    test = torch.tensor([[0], [2]])
    scores = torch.tensor([[9.0, 1.0, 5.0], [9.0, 8.0, 7.0]])
    res = full_ranking(lambda u: scores[u], 2, 3, test, exclude=(train,), ks=(1,))
    assert res["num_users"] == 1
    assert res["recall@1"] == 1.0 and res["ndcg@1"] == 1.0
    res = full_ranking(lambda u: scores[u], 2, 3, test, exclude=(), ks=(1,))
    assert res["recall@1"] == 0.0


def test_per_user_values_and_restriction():
    train, test = random_split(10, 20, 0.3, 5)
    scores = torch.randn(10, 20)
    res = full_ranking(lambda u: scores[u], 10, 20, test, exclude=(train,), ks=(5,),
                       return_per_user=True)
    assert res["per_user"]["recall@5"].mean().item() == pytest.approx(res["recall@5"])
    sub = full_ranking(lambda u: scores[u], 10, 20, test, exclude=(train,), ks=(5,),
                       users=torch.tensor([0, 1]))
    assert sub["num_users"] <= 2


def test_does_not_write_into_callers_tensor():
    train, test = random_split(6, 8, 0.4, 3)
    scores = torch.randn(6, 8)
    before = scores.clone()
    full_ranking(lambda u: scores[: u.numel()], 6, 8, test, exclude=(train,), ks=(2,))
    assert torch.equal(scores, before)


def test_dot_product_scorer_reuses_its_buffer_and_matches():
    from graphkit.rec.evaluate import DotProductScorer

    g = torch.Generator().manual_seed(7)
    user_emb, item_emb = torch.randn(23, 4, generator=g), torch.randn(37, 4, generator=g)
    train, test = random_split(23, 37, 0.2, 4)
    scorer = DotProductScorer(user_emb, item_emb)
    a = scorer(torch.tensor([3, 5, 7]))
    assert torch.allclose(a, user_emb[[3, 5, 7]] @ item_emb.t())
    ptr = a.data_ptr()
    assert scorer(torch.tensor([1, 2])).data_ptr() == ptr  # same storage, smaller block
    ours = full_ranking(scorer, 23, 37, test, exclude=(train,), ks=(1, 5), batch_size=7)
    ref = brute_force(user_emb @ item_emb.t(), train, test, (1, 5))
    for key in ("recall@5", "ndcg@5", "map@1"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    with pytest.raises(ValueError, match=r"\[U, F\] and \[I, F\]"):
        DotProductScorer(user_emb, torch.randn(37, 5))


def test_bad_input():
    test = torch.tensor([[0], [5]])
    with pytest.raises(ValueError, match="item ids must lie in"):
        full_ranking(lambda u: torch.zeros(u.numel(), 3), 1, 3, test, ks=(1,))
    with pytest.raises(ValueError, match="exceeds the number of items"):
        full_ranking(lambda u: torch.zeros(u.numel(), 3), 1, 3, torch.tensor([[0], [1]]), ks=(5,))
    with pytest.raises(ValueError, match="unknown metric"):
        full_ranking(lambda u: torch.zeros(u.numel(), 3), 1, 3, torch.tensor([[0], [1]]), ks=(1,),
                     metrics=("auc",))
    with pytest.raises(ValueError, match="score_fn returned shape"):
        full_ranking(lambda u: torch.zeros(u.numel(), 2), 1, 3, torch.tensor([[0], [1]]), ks=(1,))


@pytest.mark.parametrize("kind", ["normal", "ties", "masked", "masked-ties", "nan"])
def test_wide_topk_prefilter_is_exact(kind):
    from graphkit.utils.ranking import _topk_exact, topk_ties_by_index

    g = torch.Generator().manual_seed(7)
    for trial in range(12):
        b = int(torch.randint(1, 40, (), generator=g))
        n = int(torch.randint(4096, 9000, (), generator=g))  # wide rows: the chunk prefilter runs
        k = int(torch.randint(1, 9, (), generator=g))
        if kind in ("ties", "masked-ties"):
            scores = torch.randint(0, 5, (b, n), generator=g).float()
        else:
            scores = torch.randn(b, n, generator=g)
        if kind.startswith("masked"):
            scores[torch.rand(b, n, generator=g) < 0.95] = float("-inf")
            scores[0, : n - 3] = float("-inf")  # a row with only 3 finite scores
        if kind == "nan":
            scores[0, 17] = float("nan")
        top = topk_ties_by_index(scores, k)
        if kind == "nan":
            assert torch.equal(top, _topk_exact(scores, k))
        else:  # the definition: stable sort by descending score, ties by ascending index
            ref = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
            assert torch.equal(top, ref), (trial, b, n, k)


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_full_ranking_is_the_evaluate_metrics_on_its_hit_matrix(batch_size):
    from graphkit.evaluate import get_metric
    from graphkit.rec.evaluate import ALL_METRICS, topk_hits

    train, test = random_split(23, 37, 0.2, 0)
    g = torch.Generator().manual_seed(11)
    scores = torch.randint(0, 4, (23, 37), generator=g).float()
    ks = (1, 5, 10)
    res = full_ranking(lambda u: scores[u], 23, 37, test, exclude=(train,), ks=ks,
                       batch_size=batch_size, return_per_user=True)
    blocks = list(topk_hits(lambda u: scores[u], 23, 37, test, exclude=(train,), k=10,
                            batch_size=batch_size))
    users, hits, num = (torch.cat(parts) for parts in zip(*blocks))
    assert hits.dtype == torch.bool and hits.shape == (users.numel(), 10)
    assert torch.equal(users, res["users"]) and res["num_users"] == users.numel()
    for m in ALL_METRICS:
        for k in ks:
            key = f"{m}@{k}"
            value = get_metric(key)(hits, num)
            if m == "f1":
                assert res[key] == pytest.approx(value.item(), abs=1e-15)
            else:
                assert torch.equal(res["per_user"][key], value), key
                assert res[key] == pytest.approx(value.mean().item(), abs=1e-15), key


def test_full_ranking_dispatches_to_the_registry(monkeypatch):
    from graphkit.evaluate import registry

    train, test = random_split(10, 20, 0.3, 5)
    scores = torch.randn(10, 20)
    entry = registry._REGISTRY["ndcg@K"]
    monkeypatch.setitem(registry._REGISTRY, "ndcg@K", registry._Entry(
        lambda hits, num_relevant, k: torch.full((hits.size(0),), k / 100, dtype=torch.float64),
        entry.kind, per_user=True))
    res = full_ranking(lambda u: scores[u], 10, 20, test, exclude=(train,), ks=(3, 5),
                       metrics=("ndcg", "recall"))
    assert res["ndcg@3"] == pytest.approx(0.03) and res["ndcg@5"] == pytest.approx(0.05)
    assert 0 <= res["recall@5"] <= 1


def _counting_scorer(user_emb, item_emb, sizes):
    def score(users):
        sizes.append(users.numel())
        return user_emb[users] @ item_emb.t()
    return score


def test_full_ranking_blocks_are_bounded_by_bytes_and_results_do_not_change():
    gen = torch.Generator().manual_seed(3)
    num_users, num_items = 40, 300
    user_emb, item_emb = torch.randn(num_users, 8, generator=gen), torch.randn(num_items, 8, generator=gen)
    test = torch.stack([torch.randint(0, num_users, (200,), generator=gen),
                        torch.randint(0, num_items, (200,), generator=gen)])
    train = torch.stack([torch.randint(0, num_users, (300,), generator=gen),
                         torch.randint(0, num_items, (300,), generator=gen)])
    ref_sizes, sizes = [], []
    ref = full_ranking(_counting_scorer(user_emb, item_emb, ref_sizes), num_users, num_items, test,
                       exclude=(train,), ks=(5, 20))
    budget = 7 * num_items * 4 + 3  # seven rows of float32 scores
    got = full_ranking(_counting_scorer(user_emb, item_emb, sizes), num_users, num_items, test,
                       exclude=(train,), ks=(5, 20), memory_budget=budget)
    assert ref_sizes == [ref["num_users"]]  # default budget: one block here
    assert max(sizes) == 7 and sum(sizes) == ref["num_users"]
    assert all(n * num_items * 4 <= budget for n in sizes)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=1e-6)
    # batch_size still caps the block, the budget caps it further
    sizes.clear()
    full_ranking(_counting_scorer(user_emb, item_emb, sizes), num_users, num_items, test,
                 exclude=(train,), batch_size=5, memory_budget=budget)
    assert max(sizes) == 5


def test_full_ranking_block_memory_is_flat_as_items_grow():
    budget = 1 << 16
    for num_items in (100, 1000, 4000):
        sizes = []
        user_emb, item_emb = torch.randn(64, 4), torch.randn(num_items, 4)
        test = torch.stack([torch.arange(64), torch.arange(64) % num_items])
        full_ranking(_counting_scorer(user_emb, item_emb, sizes), 64, num_items, test, ks=(10,),
                     memory_budget=budget)
        assert max(sizes) == min(64, budget // (4 * num_items))
        assert max(sizes) * num_items * 4 <= budget


def test_full_ranking_budget_below_one_row_fails_before_scoring():
    def never(users):
        raise AssertionError("scored despite an impossible budget")
    test = torch.tensor([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="smaller than one user's row of scores \\(50 items x 4 bytes = 200"):
        full_ranking(never, 2, 50, test, ks=(5,), memory_budget=199)
    with pytest.raises(ValueError, match="memory_budget must be a positive"):
        full_ranking(never, 2, 50, test, ks=(5,), memory_budget=0)


@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_wide_full_ranking_hits_and_metrics_are_those_of_the_tie_rule(kind, monkeypatch):
    # wide rows (the top-k prefilter runs) with masked training items: the hit matrix is the one
    # of a stable sort by descending score, ties by ascending item id, and so are the metrics
    from graphkit.evaluate import get_metric
    from graphkit.rec.evaluate import DotProductScorer, topk_hits
    from graphkit.utils import ranking

    prefiltered = []
    prefilter = ranking._topk_by_chunk_maxima
    monkeypatch.setattr(ranking, "_topk_by_chunk_maxima",
                        lambda s, k: prefiltered.append(prefilter(s, k)) or prefiltered[-1])
    num_users, num_items, k = 40, 6000, 10
    g = torch.Generator().manual_seed(21)
    if kind == "ties":  # integer embeddings: exact scores, equal values across the cut-off
        user_emb = torch.randint(-3, 4, (num_users, 8), generator=g).float()
        item_emb = torch.randint(-3, 4, (num_items, 8), generator=g).float()
    else:
        user_emb, item_emb = torch.randn(num_users, 8, generator=g), torch.randn(num_items, 8, generator=g)
    train, test = random_split(num_users, num_items, 0.01, 4)
    masked = user_emb @ item_emb.t()
    masked[train[0], train[1]] = float("-inf")
    truth = torch.zeros(num_users, num_items, dtype=torch.bool)
    truth[test[0], test[1]] = True
    ranked = torch.sort(masked, dim=1, descending=True, stable=True)
    if kind == "ties":
        assert bool((ranked.values[:, k - 1] == ranked.values[:, k]).any())
    order = ranked.indices[:, :k]
    blocks = list(topk_hits(DotProductScorer(user_emb, item_emb), num_users, num_items, test,
                            exclude=(train,), k=k, batch_size=16))
    assert prefiltered and all(top is not None for top in prefiltered)
    users, hits, num = (torch.cat(parts) for parts in zip(*blocks))
    assert torch.equal(hits, truth[users].gather(1, order[users]))
    res = full_ranking(DotProductScorer(user_emb, item_emb), num_users, num_items, test,
                       exclude=(train,), ks=(5, k), batch_size=16, return_per_user=True)
    for key in ("recall@10", "ndcg@5", "map@10", "mrr@5", "precision@10"):
        assert torch.equal(res["per_user"][key], get_metric(key)(hits, num)), key


def test_full_ranking_of_embeddings_ranks_without_score_blocks(monkeypatch):
    # with enough items DotProductScorer ranks through its screened top-k: same metrics as
    # brute force, its score blocks never built, and blocks sized at one byte per item
    from graphkit.rec.evaluate import DotProductScorer

    g = torch.Generator().manual_seed(11)
    num_users, num_items = 40, 9000
    user_emb, item_emb = torch.randn(num_users, 8, generator=g), torch.randn(num_items, 8, generator=g)
    train, test = random_split(num_users, num_items, 0.002, 6)
    scorer = DotProductScorer(user_emb, item_emb)
    monkeypatch.setattr(DotProductScorer, "__call__", lambda self, u: pytest.fail("score block built"))
    ranked = []
    real_topk = DotProductScorer.topk
    monkeypatch.setattr(DotProductScorer, "topk",
                        lambda self, u, *a: ranked.append(u.numel()) or real_topk(self, u, *a))
    budget = 10 * num_items  # ten users' rows of one byte, two and a half of float32
    ours = full_ranking(scorer, num_users, num_items, test, exclude=(train,), ks=(5, 20), memory_budget=budget)
    ref = brute_force(user_emb @ item_emb.t(), train, test, (5, 20))
    for key in ("recall@20", "ndcg@20", "precision@5", "map@5"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert max(ranked) == 10 and sum(ranked) == ours["num_users"]
    with pytest.raises(ValueError, match="smaller than one user's"):
        full_ranking(scorer, num_users, num_items, test, exclude=(train,), memory_budget=num_items)
