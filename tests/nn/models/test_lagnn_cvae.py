import json

import pytest
import torch

from graphkit.nn.models import LocalAugmentationCVAE


def _graph(n=40, f=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.3).float()
    src = torch.randint(0, n, (80,), generator=g)
    dst = torch.randint(0, n, (80,), generator=g)
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return x, ei


def test_cvae_fit_generate_save_load(tmp_path):
    torch.manual_seed(0)
    x, ei = _graph()
    gen = LocalAugmentationCVAE(10, hidden_channels=16, latent_channels=4)
    assert gen.config() == {"in_channels": 10, "hidden_channels": 16, "latent_channels": 4}
    losses = gen.fit(x, ei, epochs=15, batch_size=32, lr=0.01)
    assert len(losses) == 15 and losses[-1] < losses[0]  # the ELBO improves
    out = gen.generate(x, num_samples=3)
    assert out.shape == (40, 3, 10)  # node-first, like x
    assert torch.allclose(out.sum(-1), torch.ones(40, 3), atol=1e-5)  # row-normalised
    raw = gen.generate(x, num_samples=1, normalize=False)
    assert ((raw > 0) & (raw < 1)).all()
    path = gen.save(tmp_path / "gen")
    assert path.name == "gen.pt" and (tmp_path / "gen.json").exists()
    meta = json.loads((tmp_path / "gen.json").read_text())
    assert meta["args"] == gen.config()
    loaded = LocalAugmentationCVAE.load(tmp_path / "gen")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.allclose(loaded.generate(x, generator=g1), gen.generate(x, generator=g2))
    # generate() shares the conditional part; it equals decode() with the same z
    z = torch.randn(40, 4, generator=torch.Generator().manual_seed(6))
    manual = gen.decode(z, x)
    via = gen.generate(x, normalize=False, generator=torch.Generator().manual_seed(6))[:, 0]
    assert torch.allclose(manual, via, atol=1e-6)


def test_cvae_load_rejects_other_files(tmp_path):
    (tmp_path / "g.json").write_text(json.dumps({"format": "something-else", "args": {}}))
    torch.save({}, tmp_path / "g.pt")
    with pytest.raises(ValueError, match="not a saved generator"):
        LocalAugmentationCVAE.load(tmp_path / "g")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LocalAugmentationCVAE.load(tmp_path / "missing")


def test_cvae_bad_input():
    x, ei = _graph()
    gen = LocalAugmentationCVAE(10, 8, 2)
    with pytest.raises(ValueError, match="no edges"):
        gen.fit(x, torch.empty(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="no edges"):
        gen.fit(x, torch.tensor([[1, 2], [1, 2]]))  # self-loops only
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gen.fit(x * 3, ei)
    bad = x.clone()
    bad[2, 2] = float("nan")
    with pytest.raises(ValueError, match="first bad node id: 2"):
        gen.fit(bad, ei)
    with pytest.raises(ValueError, match="in_channels=10"):
        gen.generate(torch.rand(4, 3))
    with pytest.raises(ValueError, match="outside"):
        gen.fit(x, torch.tensor([[0], [40]]))
