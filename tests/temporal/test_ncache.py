"""NCache against a slow dictionary-based reference of the documented update rule."""
import pytest
import torch

from graphkit.temporal import NCache

P = 2_147_483_647


class DictNCache:
    """Per node and hop a ``{slot: (key, value, time)}`` dict, updated event by event."""

    def __init__(self, cache: NCache):
        self.a = [int(x) for x in cache.hash_a]
        self.b = [int(x) for x in cache.hash_b]
        self.sizes, self.alpha = cache.sizes, cache.replace_prob
        self.state = [dict() for _ in self.sizes]  # hop -> {(node, slot): (key, value, time)}

    def slot(self, w, h):
        return ((self.a[h] * w + self.b[h]) % P) % self.sizes[h]

    def update(self, src, dst, t, value, rand):
        before = [dict(s) for s in self.state]
        for h in range(len(self.sizes)):
            chosen = {}  # (node, slot) -> candidate; later candidates replace earlier ones
            for i, (u, v) in enumerate(zip(src, dst)):
                if h == 0:
                    chosen[(u, self.slot(v, 0))] = (v, tuple(value[i]), t[i], rand[0][i])
                else:
                    for j in range(self.sizes[h - 1]):
                        entry = before[h - 1].get((v, j))
                        if entry is not None:
                            w, x, _ = entry
                            chosen[(u, self.slot(w, h))] = (w, x, t[i], rand[h][i][j])
            for pos, (w, x, tau, r) in chosen.items():
                old = self.state[h].get(pos)
                if old is None or old[0] == w or r < self.alpha:
                    self.state[h][pos] = (w, x, tau)

    def as_dict(self):
        return [dict(s) for s in self.state]


def cache_as_dict(cache: NCache):
    out = []
    for h in range(cache.num_hops):
        keys, values, times = cache._state(h)
        d = {}
        for n, s in (keys >= 0).nonzero().tolist():
            d[(n, s)] = (int(keys[n, s]), tuple(values[n, s].tolist()), float(times[n, s]))
        out.append(d)
    return out


def draws(cache, e, gen):
    return [torch.rand(e, generator=gen)] + [torch.rand(e, k, generator=gen) for k in cache.sizes[:-1]]


def run_both(cache, batches, seed=0):
    ref = DictNCache(cache)
    gen = torch.Generator().manual_seed(seed)
    for src, dst, t in batches:
        e = len(src)
        value = torch.randn(e, cache.dim, generator=gen).round(decimals=3)
        rand = draws(cache, e, gen)
        cache.update(torch.tensor(src), torch.tensor(dst), torch.tensor(t, dtype=torch.float), value,
                     rand=rand)
        ref.update(src, dst, [float(x) for x in t], value.tolist(),
                   [r.tolist() for r in rand])
        assert cache_as_dict(cache) == ref.as_dict()
    return cache, ref


def test_matches_reference_random_stream():
    # few slots and many nodes: collisions, replacements and 3 hops all happen
    gen = torch.Generator().manual_seed(1)
    cache = NCache(12, sizes=(3, 2, 2), dim=2, replace_prob=0.5, hash_seed=3)
    batches = []
    for b in range(15):
        e = 7
        src = torch.randint(0, 12, (e,), generator=gen).tolist()
        dst = torch.randint(0, 12, (e,), generator=gen).tolist()
        batches.append((src, dst, [float(b)] * e))
    run_both(cache, batches)
    # the stream really exercised replacement of occupied slots and the third hop
    assert (cache.keys2 >= 0).any()


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_matches_reference_extreme_alpha(alpha):
    gen = torch.Generator().manual_seed(2)
    cache = NCache(9, sizes=(2, 3), dim=1, replace_prob=alpha)
    batches = [(torch.randint(0, 9, (5,), generator=gen).tolist(),
                torch.randint(0, 9, (5,), generator=gen).tolist(), [float(b)] * 5) for b in range(12)]
    run_both(cache, batches, seed=5)


def colliding_keys(cache, hop, n=3):
    slots = cache.slot(torch.arange(cache.num_nodes), hop)
    for s in range(cache.sizes[hop - 1]):
        ids = (slots == s).nonzero().view(-1)
        if ids.numel() >= n:
            return ids[:n].tolist(), s
    raise AssertionError("no collision")


def test_tie_in_batch_last_event_wins():
    cache = NCache(40, sizes=(4,), dim=1, replace_prob=0.0)
    (a, b, c), s = colliding_keys(cache, 1)
    u = next(x for x in range(40) if x not in (a, b, c))
    cache.update(torch.tensor([u, u, u]), torch.tensor([a, b, c]), torch.tensor([1., 1., 1.]),
                 torch.tensor([[1.], [2.], [3.]]))
    # alpha = 0, slot was empty: the last of the three colliding events is kept
    assert cache.keys0[u, s] == c and cache.values0[u, s, 0] == 3.0


