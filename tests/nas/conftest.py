import torch
from torch_geometric.data import Data


def tiny_graph(n: int = 30, f: int = 6, classes: int = 3, seed: int = 0) -> Data:
    """A small random graph with train / val / test masks (hand-sized for fast tests)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    y[:classes] = torch.arange(classes)
    src = torch.arange(n)
    ei = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
    masks = torch.zeros(3, n, dtype=torch.bool)
    masks[0, : n // 3] = True
    masks[1, n // 3: 2 * n // 3] = True
    masks[2, 2 * n // 3:] = True
    return Data(x=x, edge_index=ei, y=y, train_mask=masks[0], val_mask=masks[1],
                test_mask=masks[2])


import pytest  # noqa: E402


@pytest.fixture
def graph() -> Data:
    return tiny_graph()
