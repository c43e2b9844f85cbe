import math

import pytest
import torch

from graphkit.evaluate import (
    f1_at_k,
    f1_from_precision_recall,
    hit_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

# user 0: hits at ranks 1 and 3 of 2 relevant; user 1: rank 4 of 3; user 2: none of 1
HITS = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
NUM = torch.tensor([2, 3, 1])
D = [1 / math.log2(i + 1) for i in range(1, 6)]  # discount of ranks 1..5


@pytest.mark.parametrize("fn,k,expected", [
    (recall_at_k, 4, [1.0, 1 / 3, 0.0]),
    (recall_at_k, 2, [0.5, 0.0, 0.0]),
    (precision_at_k, 4, [0.5, 0.25, 0.0]),
    (precision_at_k, 1, [1.0, 0.0, 0.0]),
    (hit_at_k, 4, [1.0, 1.0, 0.0]),
    (hit_at_k, 3, [1.0, 0.0, 0.0]),
    (ndcg_at_k, 4, [(D[0] + D[2]) / (D[0] + D[1]), D[3] / (D[0] + D[1] + D[2]), 0.0]),
    (ndcg_at_k, 2, [D[0] / (D[0] + D[1]), 0.0, 0.0]),
    (mrr_at_k, 4, [1.0, 0.25, 0.0]),
    (mrr_at_k, 3, [1.0, 0.0, 0.0]),
    (map_at_k, 4, [(1 / 1 + 2 / 3) / 2, (1 / 4) / 3, 0.0]),
    (map_at_k, 2, [(1 / 1) / 2, 0.0, 0.0]),
])
def test_per_user_metrics_by_hand(fn, k, expected):
    out = fn(HITS, NUM, k)
    assert out.dtype == torch.float64 and out.shape == (3,)
    assert out.tolist() == pytest.approx(expected, abs=1e-15)
    assert torch.equal(fn(HITS.double(), NUM, k), out)  # 0/1 floats work alike
    assert torch.equal(fn(HITS.int(), NUM.double(), k), out)


def test_f1_is_of_the_averaged_precision_and_recall():
    p, r = (0.5 + 0.25) / 3, (1 + 1 / 3) / 3
    out = f1_at_k(HITS, NUM, 4)
    assert out.dim() == 0 and out.item() == pytest.approx(2 * p * r / (p + r))
    assert f1_from_precision_recall(0.0, 0.0) == 0.0
    assert f1_at_k(HITS[:0], NUM[:0], 4).item() == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="fewer than k=5"):
        recall_at_k(HITS, NUM, 5)
    with pytest.raises(ValueError, match="k must be a positive int"):
        ndcg_at_k(HITS, NUM, 0)
    with pytest.raises(ValueError, match=r"num_relevant must be a \(3,\) tensor"):
        map_at_k(HITS, NUM[:2], 2)
    with pytest.raises(ValueError, match=r"num_relevant\[2\] = 0"):
        recall_at_k(HITS, torch.tensor([2, 3, 0]), 2)
    with pytest.raises(ValueError, match=r"num_relevant\[0\] = 1 .* \(2\)"):
        recall_at_k(HITS, torch.tensor([1, 3, 1]), 2)  # more hits than relevant items
    bad = HITS.double()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="hits must be 0/1, found nan at row 1, column 2"):
        mrr_at_k(bad, NUM, 4)
