import pytest
import torch

from graphkit.nn.models._nat import code_bits, joint_codes
from graphkit.nn.models.nat import NAT


def match(keys_a, keys_b):
    """Reference: ``(B, M, M)`` indicator ``keys_a[:, i] == keys_b[:, j]``, empty entries
    (``-1``) matching nothing."""
    keys_b = keys_b.masked_fill(keys_b < 0, -2)
    return (keys_a.unsqueeze(2) == keys_b.unsqueeze(1)).float()


def pair_counts(keys_a, keys_b, hop_onehot):
    """Reference: how often each entry of ``keys_a`` occurs in each hop of ``keys_b``, by
    comparing all pairs of entries."""
    return match(keys_a, keys_b) @ hop_onehot


def hop_onehot(model):
    hop = torch.cat([torch.zeros(1, dtype=torch.long), model.ncache.hop_index()])
    return torch.nn.functional.one_hot(hop, model.ncache.num_hops + 1).float()


def reference_counts(model, src, dst):
    """The joint features of NAT's definition, ``(2B, M, 2(H+1))``, by all-pairs matching."""
    b = src.numel()
    nodes = torch.cat([src, dst])
    keys = torch.cat([nodes.view(-1, 1), model.ncache.lookup(nodes)[0]], 1)
    oh = hop_onehot(model)
    own = pair_counts(keys, keys, oh)
    cross = match(keys[:b], keys[b:])
    other = torch.cat([cross @ oh, cross.transpose(1, 2) @ oh], 0)
    return keys, torch.cat([own, other], -1)


def small(**kw):
    torch.manual_seed(0)
    return NAT(8, msg_dim=kw.pop("msg_dim", 2), self_dim=8, ngh_dim=3, pos_dim=4, time_dim=2,
               num_neighbors=(4, 2), **kw)


def feed(model):
    model.update_state(torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([1., 2., 3.]),
                       torch.ones(3, 2))


def test_forward_shapes_repr_and_reset():
    model = small()
    assert repr(model) == ("NAT(8, msg_dim=2, self_dim=8, ngh_dim=3, pos_dim=4, "
                           "num_neighbors=(4, 2), heads=2)")
    out = model(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0., 0.]))
    assert out.shape == (2,) and torch.isfinite(out).all()
    feed(model)
    assert model.memory.pending.any() and (model.ncache.keys0 >= 0).any()
    model.reset_parameters()
    assert not model.memory.pending.any() and (model.ncache.keys0 < 0).all()


def test_gradients_reach_memory_gru_and_neighbour_encoder():
    model = small()
    feed(model)
    out = model(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4., 4.]))
    out.sum().backward()
    for p in (model.memory.gru.weight_ih, model.ngh_encoder.weight, model.pos_encoder[0].weight,
              model.key.weight, model.out[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_pair_counts_match_keys_across_caches():
    onehot = torch.tensor([[1., 0.], [0., 1.], [0., 1.]])  # hops of the 3 columns: 0, 1, 1
    a = torch.tensor([[0, 5, 7]])
    b = torch.tensor([[1, 5, -1]])
    c = pair_counts(a, b, onehot)
    assert c.tolist() == [[[0, 0], [0, 1], [0, 0]]]
    # empty entries (-1) match nothing, not even each other
    assert pair_counts(torch.tensor([[-1, -1, -1]]), torch.tensor([[-1, -1, -1]]), onehot).sum() == 0


def test_common_neighbour_changes_the_score():
    model = small(dropout=0.0).eval()
    # 0 and 1 both talk to 4: afterwards (0, 1) share a cached neighbour, (0, 2) do not
    model.update_state(torch.tensor([0, 1]), torch.tensor([4, 4]), torch.tensor([1., 1.]), torch.zeros(2, 2))
    ka = torch.cat([torch.tensor([[0]]), model.ncache.lookup(torch.tensor([0]))[0]], 1)
    kb = torch.cat([torch.tensor([[1]]), model.ncache.lookup(torch.tensor([1]))[0]], 1)
    counts = pair_counts(ka, kb, hop_onehot(model))
    assert counts[0, :, 1].sum() == 1  # key 4 of node 0 is a 1-hop key of node 1


def test_bad_input():
    model = small()
    with pytest.raises(ValueError, match=r"dst\[1\] = 8 is outside \[0, 8\)"):
        model(torch.tensor([0, 1]), torch.tensor([2, 8]), torch.zeros(2))
    with pytest.raises(ValueError, match="integer node ids"):
        model(torch.tensor([0.0]), torch.tensor([1]), torch.zeros(1))
    with pytest.raises(ValueError, match=r"t\[0\] is not finite"):
        model(torch.tensor([0]), torch.tensor([1]), torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match=r"t\[1\] = -2.0 is negative"):
        model(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0., -2.]))
    with pytest.raises(ValueError, match=r"t\[0\] = -1.0 is negative"):
        model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([-1.]), torch.zeros(1, 2))
    feed(model)
    with pytest.raises(ValueError, match=r"msg must have shape \(1, 2\) \(msg_dim=2\), got \(1, 3\)"):
        model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([5.]), torch.ones(1, 3))
    with pytest.raises(ValueError, match="msg holds NaN"):
        model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([5.]),
                           torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="self_dim"):
        NAT(8, self_dim=0)


