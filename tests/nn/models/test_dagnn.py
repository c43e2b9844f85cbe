import json
import os

import pytest
import torch
import torch.nn.functional as F

from graphkit.nn.models import DAGNN
from graphkit.nn.models.dagnn import SparseInputLinear


def _graph(n=30, f=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.2).float()
    src = torch.randint(0, n, (60,), generator=g)
    dst = torch.randint(0, n, (60,), generator=g)
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return x, ei


def test_forward_repr_config_roundtrip(tmp_path):
    torch.manual_seed(0)
    x, ei = _graph()
    model = DAGNN(12, 16, 3, K=4, dropout=0.5, cached=True)
    assert repr(model) == "DAGNN(12, 16, 3, K=4)"
    model.eval()
    out = model(x, ei)
    assert out.shape == (30, 3)
    # state_dict + JSON of the arguments, no pickled module
    torch.save(model.state_dict(), tmp_path / "m.pt")
    (tmp_path / "m.json").write_text(json.dumps(model.config()))
    clone = DAGNN(**json.loads((tmp_path / "m.json").read_text()))
    clone.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    clone.eval()
    assert torch.allclose(clone(x, ei), out, atol=1e-6)


def test_sparse_features_match_dense_with_gradients():
    torch.manual_seed(1)
    x, ei = _graph()
    dense = DAGNN(12, 8, 3, K=3)
    sparse = DAGNN(12, 8, 3, K=3)
    sparse.load_state_dict(dense.state_dict())
    dense.eval(), sparse.eval()  # no dropout: identical maths
    a, b = dense(x, ei), sparse(x.to_sparse_csr(), ei)
    assert torch.allclose(a, b, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    for (n, p), q in zip(dense.named_parameters(), sparse.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), n
    sparse.train()  # dropout on the stored values only
    assert sparse(x.to_sparse_coo(), ei).shape == (30, 3)


def test_reset_parameters_is_idempotent_and_training_fits():
    torch.manual_seed(2)
    x, ei = _graph()
    y = torch.randint(0, 3, (30,))
    model = DAGNN(12, 32, 3, K=2, dropout=0.0, cached=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x, ei), y).backward()
        opt.step()
    assert (model(x, ei).argmax(-1) == y).float().mean() > 0.8
    model.reset_parameters()
    torch.manual_seed(3)
    model.reset_parameters()
    s1 = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(3)
    model.reset_parameters()
    for k, v in model.state_dict().items():
        assert torch.equal(v, s1[k])


