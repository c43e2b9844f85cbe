import pytest
import torch
import torch.nn.functional as F
from torch_geometric import EdgeIndex
from torch_geometric.nn import SimpleConv
from torch_geometric.utils import to_torch_csr_tensor

from graphkit.backbones import (
    MaxBottleneck,
    MetaFormerBlock,
    ModulationMixer,
    OSABlock,
    OSABlock2d,
    PoNetMixer,
    PoolMixer,
    num_parameters,
)


def king_graph(h, w, self_loops=True):
    """8-neighbour grid graph on row-major pixel ids (both directions, optional self-loops)."""
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    src, dst = [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if (di, dj) == (0, 0) and not self_loops:
                continue
            ok = (ii + di >= 0) & (ii + di < h) & (jj + dj >= 0) & (jj + dj < w)
            src.append(((ii + di) * w + (jj + dj))[ok])
            dst.append((ii * w + jj)[ok])
    return torch.stack([torch.cat(src), torch.cat(dst)])


def pixels_as_nodes(img):  # (1, C, H, W) -> (H * W, C)
    return img[0].flatten(1).t()


@pytest.mark.parametrize("self_loops", [True, False])
def test_graph_pool_mixer_equals_image_pooling_on_king_graph(self_loops):
    torch.manual_seed(0)
    img = torch.randn(1, 4, 5, 7, dtype=torch.float64)
    ei = king_graph(5, 7, self_loops)
    x = pixels_as_nodes(img)
    mean_img = PoolMixer("mean")(img)
    assert torch.equal(mean_img, F.avg_pool2d(img, 3, 1, 1, count_include_pad=False) - img)
    torch.testing.assert_close(PoolMixer("mean")(x, ei), pixels_as_nodes(mean_img),
                               rtol=1e-12, atol=1e-12)
    max_img = PoolMixer("max")(img)
    assert torch.equal(max_img, F.max_pool2d(img, 3, 1, 1))
    assert torch.equal(PoolMixer("max")(x, ei), pixels_as_nodes(max_img))
    # The border really differs from count_include_pad=True (corner: 4 of 9 pixels).
    assert not torch.allclose(mean_img, F.avg_pool2d(img, 3, 1, 1) - img)


def test_pool_mixer_layouts_constant_and_pyg():
    torch.manual_seed(0)
    ei = king_graph(4, 4, self_loops=False)
    x = torch.randn(16, 3)
    ref = PoolMixer()(x, ei)
    n = x.size(0)
    # SimpleConv's closed-neighbourhood mean is the same operator (plus the subtraction).
    torch.testing.assert_close(ref, SimpleConv("mean", combine_root="self_loop")(x, ei) - x)
    adj = to_torch_csr_tensor(ei.flip(0), size=(n, n))  # row = target
    torch.testing.assert_close(PoolMixer()(x, adj), ref)
    torch.testing.assert_close(PoolMixer()(x, adj.to_sparse_coo()), ref)
    torch.testing.assert_close(PoolMixer()(x, EdgeIndex(ei, sparse_size=(n, n))), ref)
    assert torch.equal(PoolMixer()(torch.full((16, 3), 2.5), ei), torch.zeros(16, 3))
    assert torch.equal(PoolMixer()(torch.full((1, 2, 5, 5), 2.5)), torch.zeros(1, 2, 5, 5))
    # An isolated node keeps its own value under max (no zero fill), and mean - self is 0.
    xi = -torch.ones(3, 2)
    e = torch.tensor([[0], [1]])
    assert torch.equal(PoolMixer("max")(xi, e), xi)
    assert num_parameters(PoolMixer()) == 0


def test_pool_mixer_gradcheck_and_errors():
    ei = king_graph(3, 3, self_loops=False)
    x = torch.randn(9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: PoolMixer()(t, ei), (x,))
    assert torch.autograd.gradgradcheck(lambda t: PoolMixer()(t, ei), (x,))
    with pytest.raises(ValueError, match=r"node id 9 out of range \[0, 9\)"):
        PoolMixer()(x, torch.tensor([[0, 9], [1, 2]]))
    with pytest.raises(ValueError, match=r"shape \[2, num_edges\]"):
        PoolMixer()(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="images"):
        PoolMixer()(torch.randn(9, 2))
    with pytest.raises(ValueError, match="aggr must be"):
        PoolMixer("sum")
    with pytest.raises(TypeError):  # an edge weight is not silently ignored
        PoolMixer()(x, ei, None, torch.ones(ei.size(1)))


def test_poolformer_block_parameter_count_and_init():
    for c, expected in ((64, 33_472), (320, 822_720)):
        block = MetaFormerBlock(c, PoolMixer())
        assert num_parameters(block) == expected == 8 * c * c + 11 * c
    block = MetaFormerBlock(8, PoolMixer(), layer_scale_init_value=1e-5)
    assert torch.equal(block.layer_scale_1, torch.full((8,), 1e-5))
    # Graph block: same parameters, node inputs, extra arguments reach the mixer.
    ei = king_graph(3, 3)
    out = block(torch.randn(9, 8), ei)
    assert out.shape == (9, 8)
    with pytest.raises(ValueError, match="has 4 channels"):
        block(torch.randn(9, 4), ei)


def test_modulation_block_counts_and_graph_form():
    def block(r):
        return MetaFormerBlock(64, ModulationMixer(64, r, kernel_size=7), mlp_ratio=0,
                               norm="layer", layer_scale_init_value=1e-4)

    assert num_parameters(block(6)) == 61_312
    assert num_parameters(block(1)) == 20_032
    assert block(6)(torch.randn(2, 64, 7, 7)).shape == (2, 64, 7, 7)
    # Channel-first "layer" norm = the reference's channel-last LayerNorm on every pixel.
    img = torch.randn(2, 64, 5, 5)
    ln = torch.nn.LayerNorm(64)
    torch.testing.assert_close(block(1).norm1(img),
                               ln(img.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    g = ModulationMixer(8, 3, context="graph")
    ei = king_graph(3, 3, self_loops=False)
    x = torch.randn(9, 8, dtype=torch.float64, requires_grad=True)
    g = g.double()
    assert g(x, ei).shape == (9, 8)
    assert torch.autograd.gradcheck(lambda t: g(t, ei), (x,))
    with pytest.raises(ValueError, match="context='graph' needs 'edge_index'"):
        g(x)


def test_ponet_mixer_counts_and_equivalences():
    m = PoNetMixer(64, heads=4)
    assert num_parameters(m) == 5 * (64 * 64 + 64) == 20_800
    torch.manual_seed(0)
    m = PoNetMixer(8, heads=2).double()
    # A sequence equals the graph form on a path graph (local max = MaxPool1d(3, 1, 1)).
    b, length = 2, 6
    x = torch.randn(b, length, 8, dtype=torch.float64)
    i = torch.arange(length - 1)
    path = torch.cat([torch.stack([i, i + 1]), torch.stack([i + 1, i])], 1)
    ei = torch.cat([path + k * length for k in range(b)], 1)
    batch = torch.arange(b).repeat_interleave(length)
    torch.testing.assert_close(m(x).reshape(b * length, 8), m(x.reshape(-1, 8), ei, batch))
    # Segment max = scatter max over the segment, gathered back to its nodes.
    seg = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    m2 = PoNetMixer(8, heads=2, segments=2).double()
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m2(x).reshape(b * length, 8),
                               m2(x.reshape(-1, 8), ei, batch, segment=seg))
    # Graphs do not interact: changing graph 1 leaves graph 0 untouched.
    xg = x.reshape(-1, 8).clone()
    out0 = m(xg, ei, batch)[:length]
    xg[length:] += 1.0
    torch.testing.assert_close(m(xg, ei, batch)[:length], out0)
    xr = x.reshape(-1, 8).clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: m(t, ei, batch), (xr,))
    with pytest.raises(ValueError, match="'batch' must be a 1-D tensor"):
        m(xg, ei, batch[:3])


def test_max_bottleneck_counts_and_graph():
    assert num_parameters(MaxBottleneck(256, 64)) == 33_408
    torch.manual_seed(0)
    blk = MaxBottleneck(16, 8, stride=2)
    assert blk(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    blk = MaxBottleneck(32, 8)
    ei = king_graph(4, 4)
    assert blk(torch.randn(16, 32), ei).shape == (16, 32)
    # Graph form on the king graph equals the image form on the same pixels (eval-mode BN).
    blk.eval()
    img = torch.randn(1, 32, 4, 4)
    torch.testing.assert_close(blk(pixels_as_nodes(img), ei), pixels_as_nodes(blk(img)))
    with pytest.raises(ValueError, match="stride 2 has no meaning on a graph"):
        MaxBottleneck(32, 8, stride=2)(torch.randn(16, 32), ei)


def test_osa_blocks():
    assert num_parameters(OSABlock2d(128, 128, 256, 5)) == 935_680
    assert OSABlock2d(8, 4, 8, 3, residual=True, ese=True)(torch.randn(2, 8, 5, 5)).shape \
        == (2, 8, 5, 5)
    torch.manual_seed(0)
    blk = OSABlock(8, 4, 8, 3, residual=True, ese=True)
    ei = king_graph(3, 3)
    x = torch.randn(18, 8)
    two = torch.cat([ei, ei + 9], 1)
    batch = torch.arange(2).repeat_interleave(9)
    out = blk(x, two, batch)
    assert out.shape == (18, 8)
    # Count: 3 GCN layers, BN, the concat projection, its BN and eSE.
    gcn = (8 * 4 + 4) + 2 * (4 * 4 + 4)
    assert num_parameters(blk) == gcn + 3 * 8 + (8 + 3 * 4) * 8 + 16 + (8 * 8 + 8)
    blk.eval()  # per-graph eSE: graphs do not interact
    a = blk(x, two, batch)[:9]
    x2 = x.clone()
    x2[9:] *= 3
    torch.testing.assert_close(blk(x2, two, batch)[:9], a)
    with pytest.raises(ValueError, match="residual needs in_channels == out_channels"):
        OSABlock(8, 4, 16, 2, residual=True)
