import pytest
import torch

from graphkit.nn.models._nat import pair_counts
from graphkit.nn.models.nat import NAT


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
    counts = pair_counts(ka, kb, model.hop_onehot)
    assert counts[0, :, 1].sum() == 1  # key 4 of node 0 is a 1-hop key of node 1


def test_bad_input():
    model = small()
    with pytest.raises(ValueError, match=r"dst\[1\] = 8 is outside \[0, 8\)"):
        model(torch.tensor([0, 1]), torch.tensor([2, 8]), torch.zeros(2))
    with pytest.raises(ValueError, match="integer node ids"):
        model(torch.tensor([0.0]), torch.tensor([1]), torch.zeros(1))
    with pytest.raises(ValueError, match=r"t\[0\] is not finite"):
        model(torch.tensor([0]), torch.tensor([1]), torch.tensor([float("nan")]))
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
