import pytest
import torch

from graphkit.utils import ranking
from graphkit.utils.ranking import PairIndex, topk_ties_by_index


def definition(scores, k):
    """The documented rule: descending score, equal scores by ascending index."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def _scores(kind, b, n, g):
    if kind == "normal":
        return torch.randn(b, n, generator=g)
    if kind == "few-values":  # ties everywhere, also across the cut-off
        return torch.randint(0, 3, (b, n), generator=g).float()
    if kind == "rounded":  # some ties
        return (torch.randn(b, n, generator=g) * 4).round()
    if kind == "masked":  # most entries -inf, as after masking seen items
        s = torch.randn(b, n, generator=g)
        s[torch.rand(b, n, generator=g) < 0.97] = float("-inf")
        return s
    if kind == "top-in-last-chunk":  # the largest scores sit in the short last chunk
        s = torch.randn(b, n, generator=g)
        s[:, -(n % 64 or 64):] += 100.0
        return s
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["normal", "few-values", "rounded", "masked", "top-in-last-chunk"])
@pytest.mark.parametrize("layout", ["contiguous", "row-slice", "transposed"])
def test_topk_ties_by_index_is_the_definition_on_wide_rows(kind, layout):
    g = torch.Generator().manual_seed(sum(map(ord, kind + layout)))
    for _ in range(8):
        b = int(torch.randint(1, 25, (), generator=g))
        n = int(torch.randint(2048, 7000, (), generator=g))  # wide: the chunk prefilter runs
        k = int(torch.randint(1, 12, (), generator=g))
        scores = _scores(kind, b, n, g)
        if layout == "row-slice":  # rows longer than the view, with an offset
            wide = torch.full((b, n + 77), 5.0)
            wide[:, 40:40 + n] = scores
            scores = wide[:, 40:40 + n]
        elif layout == "transposed":
            scores = scores.t().contiguous().t()
        assert torch.equal(topk_ties_by_index(scores, k), definition(scores, k)), (kind, b, n, k)


def test_topk_ties_by_index_narrow_rows_nan_and_float64():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (9, 50), generator=g).double()
    assert torch.equal(topk_ties_by_index(scores, 7), definition(scores, 7))
    wide = torch.randn(3, 4096, generator=g, dtype=torch.float64)
    wide[1, 4095] = wide[1].max() + 1  # the short last chunk does not exist here: 4096 = 64 x 64
    assert torch.equal(topk_ties_by_index(wide, 5), definition(wide, 5))
    wide[0, 17] = float("nan")  # NaN takes the exact path and ranks first, as torch.topk does
    assert topk_ties_by_index(wide, 5)[0, 0].item() == 17


def test_prefilter_hands_only_about_k_candidates_to_the_exact_stage(monkeypatch):
    # the exact stage used to receive every entry of the kept chunks (k x 64 per row); now only
    # the entries at or above the k-th chunk maximum reach it
    widths = []
    exact = ranking._topk_exact

    def spy(scores, k):
        widths.append(scores.size(1))
        return exact(scores, k)

    monkeypatch.setattr(ranking, "_topk_exact", spy)
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(64, 50_000, generator=g)
    top = topk_ties_by_index(scores, 20)
    assert torch.equal(top, definition(scores, 20))
    assert len(widths) == 1 and widths[0] <= 40


def test_pair_index_sorted_and_unsorted_input_agree():
    g = torch.Generator().manual_seed(1)
    pairs = torch.stack([torch.randint(0, 30, (400,), generator=g), torch.randint(0, 50, (400,), generator=g)])
    shuffled = PairIndex(pairs, 30, 50)  # unsorted, with duplicates
    keys = torch.unique(pairs[0] * 50 + pairs[1])
    ordered = PairIndex(torch.stack([keys // 50, keys % 50]), 30, 50)  # sorted: no sort needed
    for name in ("keys", "items", "counts", "indptr"):
        assert torch.equal(getattr(shuffled, name), getattr(ordered, name)), name
    assert torch.equal(shuffled.keys, keys)
    users = torch.tensor([3, 0, 29])
    rows, items = ordered.block(users)
    for r, u in enumerate(users.tolist()):
        assert sorted(items[rows == r].tolist()) == sorted(set(pairs[1][pairs[0] == u].tolist()))
    assert ordered.contains(users, items.new_tensor([[0, 1], [2, 3], [4, 5]])).shape == (3, 2)
    empty = PairIndex(torch.zeros(2, 0, dtype=torch.long), 4, 5)
    assert empty.keys.numel() == 0 and empty.counts.tolist() == [0, 0, 0, 0]
    one = PairIndex(torch.tensor([[2], [4]]), 4, 5)
    assert one.keys.tolist() == [14] and one.indptr.tolist() == [0, 0, 0, 1, 1]


def test_ties_across_the_cut_off_take_the_lowest_indices_without_a_full_sort(monkeypatch):
    # rows tied at the cut-off: all equal (an untrained model), ties far beyond the first
    # columns, ties at -inf (a user who has seen almost every item), ties at +inf
    def no_full_row_sort(*args, **kwargs):
        raise AssertionError("a tied row was sorted in full")

    n, k = 5000, 10
    rows = [torch.zeros(n)]
    late = torch.full((n,), -1.0)
    late[[30, 4100, 4200, 4300, 4999]] = 2.0  # 5 above the tie value, the tied ones late
    late[[4500, 4600, 4700, 4800, 4900, 4950, 4990]] = 1.0
    rows.append(late)
    seen = torch.full((n,), float("-inf"))
    seen[[7, 3000, 11]] = torch.tensor([0.5, 0.5, 3.0])
    rows.append(seen)
    inf = torch.randn(n, generator=torch.Generator().manual_seed(0))
    inf[::97] = float("inf")
    rows.append(inf)
    g = torch.Generator().manual_seed(5)
    rows += list(torch.randint(0, 3, (4, n), generator=g).float())
    scores = torch.stack(rows)
    expected = definition(scores, k)
    monkeypatch.setattr(torch, "sort", lambda x, *a, **kw: no_full_row_sort() if x.size(-1) > k
                        else _sort(x, *a, **kw))
    assert torch.equal(ranking._topk_exact(scores, k), expected)
    assert torch.equal(topk_ties_by_index(scores, k), expected)


_sort = torch.sort


# ------------------------------------------------------------------ DotProductTopK


def _dot_case(seed, num_users=300, num_items=3000, dim=16):
    """Embeddings and excluded pairs with the hard cases: a zero user, duplicated items (ties
    across the cut-off), integer-valued scores (ties everywhere) for one user, a user who has
    seen all but 5 items, norms spread over two orders of magnitude."""
    g = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(num_users, dim, generator=g)
    item_emb = torch.randn(num_items, dim, generator=g) * torch.rand(num_items, 1, generator=g).mul(3).add(0.03)
    user_emb[3] = 0
    item_emb[100:140] = item_emb[99]
    user_emb[5] = 0
    user_emb[5, 0] = 1
    item_emb[:, 0] = item_emb[:, 0].round()
    deg = torch.randint(0, 60, (num_users,), generator=g)
    deg[7] = num_items - 5
    rows = torch.repeat_interleave(torch.arange(num_users), deg)
    cols = torch.cat([torch.randperm(num_items, generator=g)[:int(n)] for n in deg])
    index = PairIndex(torch.stack([rows, cols]), num_users, num_items)
    return user_emb, item_emb, index


def _reference(user_emb, item_emb, rows, cols, k):
    scores = user_emb @ item_emb.t()
    scores[rows, cols] = float("-inf")
    top = definition(scores, k)
    return top, scores.gather(1, top)


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
@pytest.mark.parametrize("tile,group", [(256, 8), (512, 32), (1000, 10)])
def test_dot_product_topk_is_the_full_ranking(precision, tile, group):
    user_emb, item_emb, index = _dot_case(1)
    rows, cols = index.block(torch.arange(user_emb.size(0)))
    ranker = ranking.DotProductTopK(item_emb, tile_items=tile, group_size=group, block_users=64,
                                    precision=precision)
    assert ranker.screen_dtype == getattr(torch, precision)
    for k in (1, 20):
        top, values = ranker(user_emb, k, rows, cols)
        ref_top, ref_values = _reference(user_emb, item_emb, rows, cols, k)
        assert torch.equal(top, ref_top)
        assert torch.allclose(values, ref_values, rtol=1e-5, atol=1e-5)
    # the user with 5 unseen items: those first, then seen ones by ascending id, at -inf
    top, values = ranker(user_emb, 8, rows, cols)
    assert torch.isinf(values[7, 5:]).all() and torch.isfinite(values[7, :5]).all()


def test_dot_product_topk_screens_instead_of_scoring_everything(monkeypatch):
    # on well-spread scores almost every row is settled by the screening: a few dozen items
    # re-scored per user, no row scored against every item
    g = torch.Generator().manual_seed(2)
    user_emb, item_emb = torch.randn(128, 32, generator=g), torch.randn(20000, 32, generator=g)
    ranker = ranking.DotProductTopK(item_emb, precision="bfloat16")
    full_rows = []
    monkeypatch.setattr(ranker, "_full_rows", lambda u, *a: full_rows.append(u.size(0)))
    rescored = []
    rescore = ranker._rescore
    monkeypatch.setattr(ranker, "_rescore", lambda u, k, cand, *a: rescored.append(cand.sum(1).float().mean())
                        or rescore(u, k, cand, *a))
    top, _ = ranker(user_emb, 20)
    assert not full_rows
    assert float(torch.stack(rescored).mean()) * ranker.group < 0.1 * item_emb.size(0)
    assert torch.equal(top, definition(user_emb @ item_emb.t(), 20))


def test_dot_product_topk_bad_input():
    with pytest.raises(ValueError, match="float32"):
        ranking.DotProductTopK(torch.randn(100, 4, dtype=torch.float64))
    bad = torch.randn(100, 4)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        ranking.DotProductTopK(bad)
    with pytest.raises(ValueError, match="multiple of"):
        ranking.DotProductTopK(torch.randn(100, 4), tile_items=100, group_size=32)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 100\]"):
        ranking.DotProductTopK(torch.randn(100, 4))(torch.randn(2, 4), 101)


def test_bfloat16_screening_assumes_float32_accumulation():
    # the error bound of the bfloat16 screening holds only if products are summed in float32;
    # the check that guards it must tell the two apart
    assert ranking._bf16_products_accumulate_in_float32(torch.device("cpu"))
    real_mm = torch.mm

    def bf16_accumulating_mm(a, b, *args, **kwargs):
        out = torch.zeros(a.size(0), b.size(1), dtype=torch.bfloat16)
        for j in range(a.size(1)):  # every partial sum rounded to bfloat16
            out = out + real_mm(a[:, j:j + 1].float(), b[j:j + 1].float()).bfloat16()
        return out

    import unittest.mock
    with unittest.mock.patch.object(torch, "mm", bf16_accumulating_mm):
        assert not ranking._bf16_products_accumulate_in_float32(torch.device("cpu"))


def test_dot_product_scorer_ranks_without_scores_only_where_it_applies():
    g = torch.Generator().manual_seed(4)
    user_emb, item_emb = torch.randn(50, 8, generator=g), torch.randn(9000, 8, generator=g)
    scorer = ranking.DotProductScorer(user_emb, item_emb)
    assert scorer.ranks_without_scores(20)
    top, _ = scorer.topk(torch.arange(50), 20)
    assert torch.equal(top, definition(user_emb @ item_emb.t(), 20))
    assert not ranking.DotProductScorer(user_emb, item_emb[:3000]).ranks_without_scores(20)  # few items
    assert ranking.screening_group_size(9000) == 8 and scorer.ranks_without_scores(281)
    assert not scorer.ranks_without_scores(282)  # k too large for the 1125 screening groups
    assert not ranking.DotProductScorer(user_emb.double(), item_emb.double()).ranks_without_scores(20)
    nan_user = user_emb.clone()
    nan_user[2, 0] = float("nan")
    assert ranking.DotProductScorer(nan_user, item_emb).topk(torch.arange(5), 20) is None  # scored, then named


def test_dot_product_topk_takes_unsorted_exclusions_and_refuses_bad_ones():
    user_emb, item_emb, index = _dot_case(3, num_users=50)
    rows, cols = index.block(torch.arange(50))
    ranker = ranking.DotProductTopK(item_emb, tile_items=256, group_size=8)
    ref = _reference(user_emb, item_emb, rows, cols, 10)[0]
    perm = torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ranker(user_emb, 10, rows[perm], cols[perm])[0], ref)
    with pytest.raises(ValueError, match=r"exclude_cols must lie in \[0, 3000\)"):
        ranker(user_emb, 10, rows[:3], torch.tensor([0, 5, 3000]))
    with pytest.raises(ValueError, match=r"exclude_rows must lie in \[0, 50\)"):
        ranker(user_emb, 10, torch.tensor([-1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="equal length"):
        ranker(user_emb, 10, rows[:3], cols[:2])
    with pytest.raises(ValueError, match=r"user_emb must be \[B, 16\]"):
        ranker(user_emb[:, :8], 10)
    # embeddings that require grad: no graph is built, nothing is kept alive
    top, values = ranking.DotProductTopK(item_emb.requires_grad_())(user_emb.requires_grad_(), 5)
    assert not values.requires_grad
