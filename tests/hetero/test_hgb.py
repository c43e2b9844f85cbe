import os

import pytest
import torch

from graphkit.hetero.hgb import hgb_split, read_hgb_labels, stratified_split


def test_read_hgb_labels_single_and_multi(tmp_path):
    f = tmp_path / "label.dat"
    f.write_text("3\t\t0\t2\n0\tname\t0\t1,4\n", encoding="utf-8")
    ids, labels = read_hgb_labels(str(f), 5)
    assert ids == [3, 0] and labels == [[2], [1, 4]]
    with pytest.raises(ValueError, match="line 2: node id 0 outside|outside the 2 target"):
        read_hgb_labels(str(f), 2)
    f.write_text("3\t\t0\t2\nfoo\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"label.dat, line 2: expected"):
        read_hgb_labels(str(f), 5)


def test_stratified_split_keeps_class_shares():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    ids = torch.arange(100)
    train, val = stratified_split(ids, y, 0.2, torch.Generator().manual_seed(0))
    assert torch.bincount(y[val]).tolist() == [10, 6, 4]
    assert torch.equal(torch.cat([train, val]).sort().values, ids)
    t2, v2 = stratified_split(ids, y, 0.2, torch.Generator().manual_seed(1))
    assert not torch.equal(v2, val)
    multi = torch.zeros(100, 3)
    _, v = stratified_split(ids, multi, 0.2, torch.Generator().manual_seed(0))
    assert v.numel() == 20


@pytest.mark.skipif(not os.environ.get("GRAPHKIT_DATA"), reason="needs the dataset mirror")
def test_hgb_acm_split_from_the_mirror():
    from graphkit.datasets import load

    ds = load("HGB-ACM")
    s = hgb_split(ds, seed=0)
    assert (s.train.numel(), s.val.numel(), s.test.numel(), s.num_classes) == (725, 182, 1059, 3)
    assert not s.multilabel
    data = ds[0]
    # the public test labels are those PyG reads into y[test_mask]
    assert torch.equal(s.test, data["paper"].test_mask.nonzero().view(-1))
    assert torch.equal(s.y[s.test], data["paper"].y[s.test])
    assert torch.equal(s.y[s.train], data["paper"].y[s.train])
    assert set(s.train.tolist()).isdisjoint(s.val.tolist())
    full = hgb_split(ds, seed=0, test="full")
    assert full.test.numel() == 2118
    with pytest.raises(ValueError, match="target node type 'author' has no labels"):
        hgb_split(ds, target="author")
    with pytest.raises(ValueError, match="target node type 'movie' is not in the graph"):
        hgb_split(ds, target="movie")
    with pytest.raises(ValueError, match="test must be"):
        hgb_split(ds, test="all")