def test_double_state_dict_and_devices():
    model = small().double()
    feed(model)
    assert model.memory.memory.dtype == torch.float64 and model.ncache.values0.dtype == torch.float64
    out = model(torch.tensor([0]), torch.tensor([1]), torch.tensor([4.], dtype=torch.float64))
    assert out.dtype == torch.float64
    other = small().double()
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.ncache.keys0, model.ncache.keys0)
    if torch.cuda.is_available():
        m = small().cuda()
        feed_args = [x.cuda() for x in (torch.tensor([0]), torch.tensor([1]), torch.tensor([1.]), torch.ones(1, 2))]
        m.update_state(*feed_args)
        assert m(*feed_args[:3]).is_cuda


def test_memory_keeps_last_message_of_a_batch():
    model = small()
    model.update_state(torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([1., 2.]), torch.zeros(2, 2))
    assert model.memory.pend_other[0] == 2 and model.memory.pend_t[0] == 2.0


def test_masked_attention_equals_projected_keys_and_values():
    from graphkit.nn.models._nat import masked_attention

    torch.manual_seed(1)
    r, m, e, h, c = 5, 6, 7, 2, 3
    q, entry = torch.randn(r, h, c), torch.randn(r, m, e)
    mask = torch.rand(r, m) > 0.3
    mask[0] = False  # a row without entries gives zeros
    key, value = torch.nn.Linear(e, h * c), torch.nn.Linear(e, h * c)
    k, v = key(entry).view(r, m, h, c), value(entry).view(r, m, h, c)
    score = (k * q.unsqueeze(1)).sum(-1) / c ** 0.5
    attn = torch.softmax(score.masked_fill(~mask.unsqueeze(-1), float("-inf")), 1).nan_to_num(0.0)
    ref = (attn.unsqueeze(-1) * v).sum(1).flatten(1)
    out = masked_attention(q, entry, mask, key, value)
    assert torch.allclose(out, ref, atol=1e-5) and (out[0] == 0).all()


def random_stream_model(hops, seed=0, n=12, events=300):
    torch.manual_seed(seed)
    model = NAT(n, self_dim=8, ngh_dim=3, pos_dim=4, time_dim=2, num_neighbors=hops, dropout=0.0)
    g = torch.Generator().manual_seed(seed)
    for i in range(0, events, 30):  # few slots, many nodes: collisions and self-loops happen
        src, dst = torch.randint(0, n, (30,), generator=g), torch.randint(0, n, (30,), generator=g)
        model.update_state(src, dst, torch.arange(i, i + 30).float(), torch.zeros(30, 0))
    return model, g


