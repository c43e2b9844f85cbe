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
    with pytest.raises(ValueError, match=r"edge type \('author', 'writes', 'paper'\) needs "
                                         r"features of node type 'author'"):
        conv({"paper": data["paper"].x}, data.edge_index_dict)
    with pytest.raises(ValueError, match="not divisible"):
        LATTEConv(3, 5, data.metadata())
    with pytest.raises(ValueError, match="missing from metadata"):
        LATTEConv(3, 4, (["paper"], [("author", "writes", "paper")]))
    # a relation with no edges leaves only the other relations and "self"
    empty = {**data.edge_index_dict, ("paper", "cites", "paper"): torch.empty(2, 0, dtype=torch.long)}
    assert torch.isfinite(conv(data.x_dict, empty)["paper"]).all()


def reference_forward(conv, x_dict, edge_index_dict):
    """The layer written edge by edge (scores and messages per edge), for comparison."""
    from torch_geometric.utils import scatter

    H, D = conv.heads, conv.out_channels // conv.heads
    h = {n: conv.lin[n](x).view(-1, H, D) for n, x in x_dict.items()}
    out = {}
    for n, hn in h.items():
        msgs, present = [hn], [torch.ones(hn.size(0), dtype=torch.bool)]
        for et in conv.incoming[n]:
            src, dst = edge_index_dict[et]
            hs, k = h[et[0]], "__".join(et)
            e = (hs[src] * conv.att_src[k]).sum(-1) + (hn[dst] * conv.att_dst[k]).sum(-1)
            a = softmax(torch.nn.functional.leaky_relu(e, 0.2), dst, num_nodes=hn.size(0))
            msgs.append(scatter(hs[src] * a.unsqueeze(-1), dst, 0, dim_size=hn.size(0)))
            present.append(torch.bincount(dst, minlength=hn.size(0)) > 0)
        stack = torch.stack(msgs, 1)
        scores = (hn.unsqueeze(1) * conv.rel_query[n].unsqueeze(0)).sum(-1)
        mask = torch.stack(present, 1).unsqueeze(-1)
        beta = torch.softmax(scores.masked_fill(~mask, float("-inf")), 1)
        out[n] = (beta.unsqueeze(-1) * stack).sum(1).reshape(hn.size(0), -1)
    return out


def random_graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    data = HeteroData()
    data["paper"].x = torch.randn(12, 5, generator=g)
    data["author"].x = torch.randn(9, 4, generator=g)
    data["term"].x = torch.randn(6, 3, generator=g)
    for (s, r, d), e in ((("author", "writes", "paper"), 30), (("paper", "has", "term"), 25),
                         (("paper", "cites", "paper"), 20)):
        data[s, r, d].edge_index = torch.stack([
            torch.randint(0, data[s].num_nodes, (e,), generator=g),
            torch.randint(0, data[d].num_nodes, (e,), generator=g)])
    import torch_geometric.transforms as T
    return T.ToUndirected()(data)


def test_matches_edge_by_edge_reference_on_unsorted_edges():
    data = random_graph()
    conv = LATTEConv(-1, 8, data.metadata(), heads=2).eval()
    out = conv(data.x_dict, data.edge_index_dict)
    ref = reference_forward(conv, data.x_dict, data.edge_index_dict)
    for n in ref:
        torch.testing.assert_close(out[n], ref[n])
    # the same edges pre-sorted by destination (read as CSR without sorting) agree
    from torch_geometric.utils import sort_edge_index
    srt = {et: sort_edge_index(ei, sort_by_row=False) for et, ei in data.edge_index_dict.items()}
    out2 = conv(data.x_dict, srt)
    for n in ref:
        torch.testing.assert_close(out2[n], ref[n])


def test_sparse_features_give_the_dense_result():
    data = random_graph()
    conv = LATTEConv(-1, 8, data.metadata()).eval()
    ref = conv(data.x_dict, data.edge_index_dict)
    x = {n: v.masked_fill(v.abs() < 0.8, 0) for n, v in data.x_dict.items()}
    dense = conv(x, data.edge_index_dict)
    sparse = conv({n: v.to_sparse_csr() for n, v in x.items()}, data.edge_index_dict)
    assert ref["paper"].shape == dense["paper"].shape
    for n in dense:
        torch.testing.assert_close(sparse[n], dense[n])


def test_out_types_restricts_the_work_and_keeps_the_values():
    data = random_graph()
    conv = LATTEConv(-1, 8, data.metadata()).eval()
    full = conv(data.x_dict, data.edge_index_dict)
    only = conv(data.x_dict, data.edge_index_dict, out_types=["paper"])
    assert list(only) == ["paper"]
    torch.testing.assert_close(only["paper"], full["paper"])
    # 'term' feeds paper; without its features (and its edges) paper is computed from the rest
    lazy = LATTEConv(-1, 8, data.metadata())
    lazy(data.x_dict, data.edge_index_dict, out_types=["author"])
    # every lazy projection got its width on the first call, used or not
    assert all(lin.weight.shape[1] == data[n].x.size(1) for n, lin in lazy.lin.items())
    with pytest.raises(ValueError, match="out_types names node type 'venue'"):
        conv(data.x_dict, data.edge_index_dict, out_types=["venue"])


def test_gradients_of_attention_parameters():
    data = random_graph()
    conv = LATTEConv(-1, 4, data.metadata(), heads=2)
    conv(data.x_dict, data.edge_index_dict)
    conv = conv.double().eval()
    x = {k: v.double() for k, v in data.x_dict.items()}
    k = "author__writes__paper"
    xp = x["paper"].clone().requires_grad_()
    # the fast layer and the edge-by-edge layer have the same gradients
    out = conv({**x, "paper": xp}, data.edge_index_dict)["paper"]
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), [xp, conv.att_src[k], conv.rel_query["paper"]])
    ref = reference_forward(conv, {**x, "paper": xp}, data.edge_index_dict)["paper"]
    rgrads = torch.autograd.grad((ref * g).sum(), [xp, conv.att_src[k], conv.rel_query["paper"]])
    for a, b in zip(grads, rgrads):
        torch.testing.assert_close(a, b)
