import pytest
import torch

from graphkit.nn.models import MF, LightGCN
from graphkit.nn.models.lightgcn import bipartite_normalized_adjacency
from graphkit.utils import symmetric_spmm


def small_graph():
    # 3 users, 4 items
    return torch.tensor([[0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2, 3]])


def dense_reference(model, edge_index):
    U, I = model.num_users, model.num_items
    A = torch.zeros(U + I, U + I, dtype=model.embedding.weight.dtype)
    A[edge_index[0], U + edge_index[1]] = 1
    A[U + edge_index[1], edge_index[0]] = 1
    d = A.sum(1)
    An = A / torch.sqrt(d.view(-1, 1) * d.view(1, -1)).clamp(min=1e-12)
    x = model.embedding.weight
    out, h = x, x
    for _ in range(model.num_layers):
        h = An @ h
        out = out + h
    return out / (model.num_layers + 1)


def test_adjacency_is_symmetric_normalised():
    adj = bipartite_normalized_adjacency(small_graph(), 3, 4).to_dense()
    assert torch.allclose(adj, adj.t())
    assert adj[0, 3].item() == pytest.approx(1 / (2 ** 0.5 * 2 ** 0.5))  # deg(u0)=2, deg(i0)=2


def test_propagation_matches_dense_lgconv_and_pyg():
    torch.manual_seed(0)
    ei = small_graph()
    model = LightGCN(3, 4, embedding_dim=8, num_layers=3).set_graph(ei)
    ref = dense_reference(model, ei)
    assert torch.allclose(model.propagate(), ref, atol=1e-6)
    homo = torch.cat([torch.stack([ei[0], ei[1] + 3]), torch.stack([ei[1] + 3, ei[0]])], dim=1)
    assert torch.allclose(model.propagate(homo), ref, atol=1e-6)  # LGConv path
    pyg = model.to_pyg()
    assert torch.allclose(pyg.get_embedding(homo), ref, atol=1e-6)


def test_symmetric_backward_equals_autograd():
    torch.manual_seed(1)
    adj = bipartite_normalized_adjacency(small_graph(), 3, 4)
    x = torch.randn(7, 5, requires_grad=True)
    w = torch.randn(7, 5)
    (symmetric_spmm(adj, x) * w).sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    (adj.to_dense() @ x * w).sum().backward()
    assert torch.allclose(g1, x.grad, atol=1e-6)


@pytest.mark.parametrize("cls", [LightGCN, MF])
def test_loss_training_and_recommend_excludes_seen(cls):
    torch.manual_seed(0)
    ei = small_graph()
    model = cls(3, 4, embedding_dim=4).set_graph(ei)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([3, 0])
    first = model.loss(users, pos, neg).item()
    for _ in range(50):
        opt.zero_grad()
        loss = model.loss(users, pos, neg)
        loss.backward()
        opt.step()
    assert loss.item() < first
    top = model.recommend(torch.tensor([0, 1, 2]), k=1)
    seen = {(u, i) for u, i in ei.t().tolist()}
    assert all((u, int(top[u, 0])) not in seen for u in range(3))
    assert model.recommend(torch.tensor([2]), k=1).tolist() == [[1]]  # the only unseen item of user 2
    with pytest.raises(ValueError, match="k must lie in"):
        model.recommend(torch.tensor([0]), k=5)
    with pytest.raises(ValueError, match="user ids must lie in"):
        model.recommend(torch.tensor([3]), k=1)


def test_state_dict_roundtrip_and_repr():
    model = LightGCN(3, 4, embedding_dim=8, num_layers=2)
    clone = LightGCN(**model.model_args)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.embedding.weight, model.embedding.weight)
    assert repr(model) == "LightGCN(3, 4, embedding_dim=8, num_layers=2)"
    with pytest.raises(RuntimeError, match="set_graph"):
        model.propagate()
    with pytest.raises(ValueError, match="item ids must lie in"):
        model.set_graph(torch.tensor([[0], [4]]))


def test_compile():
    model = LightGCN(3, 4, embedding_dim=4).set_graph(small_graph())
    compiled = torch.compile(model.propagate, backend="eager")
    assert torch.allclose(compiled(), model.propagate())


