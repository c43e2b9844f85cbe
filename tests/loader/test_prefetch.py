import torch
from torch_geometric.data import Data

from graphkit.loader import Prefetcher, move_to


def test_cpu_prefetch_is_a_pass_through():
    batches = [(torch.arange(3), {"a": torch.ones(2)}), (torch.arange(2), {"a": torch.zeros(1)})]
    p = Prefetcher(batches, "cpu")
    assert not p.active
    out = list(p)
    assert len(out) == 2 and out[0][0] is batches[0][0] and out[1][1]["a"] is batches[1][1]["a"]


def test_move_to_walks_containers_and_pyg_data():
    d = Data(x=torch.ones(2, 2), edge_index=torch.tensor([[0], [1]]))
    out = move_to({"d": d, "t": (torch.ones(1), [torch.zeros(1)])}, torch.device("cpu"))
    assert torch.equal(out["d"].x, d.x) and out["t"][1][0].device.type == "cpu"
