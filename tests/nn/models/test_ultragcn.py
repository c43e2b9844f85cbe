import json
import os
import pathlib

import pytest
import torch
import torch.nn.functional as F

from graphkit.nn.models import UltraGCN
from graphkit.nn.models.ultragcn import item_item_constraint, sampled_dot


def random_graph(num_users=30, num_items=25, p=0.2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(num_users, num_items, generator=gen) < p
    mask[torch.arange(num_users), torch.randint(0, num_items, (num_users,), generator=gen)] = True
    return mask.nonzero().t().contiguous(), mask


def brute_force_omega(mask: torch.Tensor, keep_diagonal=True):
    a = mask.double()
    g_mat = a.t() @ a
    if not keep_diagonal:
        g_mat.fill_diagonal_(0)
    g = g_mat.sum(1)
    left = torch.where(g > 0, (g + 1).sqrt() / g.clamp(min=1), torch.zeros_like(g))
    return g_mat * left[:, None] / (g[None, :] + 1).sqrt()


def reference_loss(model, users, pos, neg, mask):
    """Straightforward dense re-statement of the UltraGCN objective."""
    du, di = mask.sum(1).double(), mask.sum(0).double()
    bu = (du + 1).sqrt() / du
    bi = 1 / (di + 1).sqrt()
    U, I = model.user_embedding.weight, model.item_embedding.weight
    pos_s = (U[users] * I[pos]).sum(-1)
    neg_s = (U[users][:, None, :] * I[neg]).sum(-1)
    pw = model.w1 + model.w2 * bu[users] * bi[pos]
    nw = model.w3 + model.w4 * bu[users][:, None] * bi[neg]
    lo = F.binary_cross_entropy_with_logits(pos_s, torch.ones_like(pos_s), weight=pw.float(), reduction="sum")
    lneg = F.binary_cross_entropy_with_logits(neg_s, torch.zeros_like(neg_s), weight=nw.float(),
                                              reduction="none").mean(-1).sum()
    omega = brute_force_omega(mask)
    w, nb = omega.topk(model.num_neighbors, dim=1)
    nb_s = (U[users][:, None, :] * I[nb[pos]]).sum(-1)
    li = -(w[pos].float() * F.logsigmoid(nb_s)).sum()
    norm = 0.5 * (U.pow(2).sum() + I.pow(2).sum())
    return lo + model.negative_weight * lneg + model.lambda_ * li + model.gamma * norm


@pytest.mark.parametrize("keep_diagonal", [True, False])
@pytest.mark.parametrize("chunk", [1 << 24, 50, 1])
def test_item_item_constraint_matches_brute_force(keep_diagonal, chunk):
    edge_index, mask = random_graph(40, 33, 0.15, seed=1)
    k = 5
    nb, w = item_item_constraint(edge_index, 40, 33, k, keep_diagonal=keep_diagonal, max_chunk_elements=chunk)
    omega = brute_force_omega(mask, keep_diagonal)
    assert nb.shape == (33, k) and w.shape == (33, k)
    expected_vals = omega.topk(k, dim=1).values.float()
    # Top-K weights agree (ties may pick different items, but with equal weight).
    assert torch.allclose(w.sort(dim=1, descending=True).values, expected_vals, rtol=1e-6, atol=1e-9)
    chosen = omega.gather(1, nb).float()
    nz = w > 0
    assert torch.allclose(chosen[nz], w[nz], rtol=1e-6)
    # No duplicate neighbours among the non-padded entries.
    for i in range(33):
        ids = nb[i][nz[i]]
        assert ids.unique().numel() == ids.numel()
    if not keep_diagonal:
        assert not ((nb == torch.arange(33)[:, None]) & nz).any()


def test_item_item_constraint_pads_sparse_rows():
    # item 2 co-occurs only with itself; item 3 is never seen
    edge_index = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 2]])
    nb, w = item_item_constraint(edge_index, 3, 4, 3)
    assert (w[3] == 0).all() and (nb[3] == 3).all()
    assert (w[2, 1:] == 0).all() and nb[2, 0] == 2 and w[2, 0] > 0
    # item 0 co-occurs with itself and item 1 (user 0): G_00 = 1, G_01 = 1, g_0 = 2, g_1 = 3
    expected = {0: 1 * (3 ** 0.5) / 2 / 3 ** 0.5, 1: 1 * (3 ** 0.5) / 2 / 4 ** 0.5}
    got = {int(j): float(v) for j, v in zip(nb[0], w[0]) if v > 0}
    assert got.keys() == expected.keys()
    for j in got:
        assert got[j] == pytest.approx(expected[j], rel=1e-6)