@pytest.mark.parametrize("hops", [(4, 2), (3,), (2, 2, 2, 2, 2)])
def test_joint_codes_equal_all_pairs_counts(hops):
    model, g = random_stream_model(hops)
    src, dst = torch.randint(0, 12, (40,), generator=g), torch.randint(0, 12, (40,), generator=g)
    keys, ref = reference_counts(model, src, dst)
    assert ref.max() == 1  # a key occurs at most once per hop of a cache
    partner = torch.arange(80).roll(40)
    code = joint_codes(keys, partner, model.ncache)
    bits = code_bits(code.view(-1), 2 * (len(hops) + 1), torch.float).view(ref.shape)
    assert torch.equal(bits, ref)
    assert (code[keys < 0] == 0).all()


@pytest.mark.parametrize("hops", [(4, 2), (2, 2, 2, 2, 2)])  # code table and unique-code path
def test_forward_equals_all_pairs_definition(hops):
    """The logits equal those computed from the joint features by all-pairs matching."""
    model, g = random_stream_model(hops, seed=1)
    assert (model.code_table is None) == (len(hops) > 3)
    model.eval()
    src, dst = torch.randint(0, 12, (20,), generator=g), torch.randint(0, 12, (20,), generator=g)
    t = torch.full((20,), 400.0)
    out = model(src, dst, t)
    keys, counts = reference_counts(model, src, dst)
    nodes = torch.cat([src, dst])
    z = model.memory(nodes)
    _, vals, times = model.ncache.lookup(nodes)
    vals = torch.cat([model.ngh_encoder(z).unsqueeze(1), vals], 1)
    dt = torch.cat([torch.zeros(40, 1), t.repeat(2).view(-1, 1) - times], 1)
    entry = torch.cat([vals, model.pos_encoder(torch.log1p(counts)), model.time_enc(dt)], -1)
    from graphkit.nn.models._nat import masked_attention

    q = model.query(z).view(40, model.heads, model.head_dim)
    pooled = masked_attention(q, entry, keys >= 0, model.key, model.value)
    rep = torch.cat([pooled, z], -1)
    ref = model.out(torch.cat([rep[:20], rep[20:]], -1)).view(-1)
    assert torch.allclose(out, ref, atol=1e-6)


def test_memory_rows_without_pending_message_keep_memory_and_no_gradient():
    model = small()
    model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.]), torch.zeros(1, 2))
    model.memory.memory[5] = 0.5  # node 5 has no pending message
    out = model.memory(torch.tensor([5, 0]))
    assert torch.equal(out[0], torch.full((8,), 0.5))
    out[0].sum().backward()
    assert model.memory.gru.weight_ih.grad.abs().sum() == 0


def test_attention_pool_matches_autograd_and_gradchecks():
    from graphkit.nn.models._nat import attention_pool

    torch.manual_seed(2)
    r, m, h, e = 4, 5, 2, 3
    entry = torch.randn(r, m, e, dtype=torch.double, requires_grad=True)
    qk = torch.randn(r, h, e, dtype=torch.double, requires_grad=True)
    mask = torch.rand(r, m) > 0.3
    mask[0] = False  # a row without entries pools to 0
    mask[1, 0] = True
    attn = torch.softmax((entry @ qk.transpose(1, 2)).masked_fill(~mask.unsqueeze(-1), float("-inf")), 1)
    ref = attn.nan_to_num(0.0).transpose(1, 2) @ entry
    out = attention_pool(entry, qk, mask)
    assert torch.allclose(out, ref) and (out[0] == 0).all()
    g = torch.randn_like(out)
    ge, gq = torch.autograd.grad(out, (entry, qk), g)
    re, rq = torch.autograd.grad(ref, (entry, qk), g)
    assert torch.allclose(ge, re) and torch.allclose(gq, rq)
    assert torch.autograd.gradcheck(lambda a, b: attention_pool(a, b, mask), (entry, qk))
    assert torch.autograd.gradgradcheck(lambda a, b: attention_pool(a, b, mask), (entry, qk))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        attention_pool(entry, qk, mask.double())


def test_slot_table_equals_hash():
    model = small()
    ids = torch.arange(8)
    for hop in (1, 2):
        assert torch.equal(model.ncache._slot(ids, hop), model.ncache.slot(ids, hop))