@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
def test_row_restricted_propagation_and_gradient_are_exact(num_layers):
    torch.manual_seed(0)
    ei = torch.randint(0, 6, (2, 25))
    model = LightGCN(6, 6, embedding_dim=5, num_layers=num_layers).set_graph(ei)
    nodes = torch.tensor([0, 3, 3, 7, 11, 0])
    w = torch.randn(nodes.numel(), 5)
    (model.propagate_rows(nodes) * w).sum().backward()
    g_fast = model.embedding.weight.grad.clone()
    model.embedding.weight.grad = None
    full = model.propagate()
    (full[nodes] * w).sum().backward()
    assert torch.allclose(model.propagate_rows(nodes), full[nodes], atol=1e-6)
    assert torch.allclose(g_fast, model.embedding.weight.grad, atol=1e-6)


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_loss_gradient_equals_autograd_through_full_propagation(num_layers):
    torch.manual_seed(1)
    ei = torch.randint(0, 7, (2, 30))
    model = LightGCN(7, 7, embedding_dim=4, num_layers=num_layers, reg_weight=0.5).set_graph(ei)
    users, pos, neg = torch.tensor([0, 2, 2, 6]), torch.tensor([1, 1, 5, 0]), torch.tensor([3, 4, 5, 6])
    model.loss(users, pos, neg).backward()
    fast = model.embedding.weight.grad.clone()
    model.embedding.weight.grad = None
    out, w, U = model.propagate(), model.embedding.weight, model.num_users
    u, p, n = out[users], out[U + pos], out[U + neg]
    ref = torch.nn.functional.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
    ref = ref + 0.5 * (w[users].pow(2).sum() + w[U + pos].pow(2).sum() + w[U + neg].pow(2).sum()) / 8
    ref.backward()
    assert torch.allclose(model.loss(users, pos, neg), ref, atol=1e-6)
    assert torch.allclose(fast, w.grad, atol=1e-6)


def test_locality_order_changes_nothing_but_the_speed():
    torch.manual_seed(2)
    ei = torch.randint(0, 9, (2, 40))
    a = LightGCN(9, 9, embedding_dim=4, num_layers=3, reorder_nodes=True).set_graph(ei)
    b = LightGCN(9, 9, embedding_dim=4, num_layers=3, reorder_nodes=False).set_graph(ei)
    b.load_state_dict(a.state_dict())
    assert a._graph.perm is not None and b._graph.perm is None
    assert torch.allclose(a.propagate(), b.propagate(), atol=1e-6)
    users, pos, neg = torch.tensor([0, 4, 8]), torch.tensor([1, 2, 3]), torch.tensor([5, 6, 7])
    a.loss(users, pos, neg).backward()
    b.loss(users, pos, neg).backward()
    assert torch.allclose(a.embedding.weight.grad, b.embedding.weight.grad, atol=1e-6)
    assert torch.equal(a.recommend(torch.arange(9), k=3), b.recommend(torch.arange(9), k=3))


def test_moving_or_casting_the_model_keeps_the_cached_graph_consistent():
    torch.manual_seed(3)
    ei = torch.randint(0, 6, (2, 20))
    for reorder in (True, False):
        model = LightGCN(6, 6, embedding_dim=3, num_layers=2, reorder_nodes=reorder).set_graph(ei)
        expected = model.propagate().double()
        model = model.double()
        assert model._graph.inner.dtype == torch.float64 and model._graph.enter.dtype == torch.float64
        assert torch.allclose(model.propagate(), expected, atol=1e-6)
        model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])).backward()
        if not reorder:
            assert model._graph.inner is model._graph.adj  # one copy, not four


@pytest.mark.parametrize("cls", [LightGCN, MF])
def test_negative_candidates_train_on_the_hardest_one(cls):
    # [B, M] candidates: the loss (and its gradient) equals the loss on each user's
    # highest-scoring candidate, which is picked with the current embeddings.
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(0)
    U, I = 20, 30
    ei = torch.stack([torch.randint(0, U, (80,), generator=g), torch.randint(0, I, (80,), generator=g)])
    model = cls(U, I, embedding_dim=8).set_graph(ei)
    users = torch.randint(0, U, (16,), generator=g)
    pos = torch.randint(0, I, (16,), generator=g)
    cand = torch.randint(0, I, (16, 5), generator=g)
    user_emb, item_emb = (e.detach() for e in model.embeddings())
    scores = (user_emb[users].unsqueeze(1) * item_emb[cand]).sum(-1)
    hardest = cand[torch.arange(16), scores.argmax(1)]
    assert not torch.equal(hardest, cand[:, 0])  # the choice matters in this example

    model.zero_grad()
    loss_dns = model.loss(users, pos, cand)
    loss_dns.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss_ref = model.loss(users, pos, hardest)
    loss_ref.backward()
    assert loss_dns.item() == pytest.approx(loss_ref.item(), rel=1e-6)
    for a, p in zip(grads, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-7)
    # a single candidate column is plain BPR
    assert model.loss(users, pos, cand[:, :1]).item() == pytest.approx(
        model.loss(users, pos, cand[:, 0]).item(), rel=1e-6)


def test_loss_rejects_mismatched_batches():
    model = LightGCN(3, 4, embedding_dim=4).set_graph(small_graph())
    users, pos = torch.tensor([0, 1]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="neg_items must be"):
        model.loss(users, pos, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="equal length"):
        model.loss(users, torch.tensor([0]), torch.tensor([0, 1]))