def test_alpha_zero_keeps_first_and_same_key_refreshes():
    cache = NCache(40, sizes=(4,), dim=1, replace_prob=0.0)
    (a, b), s = colliding_keys(cache, 1, 2)
    u = next(x for x in range(40) if x not in (a, b))
    cache.update(torch.tensor([u]), torch.tensor([a]), torch.tensor([1.]), torch.tensor([[1.]]))
    cache.update(torch.tensor([u]), torch.tensor([b]), torch.tensor([2.]), torch.tensor([[2.]]))
    assert cache.keys0[u, s] == a and cache.times0[u, s] == 1.0  # never replaced
    cache.update(torch.tensor([u]), torch.tensor([a]), torch.tensor([3.]), torch.tensor([[5.]]))
    assert cache.keys0[u, s] == a and cache.times0[u, s] == 3.0 and cache.values0[u, s, 0] == 5.0


def test_alpha_one_always_replaces():
    cache = NCache(40, sizes=(4,), dim=1, replace_prob=1.0)
    (a, b), s = colliding_keys(cache, 1, 2)
    u = next(x for x in range(40) if x not in (a, b))
    cache.update(torch.tensor([u]), torch.tensor([a]), torch.tensor([1.]), torch.tensor([[1.]]))
    cache.update(torch.tensor([u]), torch.tensor([b]), torch.tensor([2.]), torch.tensor([[2.]]))
    assert cache.keys0[u, s] == b


def test_two_hops_read_state_before_batch():
    cache = NCache(5, sizes=(8, 8), dim=1)
    # batch 1: 1 <- 2 ; in the same batch 0 <- 1 must not see 2 yet (2-hop)
    cache.update(torch.tensor([1, 0]), torch.tensor([2, 1]), torch.tensor([1., 1.]),
                 torch.tensor([[2.], [1.]]))
    assert (cache.keys1[0] < 0).all()
    cache.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([2.]), torch.tensor([[1.]]))
    keys, values, times = cache.lookup(torch.tensor([0]))
    hop2 = keys[0, 8:]
    assert sorted(hop2[hop2 >= 0].tolist()) == [2]
    j = int((hop2 == 2).nonzero())
    assert values[0, 8 + j, 0] == 2.0 and times[0, 8 + j] == 2.0  # value copied, time of event


def test_lookup_shapes_and_hops():
    cache = NCache(6, sizes=(3, 2), dim=4)
    keys, values, times = cache.lookup(torch.tensor([0, 5, 5]))
    assert keys.shape == (3, 5) and values.shape == (3, 5, 4) and times.shape == (3, 5)
    assert (keys == -1).all()
    assert cache.hop_index().tolist() == [1, 1, 1, 2, 2]


def test_buffers_follow_device_and_dtype_and_state_dict():
    cache = NCache(6, sizes=(3, 2), dim=2).double()
    assert cache.values0.dtype == torch.float64 and cache.keys0.dtype == torch.long
    cache.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.]), torch.ones(1, 2))
    other = NCache(6, sizes=(3, 2), dim=2).double()
    other.load_state_dict(cache.state_dict())
    assert torch.equal(other.keys0, cache.keys0)
    cache.reset_state()
    assert (cache.keys0 == -1).all()


def test_bad_input():
    cache = NCache(4, sizes=(2,), dim=1)
    with pytest.raises(ValueError, match=r"dst\[1\] = 4 is outside \[0, 4\)"):
        cache.update(torch.tensor([0, 1]), torch.tensor([1, 4]), torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="value must have shape"):
        cache.update(torch.tensor([0]), torch.tensor([1]), torch.zeros(1), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="NaN"):
        cache.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([float("nan")]), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="nodes"):
        cache.lookup(torch.tensor([-1]))
    with pytest.raises(ValueError, match="replace_prob"):
        NCache(4, replace_prob=1.5)


def test_rand_draw_counts_are_checked():
    cache = NCache(5, (2, 2), 1)
    with pytest.raises(ValueError, match=r"rand\[1\] has 3 draws, expected 4"):
        cache.update(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1., 2.]), torch.zeros(2, 1),
                     rand=[torch.rand(2), torch.rand(3)])
    with pytest.raises(ValueError, match="rand must hold 2 tensors"):
        cache.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.]), torch.zeros(1, 1),
                     rand=[torch.rand(1)])


def test_each_key_at_most_once_per_hop_in_its_slot():
    cache = NCache(30, (4, 3), 2)
    gen = torch.Generator().manual_seed(5)
    for i in range(20):
        src, dst = torch.randint(0, 30, (25,), generator=gen), torch.randint(0, 30, (25,), generator=gen)
        cache.update(src, dst, torch.full((25,), float(i)), torch.zeros(25, 2), generator=gen)
    for h in range(cache.num_hops):
        keys = cache._state(h)[0]
        occupied = keys >= 0
        slots = torch.arange(cache.sizes[h]).expand_as(keys)
        assert torch.equal(cache.slot(keys[occupied], h + 1), slots[occupied])


def test_slot_table_follows_loaded_hash_constants():
    a, b = NCache(50, (4, 3), 1, hash_seed=0), NCache(50, (4, 3), 1, hash_seed=7)
    ids = torch.arange(50)
    a.load_state_dict(b.state_dict())
    for hop in (1, 2):
        assert torch.equal(a._slot(ids, hop), b.slot(ids, hop))
        assert torch.equal(a._slot(ids, hop), a.slot(ids, hop))
