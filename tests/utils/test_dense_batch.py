import pytest
import torch

from graphkit.utils.dense_batch import check_dense_size, dense_adjacency, dense_to_pairs, pair_mask


def test_padded_adjacency_and_mask():
    ei = torch.tensor([[0, 1, 2, 3, 3], [1, 0, 3, 2, 2]])  # graph 0: 0-1; graph 1: 2-3 (+ dup)
    batch = torch.tensor([0, 0, 1, 1, 1])
    adj, mask = dense_adjacency(ei, batch)
    assert adj.shape == (2, 3, 3) and mask.tolist() == [[True, True, False], [True, True, True]]
    assert adj[0].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert adj[1, 1, 0] == 2  # parallel edges add up (row = source)
    w, _ = dense_adjacency(ei, batch, edge_weight=torch.tensor([0.5, 1, 1, 2, 3.0]))
    assert w[1, 1, 0] == 5 and w[0, 0, 1] == 0.5
    pm = pair_mask(mask)
    assert int(pm.sum()) == 4 + 9
    assert dense_to_pairs(adj.unsqueeze(-1), mask).shape == (13, 1)


def test_no_edges_and_no_nodes():
    adj, mask = dense_adjacency(torch.empty(2, 0, dtype=torch.long), torch.tensor([0, 1, 1]))
    assert adj.shape == (2, 2, 2) and not adj.any() and mask.sum() == 3
    adj, mask = dense_adjacency(torch.empty(2, 0, dtype=torch.long), num_nodes=0)
    assert adj.shape == (1, 0, 0) and mask.shape == (1, 0)  # one graph without nodes


def test_clear_errors():
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="graph 1 has 5 nodes, above max_nodes=4"):
        check_dense_size(torch.tensor([0, 0, 1, 1, 1, 1, 1]), 7, max_nodes=4)
    with pytest.raises(ValueError, match="outside"):
        dense_adjacency(torch.tensor([[0, 5], [5, 0]]), num_nodes=3)
    with pytest.raises(ValueError, match="different graphs"):
        dense_adjacency(ei, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="sorted"):
        dense_adjacency(ei, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="NaN/inf"):
        dense_adjacency(ei, edge_weight=torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="shape"):
        dense_adjacency(torch.tensor([0, 1]))