def test_item_item_constraint_large_item_set_memory_bounded():
    # 8k items: a dense item x item float64 matrix would take 512 MB. NumPy/SciPy allocations are
    # traced by tracemalloc; with a 2**18-element chunk bound the peak stays a few MB.
    import tracemalloc
    gen = torch.Generator().manual_seed(0)
    e = 20_000
    edge_index = torch.stack([torch.randint(0, 2_000, (e,), generator=gen),
                              torch.randint(0, 8_000, (e,), generator=gen)])
    tracemalloc.start()
    try:
        nb, w = item_item_constraint(edge_index, 2_000, 8_000, 10, max_chunk_elements=1 << 18)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert nb.shape == (8_000, 10) and torch.isfinite(w).all() and (w >= 0).all()
    assert peak < 32 * 2 ** 20, f"peak {peak / 2 ** 20:.1f} MB"


@pytest.mark.parametrize("num_samples", [9, 30])  # 30 > 11 rows: more samples than items
def test_sampled_dot_matches_gather_and_gradients(num_samples):
    torch.manual_seed(0)
    u = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    W = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 11, (7, num_samples))
    idx[0, :3] = 4  # duplicates within a row
    g = torch.randn(7, num_samples, dtype=torch.float64)
    out = sampled_dot(u, W, idx)
    ref = (u[:, None, :] * W[idx]).sum(-1)
    assert torch.allclose(out, ref)
    gu, gw = torch.autograd.grad((out * g).sum(), (u, W))
    ru, rw = torch.autograd.grad((ref * g).sum(), (u, W))
    assert torch.allclose(gu, ru) and torch.allclose(gw, rw)
    assert torch.autograd.gradcheck(lambda a, b: sampled_dot(a, b, idx), (u, W))
    # create_graph=True: the second derivatives are exact too (the cross terms u-W included)
    assert torch.autograd.gradgradcheck(lambda a, b: sampled_dot(a, b, idx), (u, W))


def build(seed=0, **kw):
    edge_index, mask = random_graph(seed=seed)
    kw = {"num_negatives": 6, "negative_weight": 6.0, "num_neighbors": 4, "init_std": 0.1, **kw}
    model = UltraGCN(30, 25, 8, **kw)
    model.set_graph(edge_index)
    return model, edge_index, mask


def test_loss_matches_reference_formula():
    torch.manual_seed(0)
    model, edge_index, mask = build(lambda_=0.5, gamma=1e-2, w1=0.1, w3=0.2)
    users, pos = edge_index[0, :16], edge_index[1, :16]
    neg = model.sample_negatives(16)
    assert neg.shape == (16, 6) and neg.dtype == torch.long
    got = model.loss(users, pos, neg)
    expected = reference_loss(model, users, pos, neg, mask)
    assert torch.allclose(got, expected.float(), rtol=1e-5)
    got.backward()
    assert model.user_embedding.weight.grad.abs().sum() > 0


def test_degree_weights():
    model, edge_index, mask = build()
    du, di = mask.sum(1).double(), mask.sum(0).double()
    assert torch.allclose(model.beta_user.double(), (du + 1).sqrt() / du, rtol=1e-6)
    assert torch.allclose(model.beta_item.double(), 1 / (di + 1).sqrt(), rtol=1e-6)