def test_events_out_of_time_order_are_errors():
    model = small()
    model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([5.]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"t\[1\] = 4.0 is earlier than the latest event .* \(t = 5.0\)"):
        model(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([6., 4.]))
    with pytest.raises(ValueError, match=r"out of time order: t\[1\] = 6.0 after t\[0\] = 7.0"):
        model.update_state(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([7., 6.]), torch.zeros(2, 2))
    assert model(torch.tensor([0]), torch.tensor([1]), torch.tensor([5.])).shape == (1,)  # ties are fine
    model.update_state(torch.tensor([2]), torch.tensor([3]), torch.tensor([5.]), torch.zeros(1, 2))
    model.reset_state()
    model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.]), torch.zeros(1, 2))
    assert model.last_time == 1.0
    assert model.double().last_time.dtype == torch.float64


def test_table_attention_pool_equals_gathered_rows_and_gradchecks():
    """Pooling ``[entry, table[code]]`` without forming the gathered rows: the same output
    and gradients as :func:`attention_pool` on the formed entries, first and second order."""
    from graphkit.nn.models._nat import attention_pool, table_attention_pool

    torch.manual_seed(3)
    r, m, h, e, t, p = 4, 5, 2, 3, 6, 2
    entry = torch.randn(r, e, m, dtype=torch.double).transpose(1, 2).requires_grad_()
    qk = torch.randn(r, h, e, dtype=torch.double, requires_grad=True)
    table = torch.randn(t, p, dtype=torch.double, requires_grad=True)
    qkt = torch.randn(r, h, p, dtype=torch.double, requires_grad=True)
    code = torch.randint(0, t, (r, m))
    code[2, :3] = 1  # repeated codes in a row
    mask = torch.rand(r, m) > 0.3
    mask[0] = False  # a row without entries pools to 0
    mask[1, 0] = True
    ref = attention_pool(torch.cat([entry, table[code]], -1), torch.cat([qk, qkt], -1), mask)
    out_e, out_t = table_attention_pool(entry, qk, table, qkt, code, mask)
    assert torch.allclose(torch.cat([out_e, out_t], -1), ref) and (out_e[0] == 0).all()
    inputs = (entry, qk, table, qkt)
    g = torch.randn_like(ref)
    got = torch.autograd.grad((out_e, out_t), inputs, (g[..., :e], g[..., e:]))
    want = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(got, want):
        assert torch.allclose(a, b)

    def f(*x):
        return table_attention_pool(*x, code, mask)

    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)
    with pytest.raises(ValueError, match="code must be a long tensor"):
        table_attention_pool(entry, qk, table, qkt, code.int(), mask)
    with pytest.raises(ValueError, match=r"table \(T, P\) and qkt \(R, H, P\) expected"):
        table_attention_pool(entry, qk, table, qkt[..., :1], code, mask)


def test_masked_attention_with_table_equals_formed_entries():
    from graphkit.nn.models._nat import masked_attention

    torch.manual_seed(4)
    r, m, e, h, c, t, p = 5, 6, 3, 2, 3, 4, 2
    q, entry, table = torch.randn(r, h, c), torch.randn(r, m, e), torch.randn(t, p)
    code, mask = torch.randint(0, t, (r, m)), torch.rand(r, m) > 0.3
    mask[0] = False
    key, value = torch.nn.Linear(e + p, h * c), torch.nn.Linear(e + p, h * c)
    for at in (0, 2, e):
        full = torch.cat([entry[..., :at], table[code], entry[..., at:]], -1)
        ref = masked_attention(q, full, mask, key, value)
        out = masked_attention(q, entry, mask, key, value, table=table, code=code, table_at=at)
        assert torch.allclose(out, ref, atol=1e-6) and (out[0] == 0).all()
    with pytest.raises(ValueError, match="needs key/value inputs of width 4 and a code, got 5"):
        masked_attention(q, entry, mask, key, value, table=table[:, :1], code=code, table_at=1)