def test_bad_input():
    x, ei = _graph()
    model = DAGNN(12, 8, 3, K=2)
    with pytest.raises(ValueError, match="in_channels=12"):
        model(torch.rand(30, 5), ei)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.clone()
        bad[3, 1] = float("nan")
        model(bad, ei)
    # the finiteness scan is skipped for an input already checked, but not once it changed
    ok = x.clone()
    model(ok, ei)
    model(ok, ei)
    ok[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(ok, ei)
    with pytest.raises(ValueError, match="out of range"):
        model(x, torch.tensor([[0, 99], [1, 2]]))
    with pytest.raises(ValueError, match="'dropout' must be in"):
        DAGNN(12, 8, 3, K=2, dropout=1.0)
    with pytest.raises(ValueError, match="'out_channels' must be a positive int"):
        DAGNN(12, 8, 0, K=2)


def test_compile_smoke():
    torch.manual_seed(4)
    x, ei = _graph()
    model = DAGNN(12, 8, 3, K=2, cached=True).eval()
    expected = model(x, ei)
    compiled = torch.compile(model, backend="eager")
    assert torch.allclose(compiled(x, ei), expected, atol=1e-6)


def test_example_helpers_validate(load_example):
    ex = load_example("dagnn")
    y = torch.arange(6).repeat_interleave(60)  # 6 classes x 60 nodes
    train, val, test = ex.random_split(y, 6, 20, 30, torch.Generator().manual_seed(0))
    assert int(train.sum()) == 120 and int(val.sum()) == 180 and int(test.sum()) == 60
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    for c in range(6):
        assert int(train[y == c].sum()) == 20 and int(val[y == c].sum()) == 30
    with pytest.raises(ValueError, match="fewer than 50 nodes"):
        ex.random_split(torch.tensor([0] * 60 + [1] * 10), 2, 20, 30, torch.Generator())
    from torch_geometric.data import Data

    from graphkit.engine.loops import check_node_data
    x = torch.rand(5, 3)
    masks = dict(train_mask=torch.tensor([True, False, False, False, False]),
                 val_mask=torch.tensor([False, True, False, False, False]),
                 test_mask=torch.tensor([False, False, True, False, False]))
    with pytest.raises(ValueError, match="labels have shape"):
        check_node_data(Data(x=x, y=torch.zeros(4, dtype=torch.long), **masks), 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        check_node_data(Data(x=x, y=torch.tensor([0, 1, 2, 0, 1]), **masks), 2)
    with pytest.raises(ValueError, match="val_mask is empty"):
        check_node_data(Data(x=x, y=torch.zeros(5, dtype=torch.long),
                             **{**masks, "val_mask": torch.zeros(5, dtype=torch.bool)}), 2)
    with pytest.raises(ValueError, match="NaN"):
        ex.prepare_features(torch.tensor([[float("nan")]]), True)


def _load_or_skip(name):
    if not os.environ.get("GRAPHKIT_DATA"):
        pytest.skip("GRAPHKIT_DATA is not set (offline dataset mirror)")
    from graphkit.datasets import load
    try:
        return load(name)
    except FileNotFoundError as exc:
        pytest.skip(f"{name} cannot be loaded here: {exc}")


def test_example_runs_on_cora(load_example, tmp_path):
    _load_or_skip("Cora")
    ex = load_example("dagnn")
    log = tmp_path / "runs.jsonl"
    assert ex.main(["--dataset", "Cora", "--runs", "1", "--epochs", "60", "--no-record",
                    "--log", str(log)]) == 0
    rec = json.loads(log.read_text().splitlines()[0])
    assert rec["test_acc"] > 70.0  # 60 epochs of DAGNN on Cora's public split
    # resuming reads the finished run back instead of training again
    assert ex.main(["--dataset", "Cora", "--runs", "1", "--epochs", "60", "--no-record",
                    "--log", str(log)]) == 0
    assert len(log.read_text().splitlines()) == 1


def test_example_runs_on_pubmed(load_example, tmp_path):
    # The offline mirror lacks ind.pubmed.allx, so this is skipped there; it runs wherever
    # PubMed can be downloaded.
    _load_or_skip("PubMed")
    ex = load_example("dagnn")
    assert ex.main(["--dataset", "PubMed", "--runs", "1", "--epochs", "20", "--no-record"]) == 0


def test_sparse_transpose_cache_follows_the_matrix():
    torch.manual_seed(6)
    model = DAGNN(12, 8, 3, K=1)
    model.train()
    ref = DAGNN(12, 8, 3, K=1)
    ref.load_state_dict(model.state_dict())
    for seed in range(3):  # same shape and nnz, different patterns
        g = torch.Generator().manual_seed(seed)
        x = torch.zeros(2, 12)
        x[0, torch.randperm(12, generator=g)[:3]] = 1.0
        x[1, torch.randperm(12, generator=g)[:3]] = 1.0
        model.zero_grad(), ref.zero_grad()
        model.lin1(x.to_sparse_csr()).sum().backward()
        ref.lin1(x).sum().backward()
        assert torch.allclose(model.lin1.weight.grad, ref.lin1.weight.grad, atol=1e-6)


def test_reference_split_reproduces_the_reference_position_indexing(load_example):
    ex = load_example("dagnn")
    # nodes 0..9 isolated (outside the largest component), 10..209 a path; class = id % 2
    n = 210
    path = torch.arange(10, n - 1)
    ei = torch.stack([path, path + 1])
    lcc = ex.largest_component(ei, n)
    assert torch.equal(lcc, torch.arange(10, n))
    y = torch.arange(n) % 2
    y[10:60] = 1  # make the largest component's labels imbalanced by position
    train, val, test = ex.reference_split(y, lcc, 2, 20, 30, torch.Generator().manual_seed(0))
    assert int(train.sum()) == 40 and int(val.sum()) == 60 and int(test.sum()) == 100
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    # positions 0..|LCC|-1 are used as node ids: ids >= |LCC| never appear
    assert not (train | val | test)[lcc.numel():].any()
    assert bool((train | val | test)[:lcc.numel()].all())
    # grouping is by the class of lcc[j], so position j's own label need not match
    pos_class = y[lcc]
    assert int((pos_class[train[:200].nonzero().view(-1)] == 0).sum()) == 20
    with pytest.raises(SystemExit):
        ex.parse_args(["--dataset", "Cora", "--split", "reference"])


def test_cached_model_follows_double():
    torch.manual_seed(20)
    x = torch.rand(6, 5)
    ei = torch.tensor([[0, 1, 1, 2, 3, 4, 4, 5], [1, 0, 2, 1, 4, 3, 5, 4]])
    model = DAGNN(5, 8, 3, K=3, dropout=0.0, cached=True).eval()
    out32 = model(x, ei)
    model.double()
    out64 = model(x.double(), ei)
    ref = DAGNN(5, 8, 3, K=3, dropout=0.0).double().eval()
    ref.load_state_dict(model.state_dict())
    assert out64.dtype == torch.double
    assert torch.allclose(out64, ref(x.double(), ei), atol=1e-12)
    assert torch.allclose(out64.float(), out32, atol=1e-5)


def test_sparse_features_gradient():
    # Gradients reach the values of sparse input features, not just the weights.
    torch.manual_seed(21)
    dense = (torch.rand(6, 5) > 0.5).double() * torch.rand(6, 5, dtype=torch.double)
    csr = dense.to_sparse_csr()
    crow, col = csr.crow_indices(), csr.col_indices()
    lin = SparseInputLinear(5, 3).double()
    vals = csr.values().clone().requires_grad_(True)
    f = lambda v: lin(torch.sparse_csr_tensor(crow, col, v, (6, 5)))  # noqa: E731
    assert torch.autograd.gradcheck(f, (vals,))
    # first and second order w.r.t. the weight (the hand-written backward)
    w = lin.lin.weight.detach().clone().requires_grad_(True)
    g = lambda ww: torch.func.functional_call(lin, {"lin.weight": ww}, (csr,))  # noqa: E731
    assert torch.autograd.gradcheck(g, (w,))
    assert torch.autograd.gradgradcheck(g, (w,))
