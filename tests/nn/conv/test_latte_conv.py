import pytest
import torch
from torch_geometric.data import HeteroData
from torch_geometric.utils import softmax

from graphkit.nn.conv.latte_conv import LATTEConv


def graph():
    data = HeteroData()
    g = torch.Generator().manual_seed(0)
    data["paper"].x = torch.randn(4, 3, generator=g)
    data["author"].x = torch.randn(3, 2, generator=g)
    data["author", "writes", "paper"].edge_index = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 3]])
    data["paper", "written_by", "author"].edge_index = torch.tensor([[0, 1, 1, 3], [0, 0, 1, 2]])
    data["paper", "cites", "paper"].edge_index = torch.tensor([[0, 1], [1, 2]])
    return data


def test_output_shapes_and_repr():
    data = graph()
    conv = LATTEConv({"paper": 3, "author": 2}, 8, data.metadata(), heads=2)
    out = conv(data.x_dict, data.edge_index_dict)
    assert out["paper"].shape == (4, 8) and out["author"].shape == (3, 8)
    assert repr(conv) == "LATTEConv(8, heads=2, node_types=2, edge_types=3)"
    lazy = LATTEConv(-1, 8, data.metadata())
    assert repr(lazy) == "LATTEConv(-1, 8, heads=2)"
    assert lazy(data.x_dict, data.edge_index_dict)["author"].shape == (3, 8)


def test_matches_hand_computation():
    data = graph()
    conv = LATTEConv({"paper": 3, "author": 2}, 4, data.metadata(), heads=1).eval()
    out, beta = conv(data.x_dict, data.edge_index_dict, return_attention_weights=True)
    hp = conv.lin["paper"](data["paper"].x)
    ha = conv.lin["author"](data["author"].x)
    # paper 3: one author (2), no citing paper -> "self" and "writes" only
    et = ("author", "writes", "paper")
    k = "__".join(et)
    e = (ha[2] * conv.att_src[k][0]).sum() + (hp[3] * conv.att_dst[k][0]).sum()
    a = softmax(torch.nn.functional.leaky_relu(e.view(1), 0.2), torch.zeros(1, dtype=torch.long))
    msg = a * ha[2]
    q = conv.rel_query["paper"][:, 0]       # [self, writes, cites]
    scores = torch.stack([(hp[3] * q[0]).sum(), (hp[3] * q[1]).sum()])
    b = torch.softmax(scores, 0)
    torch.testing.assert_close(out["paper"][3], b[0] * hp[3] + b[1] * msg)
    assert beta["paper"][3, 2, 0] == 0      # no citing paper: relation masked out
    torch.testing.assert_close(beta["paper"].sum(1), torch.ones(4, 1))


def test_sparse_layouts_agree():
    data = graph()
    conv = LATTEConv(-1, 4, data.metadata()).eval()
    ref = conv(data.x_dict, data.edge_index_dict)
    adj = {}
    for et, ei in data.edge_index_dict.items():
        n_src, n_dst = data[et[0]].num_nodes, data[et[2]].num_nodes
        adj[et] = torch.sparse_coo_tensor(ei.flip(0), torch.ones(ei.size(1)), (n_dst, n_src))
    out = conv(data.x_dict, adj)
    csr = conv(data.x_dict, {k: v.to_sparse_csr() for k, v in adj.items()})
    from torch_geometric import EdgeIndex
    ei_out = conv(data.x_dict, {k: EdgeIndex(v) for k, v in data.edge_index_dict.items()})
    for n in ref:
        torch.testing.assert_close(out[n], ref[n])
        torch.testing.assert_close(csr[n], ref[n])
        torch.testing.assert_close(ei_out[n], ref[n])


def test_gradients_and_reset():
    data = graph()
    conv = LATTEConv({"paper": 3, "author": 2}, 4, data.metadata())
    x = {k: v.clone().double().requires_grad_() for k, v in data.x_dict.items()}
    conv = conv.double().eval()

    def f(xp, xa):
        o = conv({"paper": xp, "author": xa}, data.edge_index_dict)
        return o["paper"].sum() + o["author"].pow(2).sum()

    assert torch.autograd.gradcheck(f, (x["paper"], x["author"]))
    torch.manual_seed(3)
    conv.reset_parameters()
    w = [p.clone() for p in conv.parameters()]
    torch.manual_seed(3)
    conv.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(w, conv.parameters()))


def test_bad_input_names_the_type():
    data = graph()
    conv = LATTEConv({"paper": 3, "author": 2}, 4, data.metadata())
    with pytest.raises(ValueError, match=r"unknown edge type \('paper', 'likes', 'paper'\)"):
        conv(data.x_dict, {**data.edge_index_dict,
                           ("paper", "likes", "paper"): torch.tensor([[0], [1]])})
    with pytest.raises(ValueError, match="unknown node type 'venue'"):
        conv({**data.x_dict, "venue": torch.ones(2, 2)}, data.edge_index_dict)
    with pytest.raises(ValueError, match=r"node type 'author' has features of shape \(3, 5\)"):
        conv({**data.x_dict, "author": torch.ones(3, 5)}, data.edge_index_dict)
    with pytest.raises(ValueError, match="source id 9 outside"):
        conv(data.x_dict, {**data.edge_index_dict,
                           ("author", "writes", "paper"): torch.tensor([[9], [0]])})
    with pytest.raises(ValueError, match="not divisible"):
        LATTEConv(3, 5, data.metadata())
    with pytest.raises(ValueError, match="missing from metadata"):
        LATTEConv(3, 4, (["paper"], [("author", "writes", "paper")]))
    # a relation with no edges leaves only the other relations and "self"
    empty = {**data.edge_index_dict, ("paper", "cites", "paper"): torch.empty(2, 0, dtype=torch.long)}
    assert torch.isfinite(conv(data.x_dict, empty)["paper"]).all()