def test_training_decreases_loss_and_ranks_positives():
    torch.manual_seed(0)
    model, edge_index, mask = build(init_std=1e-2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    u, p = edge_index
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(u, p, model.sample_negatives(u.numel()))
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
    scores = model.score_all(torch.arange(30))
    # trained positives score above the user's unseen items on average
    assert scores[mask].mean() > scores[~mask].mean() + 1.0


def test_forward_score_all_and_recommend():
    model, edge_index, mask = build()
    users = torch.tensor([0, 3, 7])
    items = torch.tensor([1, 2, 3])
    s = model(users, items)
    full = model.score_all(users)
    assert full.shape == (3, 25)
    assert torch.allclose(s, full[torch.arange(3), items])
    assert torch.allclose(model(users, items.view(3, 1).expand(3, 4)), s.view(3, 1).expand(3, 4))
    rec = model.recommend(users, k=5)
    assert rec.shape == (3, 5)
    for r, uu in enumerate(users):
        assert not mask[uu, rec[r]].any()
        masked = full[r].clone()
        masked[mask[uu]] = float("-inf")
        assert torch.equal(rec[r].sort().values, masked.topk(5).indices.sort().values)
    rec_all = model.recommend(users, k=5, exclude_seen=False)
    assert torch.equal(rec_all, full.topk(5).indices)


def test_set_graph_and_forward_accept_sparse_layouts():
    edge_index, mask = random_graph()
    ref = UltraGCN(30, 25, 8, num_neighbors=4)
    ref.set_graph(edge_index)
    from torch_geometric import EdgeIndex
    inputs = [edge_index.flip(1),  # order does not matter
              EdgeIndex(edge_index, sparse_size=(30, 25)),
              mask.float().to_sparse_coo(), mask.float().to_sparse_csr(), mask.float().to_sparse_csc()]
    for x in inputs:
        model = UltraGCN(30, 25, 8, num_neighbors=4)
        model.load_state_dict({k: v for k, v in ref.state_dict().items() if "embedding" in k}, strict=False)
        model.set_graph(x)
        for name in ("beta_user", "beta_item", "ii_weights", "train_ptr", "train_col"):
            assert torch.equal(getattr(model, name), getattr(ref, name)), name
    pairs = edge_index[:, :6]
    assert torch.allclose(ref(pairs), ref(pairs[0], pairs[1]))
    assert torch.allclose(ref(EdgeIndex(pairs, sparse_size=(30, 25))), ref(pairs[0], pairs[1]))
    with pytest.raises(ValueError, match=r"shape \[30, 25\]"):
        ref.set_graph(torch.ones(3, 3).to_sparse())


def test_sift_positives_sampling_excludes_seen_items():
    model, edge_index, mask = build(sift_positives=True, num_negatives=50)
    users = torch.arange(30).repeat_interleave(4)
    neg = model.sample_negatives(users.numel(), users=users,
                                 generator=torch.Generator().manual_seed(1))
    assert neg.shape == (120, 50)
    assert not mask[users[:, None].expand_as(neg), neg].any()
    with pytest.raises(ValueError, match="needs 'users'"):
        model.sample_negatives(4)


def test_sampling_is_reproducible_with_generator():
    model, _, _ = build()
    a = model.sample_negatives(10, generator=torch.Generator().manual_seed(3))
    b = model.sample_negatives(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and int(a.max()) < 25 and int(a.min()) >= 0


def test_reset_parameters_and_repr_and_model_args(tmp_path):
    model, edge_index, _ = build()
    assert repr(model) == "UltraGCN(30, 25, embedding_dim=8, num_negatives=6, num_neighbors=4)"
    torch.manual_seed(1)
    model.reset_parameters()
    w1 = model.user_embedding.weight.clone()
    torch.manual_seed(1)
    model.reset_parameters()
    assert torch.equal(w1, model.user_embedding.weight)
    assert model.user_embedding.weight.std().item() == pytest.approx(0.1, rel=0.2)

    # state_dict + JSON args round trip restores the graph buffers too
    args = json.loads(json.dumps(model.model_args))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    clone = UltraGCN(**args)
    assert not clone.has_graph
    clone.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert clone.has_graph
    users, pos = edge_index[0, :5], edge_index[1, :5]
    neg = model.sample_negatives(5)
    assert torch.allclose(clone.loss(users, pos, neg), model.loss(users, pos, neg))
    assert torch.equal(clone.recommend(torch.arange(5), k=3), model.recommend(torch.arange(5), k=3))


def test_bad_input():
    with pytest.raises(ValueError, match="num_items"):
        UltraGCN(3, 0)
    with pytest.raises(TypeError, match="embedding_dim"):
        UltraGCN(3, 4, 2.5)
    with pytest.raises(ValueError, match="gamma"):
        UltraGCN(3, 4, gamma=float("nan"))
    model = UltraGCN(3, 4, 2, num_negatives=2)
    with pytest.raises(RuntimeError, match="set_graph"):
        model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2, 3]]))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        model.set_graph(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="id 7"):
        model.set_graph(torch.tensor([[0, 1], [2, 7]]))
    with pytest.raises(ValueError, match="empty"):
        model.set_graph(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model.set_graph(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    model.set_graph(torch.tensor([[0, 1, 2], [0, 1, 3]]))
    with pytest.raises(ValueError, match=r"neg_items must be \[B, N\]"):
        model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(torch.tensor([0]), k=9)
    with pytest.raises(ValueError, match="id 5"):
        model.recommend(torch.tensor([5]), k=2)


def test_torch_compile():
    model, edge_index, _ = build()
    users, pos = edge_index[0, :8], edge_index[1, :8]
    neg = model.sample_negatives(8)
    eager = model.loss(users, pos, neg)

    def step(u, p, n):
        return model.loss(u, p, n)

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(users, pos, neg), eager, rtol=1e-5)


@pytest.mark.skipif(not os.environ.get("GRAPHKIT_DATA")
                    or not (pathlib.Path(os.environ.get("GRAPHKIT_DATA", ""))
                            / "UltraGCN/electronics/train.txt").exists(),
                    reason="GRAPHKIT_DATA unset or UltraGCN/electronics missing from the mirror")
def test_real_data_electronics_constraint():
    from graphkit.rec import read_user_item_lists
    root = pathlib.Path(os.environ["GRAPHKIT_DATA"]) / "UltraGCN/electronics"
    g = read_user_item_lists(root / "train.txt", root / "test.txt")
    assert (g.num_users, g.num_items, g.train.size(1)) == (1435, 1522, 31887)
    model = UltraGCN(g.num_users, g.num_items, 16)
    model.set_graph(g.train)
    mask = torch.zeros(g.num_users, g.num_items, dtype=torch.bool)
    mask[g.train[0], g.train[1]] = True
    omega = brute_force_omega(mask)
    expected = omega.topk(10, dim=1).values.float()
    assert torch.allclose(model.ii_weights.sort(dim=1, descending=True).values, expected, rtol=1e-5)
    rec = model.recommend(torch.arange(100), k=20)
    assert not mask[torch.arange(100)[:, None], rec].any()


@pytest.mark.parametrize("num_keys", [7, 1 << 16, (1 << 16) + 1])
def test_argsort_of_sampled_items_is_a_stable_sort(num_keys):
    from graphkit.nn.models.ultragcn import _argsort_small_keys

    keys = torch.randint(0, num_keys, (5000,), generator=torch.Generator().manual_seed(0))
    keys[:3] = num_keys - 1
    order = _argsort_small_keys(keys, num_keys)
    assert order.dtype == torch.long
    assert torch.equal(order, torch.sort(keys, stable=True).indices)


def test_recommend_in_blocks_with_scores_and_ties_by_item_id():
    model, edge_index, mask = build()
    users = torch.tensor([4, 0, 9, 4, 2])
    whole, scores = model.recommend(users, k=6, return_scores=True)
    assert torch.equal(model.recommend(users, k=6, batch_size=2), whole)
    masked = model.score_all(users)
    masked[mask[users]] = float("-inf")
    assert torch.allclose(scores, masked.gather(1, whole))
    with torch.no_grad():  # equal scores: ascending item id among the unseen items
        model.user_embedding.weight.fill_(0.5)
        model.item_embedding.weight.fill_(0.5)
    top = model.recommend(users, k=3)
    for r, u in enumerate(users):
        assert top[r].tolist() == (~mask[u]).nonzero().flatten()[:3].tolist()


def test_loss_range_checks_every_id():
    model, _, _ = build()
    users, pos = torch.tensor([0, 1]), torch.tensor([0, 1])
    neg = torch.tensor([[2, 3], [4, 5]])
    model.loss(users, pos, neg)
    cases = [("users", 30, (torch.tensor([0, 30]), pos, neg)),
             ("users", -1, (torch.tensor([-1, 0]), pos, neg)),
             ("pos_items", 25, (users, torch.tensor([25, 0]), neg)),
             ("neg_items", -3, (users, pos, torch.tensor([[2, 3], [-3, 5]]))),
             ("neg_items", 25, (users, pos, torch.tensor([[2, 25], [4, 5]])))]
    for name, bad, args in cases:
        with pytest.raises(ValueError, match=rf"'{name}' contains id {bad}\b"):
            model.loss(*args)


def _dense_item_item_reference(edge_index, num_users, num_items, k, keep_diagonal=True):
    # the former implementation: every chunk of rows against all items, densely
    import numpy as np
    import scipy.sparse as sp
    row, col = edge_index[0].numpy(), edge_index[1].numpy()
    a = sp.csr_matrix((np.ones(row.size), (row, col)), shape=(num_users, num_items))
    a.sum_duplicates()
    a.data[:] = 1.0
    at = a.T.tocsr()
    g = at @ np.asarray(a.sum(axis=1)).ravel()
    if not keep_diagonal:
        g = g - np.asarray(a.sum(axis=0)).ravel()
    with np.errstate(divide="ignore"):
        left = np.where(g > 0, np.sqrt(g + 1.0) / np.where(g > 0, g, 1.0), 0.0)
    right = 1.0 / np.sqrt(g + 1.0)
    block = torch.from_numpy((at @ a).toarray())
    if not keep_diagonal:
        block.fill_diagonal_(0.0)
    omega = block * torch.from_numpy(left).unsqueeze(1) * torch.from_numpy(right).unsqueeze(0)
    vals, idxs = torch.topk(omega, k, dim=1)
    pad = vals <= 0
    idxs = torch.where(pad, torch.arange(num_items).unsqueeze(1).expand_as(idxs), idxs)
    return idxs, vals.masked_fill(pad, 0.0).float(), omega


@pytest.mark.parametrize("keep_diagonal", [True, False])
@pytest.mark.parametrize("chunk", [1 << 24, 97, 1])
def test_item_item_constraint_equals_the_dense_computation(keep_diagonal, chunk):
    # Zipf-like activity and popularity, so that rows differ widely in their co-occurrences
    gen = torch.Generator().manual_seed(7)
    num_users, num_items, e = 120, 90, 900
    pu = 1.0 / torch.arange(1, num_users + 1).double()
    pi = 1.0 / torch.arange(1, num_items + 1).double()
    edge_index = torch.stack([torch.multinomial(pu, e, replacement=True, generator=gen),
                              torch.multinomial(pi, e, replacement=True, generator=gen)])
    k = 6
    nb, w = item_item_constraint(edge_index, num_users, num_items, k, keep_diagonal=keep_diagonal,
                                 max_chunk_elements=chunk)
    ref_nb, ref_w, omega = _dense_item_item_reference(edge_index, num_users, num_items, k, keep_diagonal)
    assert torch.equal(w, ref_w)  # bit-identical weights, in the same order
    # identical neighbours wherever the K-th weight is not tied with an item left out
    kth = omega.topk(k + 1, dim=1).values
    untied = kth[:, k - 1] > kth[:, k]
    assert untied.sum() > num_items // 2
    same = (nb == ref_nb).all(1)
    pos = w > 0
    # within a run of equal weights the order may differ: compare as sets per weight value
    for i in (~same).nonzero().view(-1).tolist():
        if untied[i]:
            assert sorted(zip(w[i][pos[i]].tolist(), nb[i][pos[i]].tolist())) == \
                sorted(zip(ref_w[i][pos[i]].tolist(), ref_nb[i][pos[i]].tolist()))
    # ties: ascending item id among equal weights
    for i in range(num_items):
        for j in range(k - 1):
            if pos[i, j + 1] and w[i, j] == w[i, j + 1]:
                assert nb[i, j] < nb[i, j + 1]


def test_item_item_constraint_work_follows_co_occurrences_not_items():
    # 200k items, 3 users: a dense pass holds chunks of 2**24 / 200k = 83 rows x 200k items
    # (134 MB of float64); the sparse one stores only the co-occurring pairs.
    import tracemalloc
    edge_index = torch.tensor([[0, 0, 1, 1, 2], [5, 199_999, 5, 7, 100_000]])
    tracemalloc.start()
    try:
        nb, w = item_item_constraint(edge_index, 3, 200_000, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 200_000  # O(items) vectors only
    assert nb[5].tolist() == [5, 7, 199_999] and nb[6].tolist() == [6, 6, 6] and (w[6] == 0).all()
    with pytest.raises(ValueError, match="max_chunk_elements must be >= 1"):
        item_item_constraint(edge_index, 3, 200_000, 3, max_chunk_elements=0)


def _zipf_pairs(num_users, num_items, e, seed, item_ids=None):
    gen = torch.Generator().manual_seed(seed)
    pu = 1.0 / torch.arange(1, num_users + 1).double()
    pi = 1.0 / torch.arange(1, num_items + 1).double()
    items = torch.multinomial(pi, e, replacement=True, generator=gen)
    if item_ids is not None:  # popularity rank -> item id
        items = item_ids[items]
    return torch.stack([torch.multinomial(pu, e, replacement=True, generator=gen), items])


@pytest.mark.parametrize("keep_diagonal", [True, False])
def test_item_item_constraint_popular_items_with_high_ids(keep_diagonal):
    # The product numbers items by popularity internally; neighbours, weights and the tie rule
    # must still follow the item ids. Here the most popular items have the highest ids, and
    # several items tie (equal co-occurrences and degrees), so ties cross the internal order.
    num_users, num_items, k = 150, 80, 7
    edge_index = _zipf_pairs(num_users, num_items, 1200, seed=3, item_ids=torch.arange(num_items).flip(0))
    extra = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 1, 0, 1]])  # items 0 and 1 alike
    edge_index = torch.cat([edge_index, extra, torch.tensor([[4, 4], [2, 3]])], 1)
    nb, w = item_item_constraint(edge_index, num_users, num_items, k, keep_diagonal=keep_diagonal,
                                 max_chunk_elements=64)
    ref_nb, ref_w, omega = _dense_item_item_reference(edge_index, num_users, num_items, k, keep_diagonal)
    assert torch.equal(w, ref_w)
    # the neighbours: by weight (float64, before rounding to float32), ties by ascending item id
    for i in range(num_items):
        row = omega[i]
        order = sorted(range(num_items), key=lambda j: (-float(row[j]), j))[:k]
        expect = [j if row[j] > 0 else i for j in order]
        assert nb[i].tolist() == expect, i


