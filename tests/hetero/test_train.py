import math

import pytest
import torch

from graphkit.hetero.train import evaluate_target, target_loss, train_target_batches
from graphkit.nn.models.rphgnn import RpHGNN


def toy(multilabel=False):
    g = torch.Generator().manual_seed(0)
    n = 120
    y = torch.randint(0, 3, (n,), generator=g)
    groups = [torch.randn(n, 2, 6, generator=g), torch.randn(n, 1, 3, generator=g)]
    groups[0][:, 1, :3] += 6 * torch.nn.functional.one_hot(y, 3).float()
    if multilabel:
        y = torch.nn.functional.one_hot(y, 3).float()
        y[::4, 0] = 1.0
    split = {"train": torch.arange(0, 80), "val": torch.arange(80, 100),
             "test": torch.arange(100, 120)}
    return groups, y, split


@pytest.mark.parametrize("multilabel", [False, True])
def test_training_learns_and_reports_f1(multilabel):
    torch.manual_seed(0)
    groups, y, split = toy(multilabel)
    model = RpHGNN([(2, 6), (1, 3)], 16, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    best = train_target_batches(model, [g.half() for g in groups], y, split, opt, 60,
                                batch_size=32, generator=torch.Generator().manual_seed(0))
    assert best["test_micro_f1"] > 75 and best["val_macro_f1"] > 75
    assert best["epochs_run"] == 60 and 1 <= best["epoch"] <= 60
    assert not math.isnan(best["test_macro_f1"])


def test_losses_and_metrics():
    logits = torch.tensor([[2.0, -1.0], [-1.0, 3.0]])
    assert float(target_loss(logits, torch.tensor([0, 1]))) < 0.1
    multi = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(target_loss(logits, multi),
                               torch.nn.functional.binary_cross_entropy_with_logits(logits, multi))
    m = evaluate_target(logits, multi, "test")
    assert m["test_micro_f1"] == pytest.approx(100 * 2 * 2 / (2 * 2 + 0 + 1))


def test_bad_split_and_rows():
    groups, y, split = toy()
    model = RpHGNN([(2, 6), (1, 3)], 4, 3)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match=r"split\['val'\] is missing or empty"):
        train_target_batches(model, groups, y, {"train": split["train"], "test": split["test"],
                                                "val": torch.empty(0, dtype=torch.long)}, opt, 1)
    with pytest.raises(ValueError, match="group 1 has 10 rows for 120"):
        train_target_batches(model, [groups[0], groups[1][:10]], y, split, opt, 1)
