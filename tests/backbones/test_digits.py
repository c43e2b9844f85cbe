"""Learning, not only shapes: a small image MetaFormer (PoolFormer blocks) on scikit-learn's
8x8 digits reaches >= 95% test accuracy (about 97%) in about a minute on one CPU thread.
LayerScale starts at 1 here: the tiny model trains in 12 epochs, not ImageNet's 300."""
import pytest
import torch
import torch.nn.functional as F

from graphkit.backbones import PoolFormerEncoder
from graphkit.evaluate import get_metric

sklearn = pytest.importorskip("sklearn")


def test_small_poolformer_learns_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(digits.target)
    tr, te = train_test_split(torch.arange(len(y)).numpy(), test_size=0.25, stratify=y.numpy(),
                              random_state=0)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    model = PoolFormerEncoder([2, 2], [32, 64], in_channels=1, num_classes=10,
                              stem=(3, 1, 1), layer_scale_init_value=1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    epochs = 12
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=epochs * 22)
    for _ in range(epochs):
        model.train()
        for idx in tr[torch.randperm(len(tr))].split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = model(x[te]).argmax(-1)
    acc = get_metric("accuracy")(pred, y[te])
    assert acc >= 0.95, acc