def test_top_k_of_rows_unsorted_columns_and_ties():
    # rows of 0, 3 (< k), k, and many entries, columns in any order, ties at the k-th value
    # spread over several runs of the row; the reference sorts each row by (-value, column).
    import numpy as np

    from graphkit.nn.models.ultragcn import _row_of_entries, _top_k_of_rows

    rng = np.random.default_rng(0)
    k = 4
    rows = [[], [(5, 0.5), (2, 0.5), (9, 0.1)], [(3, 1.0), (1, 2.0), (7, 0.0), (4, 1.0)],
            [(c, float(v)) for c, v in zip(rng.permutation(50), rng.integers(1, 4, 50))],
            [(c, 1.0) for c in rng.permutation(30)]]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([c for r in rows for c, _ in r], dtype=np.int32)
    values = np.array([v for r in rows for _, v in r])
    out_i = np.full((len(rows) + 2, k), -1, dtype=np.int64)
    out_v = np.zeros((len(rows) + 2, k), dtype=np.float32)
    _top_k_of_rows(indptr, indices, values, _row_of_entries(indptr), 2, k, out_i, out_v)
    assert (out_i[:2] == -1).all()
    for r, entries in enumerate(rows):
        best = [e for e in sorted(entries, key=lambda e: (-e[1], e[0])) if e[1] > 0][:k]
        assert out_i[r + 2, :len(best)].tolist() == [c for c, _ in best]
        assert out_v[r + 2, :len(best)].tolist() == np.float32([v for _, v in best]).tolist()
        assert (out_i[r + 2, len(best):] == -1).all()


