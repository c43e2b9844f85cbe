import os

import pytest
import torch
from torch_geometric.loader import DataLoader

from graphkit.nn.aggr import AttSetsAggregation, GGeMAggregation, LCMAggregation, PoNetAggregation, SPPAggregation


def reference(aggr, x, index, dim_size):
    """Balanced tree over each group's elements in input order, pairing (0,1), (2,3), ...,
    carrying an unpaired last element; empty groups give the identity."""
    if aggr.lin is not None:
        x = aggr.lin(x).relu()
    outs = []
    for i in range(dim_size):
        elems = [x[j] for j in range(x.size(0)) if int(index[j]) == i]
        if not elems:
            outs.append(aggr.identity)
            continue
        while len(elems) > 1:
            nxt = [aggr.combine(elems[k][None], elems[k + 1][None])[0]
                   for k in range(0, len(elems) - 1, 2)]
            elems = nxt + ([elems[-1]] if len(elems) % 2 else [])
        outs.append(elems[0])
    return torch.stack(outs)


@pytest.fixture(scope="module")
def mutag():
    if not os.environ.get("GRAPHKIT_DATA"):
        pytest.skip("GRAPHKIT_DATA is not set: no dataset mirror")
    from graphkit import datasets
    try:
        return datasets.load("MUTAG")
    except FileNotFoundError as e:
        pytest.skip(f"MUTAG not in the mirror: {e}")


def test_lcm_on_mutag_neighbourhoods_matches_slow_reference(mutag):
    data = mutag[0]
    torch.manual_seed(0)
    aggr = LCMAggregation(mutag.num_features, 8)
    with torch.no_grad():
        aggr.identity.normal_()
    src, dst = data.edge_index
    out = aggr(data.x[src], dst, dim_size=data.num_nodes)
    ref = reference(aggr, data.x[src], dst, data.num_nodes)
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda c: LCMAggregation(c, c), lambda c: GGeMAggregation(c, groups=7),
    lambda c: AttSetsAggregation(c), lambda c: PoNetAggregation(c, c),
    lambda c: SPPAggregation()], ids=["lcm", "ggem", "attsets", "ponet", "spp"])
def test_readouts_on_a_mutag_batch(mutag, make):
    batch = next(iter(DataLoader(mutag, batch_size=32)))
    aggr = make(mutag.num_features)
    x = batch.x.clone().requires_grad_()
    out = aggr(x, batch.batch, dim_size=batch.num_graphs)
    assert out.size(0) == 32 and torch.isfinite(out).all()
    # Graph-wise: pooling one graph alone gives the same row as pooling the batch.
    g = batch.get_example(5)
    single = aggr(g.x, torch.zeros(g.num_nodes, dtype=torch.long))
    assert torch.allclose(single[0], out[5], atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
