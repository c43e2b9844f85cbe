
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from graphkit.nn.models import LAGAT, LAGCN, LAGNN, LocalAugmentationCVAE
from graphkit.nn.models.lagnn import consistency_loss, row_normalize


def _graph(n=40, f=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.3).float()
    src = torch.randint(0, n, (80,), generator=g)
    dst = torch.randint(0, n, (80,), generator=g)
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return x, ei


def test_consistency_loss_hand_computed():
    # two samples with probabilities (1, 0) and (0, 1) -> average (0.5, 0.5), sharpening keeps it
    logits = [torch.tensor([[100.0, -100.0]]), torch.tensor([[-100.0, 100.0]])]
    assert consistency_loss(logits, 0.5).item() == pytest.approx(0.5, abs=1e-6)
    same = [torch.tensor([[1.0, 2.0]])] * 3
    p = torch.softmax(same[0], -1)
    sharp = p.pow(2) / p.pow(2).sum()
    assert consistency_loss(same, 0.5).item() == pytest.approx(float((p - sharp).pow(2).sum()))
    with pytest.raises(ValueError, match="at least one"):
        consistency_loss([])


def test_lagcn_with_concat_zero_is_plain_gcn():
    torch.manual_seed(1)
    x, ei = _graph()
    x = row_normalize(x)
    plain = LAGCN(10, 8, 3, concat=0).eval()
    conv1, conv2 = GCNConv(10, 8), GCNConv(8, 3)
    conv1.load_state_dict(plain.branches[0].state_dict())
    conv2.load_state_dict(plain.head.state_dict())
    assert torch.allclose(plain(x, ei), conv2(F.relu(conv1(x, ei)), ei), atol=1e-6)
    assert repr(plain) == "LAGCN(10, 8, 3, concat=0)"


def test_lagcn_lagat_forward_backward_and_plug_in():
    torch.manual_seed(2)
    x, ei = _graph()
    x_aug = torch.rand(40, 2, 10)
    for model in (LAGCN(10, 8, 3, concat=2), LAGAT(10, 4, 3, heads=2, concat=2)):
        out = model(x, ei, x_aug=x_aug)
        assert out.shape == (40, 3)
        out.sum().backward()
        assert all(p.grad is not None for p in model.branches[2].parameters())
        cfg = model.config()
        clone = type(model)(**cfg)
        clone.load_state_dict(model.state_dict())
        model.eval(), clone.eval()
        assert torch.allclose(clone(x, ei, x_aug=x_aug), model(x, ei, x_aug=x_aug), atol=1e-6)
    assert repr(LAGAT(10, 4, 3, heads=2)) == "LAGAT(10, 4, 3, heads=2, concat=1)"
    # wrapping an existing backbone: its first layer per input + the rest
    wrapped = LAGNN([GCNConv(10, 4) for _ in range(2)], GCNConv(8, 3))
    assert wrapped(x, ei, x_aug=[x_aug[:, 0]]).shape == (40, 3)


def test_node_first_tensor_equals_list_of_matrices():
    torch.manual_seed(3)
    x, ei = _graph()
    x_aug = torch.rand(40, 2, 10)
    model = LAGCN(10, 8, 3, concat=2).eval()
    assert torch.allclose(model(x, ei, x_aug=x_aug),
                          model(x, ei, x_aug=[x_aug[:, 0], x_aug[:, 1]]), atol=1e-6)
    gen = LocalAugmentationCVAE(10, 8, 2)
    one = gen.generate(x, 3, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    parts = [gen.generate(x, 1, generator=g)[:, 0] for _ in range(3)]
    assert torch.equal(one, torch.stack(parts, dim=1))  # same stream, sample by sample
    with pytest.raises(ValueError, match="'num_samples'"):
        gen.generate(x, 0)


def test_lagnn_bad_input():
    x, ei = _graph()
    model = LAGCN(10, 8, 3, concat=1)
    with pytest.raises(ValueError, match="expected 1 generated feature matrices"):
        model(x, ei)
    with pytest.raises(ValueError, match="expected 1 generated"):
        model(x, ei, x_aug=[x, x])
    with pytest.raises(ValueError, match=r"x_aug\[0\]' has shape \(40, 9\)"):
        model(x, ei, x_aug=[torch.rand(40, 9)])
    with pytest.raises(ValueError, match="node-first"):  # sample-first (c, N, F) layout
        LAGCN(10, 8, 3, concat=2)(x, ei, x_aug=torch.rand(2, 40, 10))
    with pytest.raises(ValueError, match="'concat' must be a non-negative int"):
        LAGCN(10, 8, 3, concat=-1)
    with pytest.raises(ValueError, match="'act'"):
        LAGNN([GCNConv(10, 4)], GCNConv(4, 3), act="tanh")


def test_lagnn_takes_csr_original_features():
    torch.manual_seed(4)
    x, ei = _graph()
    x = row_normalize(x * (torch.rand_like(x) < 0.2))
    x_aug = torch.rand(40, 1, 10)
    for model in (LAGCN(10, 8, 3, concat=1), LAGAT(10, 4, 3, heads=2, concat=1)):
        model.eval()
        assert torch.allclose(model(x.to_sparse_csr(), ei, x_aug=x_aug),
                              model(x, ei, x_aug=x_aug), atol=1e-5)
        model.train()
        model(x.to_sparse_csr(), ei, x_aug=x_aug).sum().backward()
        w = model.branches[0].lin.weight if hasattr(model.branches[0], "lin") else None
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in model.branches[0].parameters() if p.requires_grad)
        assert w is None or w.grad.abs().sum() > 0