def test_item_item_constraint_same_without_the_one_pass_product(monkeypatch):
    # the one-pass product (SciPy's kernel into arrays bounded by the multiply-adds) and the
    # plain `@` give identical neighbours and weights
    import graphkit.nn.models.ultragcn as mod

    edge_index = _zipf_pairs(200, 120, 2500, seed=5,
                             item_ids=torch.randperm(120, generator=torch.Generator().manual_seed(1)))
    fast = item_item_constraint(edge_index, 200, 120, 8, max_chunk_elements=500)
    monkeypatch.setattr(mod, "_csr_matmat", None)
    plain = item_item_constraint(edge_index, 200, 120, 8, max_chunk_elements=500)
    assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])
    ref_nb, ref_w, _ = _dense_item_item_reference(edge_index, 200, 120, 8)
    assert torch.equal(fast[1], ref_w)


class _TableSizedTensors:
    """Counts the new tensors of at least ``numel`` elements that aten operators return (views and
    in-place results of their inputs excluded)."""

    def __new__(cls, numel):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        class Mode(TorchDispatchMode):
            count = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                          if isinstance(t, torch.Tensor) and t.layout == torch.strided}
                self.count += sum(1 for t in tree_leaves(out) if isinstance(t, torch.Tensor)
                                  and t.layout == torch.strided and t.numel() >= numel
                                  and t.untyped_storage().data_ptr() not in inputs)
                return out

        return Mode()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_half_squared_norm_value_gradient_and_no_table_temporaries(dtype):
    from graphkit.nn.models.ultragcn import half_squared_norm

    w = (torch.randn(3000, 16, generator=torch.Generator().manual_seed(0)) * 0.1).to(dtype).requires_grad_()
    expect = 0.5 * w.detach().double().pow(2).sum()
    counter = _TableSizedTensors(w.numel())
    with counter:
        value = half_squared_norm(w)
    assert value.dtype == dtype and counter.count == 0  # no w * w table in the forward pass
    assert torch.allclose(value.double(), expect, rtol=1e-6 if dtype == torch.float32 else 1e-12)
    assert torch.allclose(value, 0.5 * w.pow(2).sum())
    with counter:
        (grad,) = torch.autograd.grad(3.0 * value, w)
    assert counter.count == 1  # the gradient itself, nothing else of the table's size
    assert torch.allclose(grad, 3.0 * w.detach())
    # accurate on a larger table too: rows of 16 summed, not one single-precision accumulator
    big = torch.rand(1 << 20, 16, generator=torch.Generator().manual_seed(1)).to(dtype)
    exact = 0.5 * big.double().pow(2).sum()
    assert abs(half_squared_norm(big).double() - exact) / exact < 1e-6


