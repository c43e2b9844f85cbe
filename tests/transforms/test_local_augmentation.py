import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader.utils import filter_data

from graphkit.nn.models import LAGCN, LocalAugmentationCVAE
from graphkit.transforms import LocalAugmentation


def _data(n=12, f=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.4).float()
    x[:, 0] = 1.0  # no all-zero rows
    src = torch.arange(n)
    dst = (src + 1) % n
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return Data(x=x, edge_index=ei)


def _transform(num_samples=3, seed=0):
    torch.manual_seed(0)
    gen = LocalAugmentationCVAE(5, hidden_channels=8, latent_channels=2)
    return LocalAugmentation(gen, num_samples=num_samples, seed=seed)



def test_layout_is_node_first_and_repeatable():
    t = _transform()
    assert repr(t) == "LocalAugmentation(num_samples=3, attr='x_aug')"
    d1, d2 = t(_data()), t(_data())
    assert d1.x_aug.shape == (12, 3, 5)
    assert torch.equal(d1.x_aug, d2.x_aug)
    assert torch.allclose(d1.x_aug.sum(-1), torch.ones(12, 3), atol=1e-5)
    assert d1.is_node_attr("x_aug")
    out = LAGCN(5, 4, 2, concat=3)(d1.x, d1.edge_index, x_aug=d1.x_aug)
    assert out.shape == (12, 2)


def _tagged():
    # Tag every generated row with its node id so misalignment is visible after slicing.
    d = _transform()(_data())
    d.x_aug = d.x_aug.clone()
    d.x_aug[:, :, 0] = torch.arange(d.num_nodes, dtype=torch.float).view(-1, 1)
    d.x[:, 0] = torch.arange(d.num_nodes, dtype=torch.float)
    return d


def _check_aligned(d):
    assert d.x_aug.size(0) == d.num_nodes == d.x.size(0)
    assert torch.equal(d.x_aug[:, :, 0], d.x[:, :1].expand(-1, d.x_aug.size(1)))


def test_subgraph_keeps_x_aug_aligned():
    d = _tagged()
    sub = d.subgraph(torch.tensor([7, 2, 9, 3]))
    assert sub.x_aug.shape == (4, 3, 5)
    _check_aligned(sub)
    assert sub.x_aug[:, 0, 0].tolist() == [7.0, 2.0, 9.0, 3.0]


def test_batch_concatenates_along_nodes():
    d1, d2 = _tagged(), _tagged().subgraph(torch.arange(5))
    batch = Batch.from_data_list([d1, d2])
    assert batch.x_aug.shape == (17, 3, 5)
    _check_aligned(batch)
    back = batch.get_example(1)
    assert torch.equal(back.x_aug, d2.x_aug)


def test_neighbor_sampling_filter_keeps_x_aug_aligned():
    # the node/edge filtering step that NeighborLoader applies to each sampled subgraph
    d = _tagged()
    node = torch.tensor([4, 0, 11, 5])
    row, col = torch.tensor([0, 1]), torch.tensor([1, 0])
    out = filter_data(d, node, row, col, edge=torch.tensor([0, 1]))
    assert out.x_aug.shape == (4, 3, 5)
    _check_aligned(out)
    assert out.x_aug[:, 0, 0].tolist() == [4.0, 0.0, 11.0, 5.0]


def test_bad_input():
    t = _transform()
    with pytest.raises(ValueError, match="no node features"):
        t(Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2))
    with pytest.raises(TypeError, match="LocalAugmentationCVAE"):
        LocalAugmentation(object())
    with pytest.raises(ValueError, match="'num_samples' must be a positive int"):
        LocalAugmentation(t.generator, num_samples=0)
