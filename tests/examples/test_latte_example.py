import json

import torch
from torch_geometric.data import HeteroData


def graph():
    g = torch.Generator().manual_seed(0)
    data = HeteroData()
    x = torch.randn(20, 30, generator=g)
    data["paper"].x = x.masked_fill(x.abs() < 2.0, 0)          # ~5% non-zeros: stored sparse
    data["paper"].y = torch.randint(0, 3, (20,), generator=g)
    data["author"].x = torch.randn(15, 6, generator=g)           # dense: kept dense
    data["term"].num_nodes = 8                                   # no features: random ones
    for (s, d), e in ((("author", "paper"), 40), (("paper", "term"), 50)):
        src = torch.randint(0, data[s].num_nodes, (e,), generator=g)
        dst = torch.randint(0, data[d].num_nodes, (e,), generator=g)
        data[s, "to", d].edge_index = torch.stack([src, dst])
        data[d, "to", s].edge_index = torch.stack([dst, src])
    return data


def test_prepare_stores_sparse_features_and_destination_sorted_edges(load_example):
    latte = load_example("latte")
    raw = graph()
    data = latte.prepare([raw])
    assert data["paper"].x.layout == torch.sparse_csr
    torch.testing.assert_close(data["paper"].x.to_dense(), raw["paper"].x)
    assert data["author"].x.layout == torch.strided and data["term"].x.shape == (8, 64)
    for et in raw.edge_types:
        ei = data[et].edge_index
        assert bool((ei[1, 1:] >= ei[1, :-1]).all())
        # the same edge set
        key = lambda e: set((e[0] * 100 + e[1]).tolist())  # noqa: E731
        assert key(ei) == key(raw[et].edge_index)


def test_models_on_prepared_graph_match_the_plain_graph(load_example):
    latte = load_example("latte")
    raw = graph()
    data = latte.prepare([raw])
    plain = raw.clone()
    plain["term"].x = data["term"].x
    args = latte.parse_args(["--dataset", "HGB-ACM"])
    for method in ("latte", "hgt"):
        torch.manual_seed(0)
        model, forward = latte.build(method, args, data, "paper", 3)
        model.eval()
        with torch.no_grad():
            fast = forward()
            if method == "hgt":  # every relation in every layer, dense features
                slow = model(plain.x_dict, plain.edge_index_dict, plain.edge_index_dict)
            else:
                slow = model(plain.x_dict, plain.edge_index_dict)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


def test_latte_record_compares_with_the_baseline_records(load_example, tmp_path):
    latte = load_example("latte")
    out = tmp_path / "results"
    out.mkdir()
    base = {"metrics": {"macro_f1": {"mean": 90.0}}, "runs": 5}
    (out / "hgt-hgb-acm.json").write_text(json.dumps(base))
    args = latte.parse_args(["--dataset", "HGB-ACM", "--lr", "5e-3", "--epochs", "40",
                             "--out", str(out)])
    extra = latte.compare_with_baselines(args, [88.0, 89.0])
    assert extra["baselines_macro_f1"] == {"HGT": {"macro_f1": 90.0, "runs": 5}}
    assert extra["comparison"] == ("LATTE test macro-F1 88.50: below HGT by 1.50 points "
                                   "(90.00, 5 seeds)")