def test_half_squared_norm_gradcheck_and_gradgradcheck():
    from graphkit.nn.models.ultragcn import half_squared_norm

    for shape in [(7, 5), (4,), ()]:
        w = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(half_squared_norm, (w,))
        assert torch.autograd.gradgradcheck(half_squared_norm, (w,))
    # create_graph=True: the gradient w is differentiable again (Hessian-vector product = v)
    w = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(6, 3, dtype=torch.float64)
    (g,) = torch.autograd.grad(half_squared_norm(w), w, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), w)
    assert torch.allclose(g, w) and torch.allclose(hv, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_and_gradients_equal_the_plain_l2_term(dtype, monkeypatch):
    # The loss written with 0.5 * w.pow(2).sum() on both tables gives the same value and gradients.
    import graphkit.nn.models.ultragcn as mod

    torch.manual_seed(0)
    model, edge_index, _ = build(lambda_=0.5, gamma=0.3, w1=0.1, w3=0.2)
    model = model.to(dtype)
    assert model.ii_weights.dtype == dtype
    users, pos = edge_index[0, :16], edge_index[1, :16]
    neg = model.sample_negatives(16)
    tables = [model.user_embedding.weight, model.item_embedding.weight]
    counter = _TableSizedTensors(min(t.numel() for t in tables))
    with counter:
        got = model.loss(users, pos, neg)
    assert got.dtype == dtype and counter.count == 0  # nothing of a table's size in the forward pass
    counter.count = 0
    with counter:
        got_grads = torch.autograd.grad(got, tables)
    assert counter.count == 2  # one gradient per table, no other table-sized tensor
    monkeypatch.setattr(mod, "half_squared_norm", lambda w: 0.5 * w.pow(2).sum())
    plain = model.loss(users, pos, neg)
    plain_grads = torch.autograd.grad(plain, tables)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    assert torch.allclose(got, plain, **tol)
    for a, b in zip(got_grads, plain_grads):
        assert a.dtype == dtype and torch.allclose(a, b, **tol)


def test_fused_table_terms_gradcheck_and_gradgradcheck():
    from graphkit.nn.models.ultragcn import rows_with_half_squared_norm

    torch.manual_seed(0)
    u = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    W = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[1, 1, 8], [0, 3, 3], [2, 2, 2], [7, 0, 5], [4, 6, 1]])
    users = torch.tensor([3, 0, 3, 8])

    def rows(w):
        r, n = rows_with_half_squared_norm(w, users)
        return r, n

    def scored(a, w):
        s, n = sampled_dot(a, w, idx, with_half_norm=True)
        return s, n

    r, n = rows(W)
    assert torch.equal(r, W[users]) and torch.allclose(n, 0.5 * W.pow(2).sum())
    s, n2 = scored(u, W)
    assert torch.allclose(s, (u[:, None, :] * W[idx]).sum(-1)) and torch.allclose(n2, n)
    for fn, inputs in ((rows, (W,)), (scored, (u, W))):
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)
    # the plain path (more samples than rows of W) returns the same pair
    wide = torch.randint(0, 9, (5, 12))
    s, n3 = sampled_dot(u, W, wide, with_half_norm=True)
    assert torch.allclose(s, (u[:, None, :] * W[wide]).sum(-1)) and torch.allclose(n3, n)