@pytest.mark.parametrize("cls", [LightGCN, MF])
def test_recommend_in_blocks_with_scores_and_ties_by_item_id(cls):
    torch.manual_seed(3)
    ei = small_graph()
    model = cls(3, 4, embedding_dim=4).set_graph(ei)
    users = torch.tensor([2, 0, 1, 0])
    whole, scores = model.recommend(users, k=2, return_scores=True)
    assert torch.equal(model.recommend(users, k=2, batch_size=1), whole)
    masked = model.score_all(users)
    seen = torch.stack([torch.isin(torch.arange(4), ei[1][ei[0] == u]) for u in users])
    masked[seen] = float("-inf")
    assert torch.allclose(scores, masked.gather(1, whole))
    # user 2 has one unseen item: it comes first, the masked ones follow with score -inf
    items, s = model.recommend(torch.tensor([2]), k=3, return_scores=True)
    assert items[0, 0].item() == 1 and torch.isinf(s[0, 1:]).all()
    # equal scores: ascending item id
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    assert model.recommend(torch.tensor([0, 1]), k=2).tolist() == [[2, 3], [0, 3]]


@pytest.mark.parametrize("cls", [LightGCN, MF])
def test_loss_range_checks_every_id(cls):
    # users and items share one table in LightGCN: an out-of-range id would read another row
    model = cls(3, 4, embedding_dim=4).set_graph(small_graph())
    ok_u, ok_p, ok_n = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3])
    model.loss(ok_u, ok_p, ok_n)
    cases = [("users", 3, (torch.tensor([0, 3]), ok_p, ok_n)),
             ("users", -1, (torch.tensor([-1, 0]), ok_p, ok_n)),
             ("pos_items", -1, (ok_u, torch.tensor([0, -1]), ok_n)),
             ("pos_items", 4, (ok_u, torch.tensor([4, 0]), ok_n)),
             ("neg_items", 4, (ok_u, ok_p, torch.tensor([4, 0]))),
             ("neg_items", -2, (ok_u, ok_p, torch.tensor([[0, 1], [2, -2]])))]
    for name, bad, args in cases:
        with pytest.raises(ValueError, match=rf"'{name}' contains id {bad}\b"):
            model.loss(*args)
    with pytest.raises(TypeError, match="'users' must hold integer ids"):
        model.loss(ok_u.float(), ok_p, ok_n)


@pytest.mark.parametrize("cls", [LightGCN, MF])
def test_set_graph_rejects_float_ids_and_takes_sparse_matrices(cls):
    ei = small_graph()
    with pytest.raises(TypeError, match="integer"):
        cls(3, 4).set_graph(ei.float() + 0.7)  # 1.7 must not become 1
    torch.manual_seed(0)
    ref = cls(3, 4, embedding_dim=4).set_graph(ei)
    dense = torch.zeros(3, 4)
    dense[ei[0], ei[1]] = torch.tensor([1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 1.0])  # values are not used
    for x in (dense.to_sparse_coo(), dense.to_sparse_csr(), dense.to_sparse_csc(), ei.flip(1)):
        model = cls(3, 4, embedding_dim=4)
        model.load_state_dict(ref.state_dict())
        model.set_graph(x)
        assert sorted(map(tuple, model.train_edge_index.t().tolist())) == sorted(map(tuple, ei.t().tolist()))
        assert torch.allclose(model.score_all(torch.arange(3)), ref.score_all(torch.arange(3)))
        assert torch.equal(model.recommend(torch.arange(3), k=2), ref.recommend(torch.arange(3), k=2))
    with pytest.raises(ValueError, match=r"shape \[3, 4\]"):
        cls(3, 4).set_graph(torch.ones(4, 3).to_sparse())


def test_cached_graph_follows_the_dtype_of_the_model():
    ei = small_graph()
    for reorder in (True, False):
        torch.manual_seed(0)
        model = LightGCN(3, 4, embedding_dim=4, num_layers=3, reorder_nodes=reorder).double().set_graph(ei)
        assert model._graph.adj.dtype == torch.float64 and model._graph.inner.dtype == torch.float64
        out = model.propagate()
        assert out.dtype == torch.float64
        assert torch.allclose(out, dense_reference(model, ei), rtol=0, atol=1e-14)
        # the cached graph follows later casts too, both ways
        model = model.float()
        assert model._graph.inner.dtype == torch.float32 and model.propagate().dtype == torch.float32
        model = model.double()
        assert model._graph.adj.dtype == torch.float64
        assert torch.allclose(model.propagate(), out, rtol=0, atol=1e-6)  # rounded to float32 once
        model = LightGCN(3, 4, embedding_dim=4, num_layers=3, reorder_nodes=reorder).double().set_graph(ei)

        users, items = torch.tensor([0, 2, 1]), torch.tensor([3, 0, 1])
        x = model.embedding.weight.detach().clone().requires_grad_()

        def scores(w):
            return torch.func.functional_call(model, {"embedding.weight": w}, (users, items))

        class Loss(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = model

            def forward(self):
                return self.m.loss(users, items, torch.tensor([1, 3, 2]))

        def loss(w):  # through the row-restricted propagation and its hand-written backward
            return torch.func.functional_call(Loss(), {"m.embedding.weight": w}, ())

        assert torch.autograd.gradcheck(scores, (x,))
        assert torch.autograd.gradgradcheck(scores, (x,))
        assert torch.autograd.gradcheck(loss, (x,))
        assert torch.autograd.gradgradcheck(loss, (x,))
