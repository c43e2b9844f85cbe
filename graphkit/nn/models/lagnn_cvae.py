"""The conditional VAE of local augmentation (LA-GNN) that generates neighbour features."""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module

from graphkit.utils.io import atomic_write

PathLike = Union[str, os.PathLike]

_FORMAT = "graphkit.LocalAugmentationCVAE/1"


def _check_features(x: Tensor, where: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"{where}: 'x' must be a 2-dimensional tensor [num_nodes, num_features] "
                         f"(got shape {tuple(getattr(x, 'shape', ()))})")
    if not x.is_floating_point():
        raise TypeError(f"{where}: 'x' must be a floating point tensor (got {x.dtype})")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).any(dim=-1).nonzero().view(-1)
        raise ValueError(f"{where}: 'x' contains NaN or infinite values (first bad node id: "
                         f"{int(bad[0])}, {bad.numel()} bad nodes)")


def row_normalize(x: Tensor) -> Tensor:
    r"""Divides every row by its sum; all-zero rows stay zero."""
    s = x.sum(dim=-1, keepdim=True)
    return torch.where(s > 0, x / s.clamp(min=torch.finfo(x.dtype).tiny), torch.zeros_like(x))


class LocalAugmentationCVAE(Module):
    r"""The feature generator of `"Local Augmentation for Graph Neural Networks"
    <https://arxiv.org/abs/2109.03856>`_ (Liu et al., ICML 2022): a conditional variational
    auto-encoder that learns the distribution of a neighbour's features
    :math:`\mathbf{x}_u` given the centre node's features :math:`\mathbf{x}_v`, trained on
    the (centre, neighbour) pairs of the graph's edges.

    .. math::
        q_\phi(\mathbf{z} \mid \mathbf{x}_u, \mathbf{x}_v) &= \mathcal{N}\left(
        \boldsymbol{\mu}_\phi(\mathbf{x}_u \,\|\, \mathbf{x}_v),
        \mathrm{diag}\,\boldsymbol{\sigma}^2_\phi(\mathbf{x}_u \,\|\, \mathbf{x}_v)\right),
        \qquad
        p_\theta(\mathbf{x}_u \mid \mathbf{z}, \mathbf{x}_v) = \mathrm{Bernoulli}\left(
        \sigma(\mathrm{MLP}_\theta(\mathbf{z} \,\|\, \mathbf{x}_v))\right)

        \mathcal{L} &= \frac{1}{|B|} \sum_{(v, u) \in B} \mathrm{BCE}\left(
        \hat{\mathbf{x}}_u, \mathbf{x}_u\right) + \mathrm{KL}\left(q_\phi \,\|\,
        \mathcal{N}(\mathbf{0}, \mathbf{I})\right)

    At generation time :math:`\mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})` is drawn
    for every node and decoded with the node's own features; the result is row-normalised
    (:meth:`generate`). Features are expected in :math:`[0, 1]` (e.g. binary bag-of-words, as
    in the paper, which conditions on the raw features).

    Generators are saved as a ``state_dict`` plus a JSON of the constructor arguments
    (:meth:`save` / :meth:`load`), never as pickled modules.

    Args:
        in_channels (int): Number of node features :math:`F`.
        hidden_channels (int, optional): Width of the encoder and decoder hidden layer.
            (default: :obj:`256`)
        latent_channels (int, optional): Size of :math:`\mathbf{z}`. (default: :obj:`10`)

    Shapes:
        - **input:** neighbour features :math:`(B, F)`, centre features :math:`(B, F)`
        - **output:** reconstruction :math:`(B, F)`, mean :math:`(B, L)`,
          log-variance :math:`(B, L)`
    """

    def __init__(self, in_channels: int, hidden_channels: int = 256,
                 latent_channels: int = 10) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                          ("latent_channels", latent_channels)):
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise ValueError(f"LocalAugmentationCVAE: '{name}' must be a positive int "
                                 f"(got {val!r})")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.latent_channels = latent_channels

        self.enc = Linear(2 * in_channels, hidden_channels)
        self.enc_mean = Linear(hidden_channels, latent_channels)
        self.enc_logvar = Linear(hidden_channels, latent_channels)
        self.dec = Linear(latent_channels + in_channels, hidden_channels)
        self.dec_out = Linear(hidden_channels, in_channels)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.enc, self.enc_mean, self.enc_logvar, self.dec, self.dec_out):
            lin.reset_parameters()

    def config(self) -> Dict[str, Any]:
        r"""The constructor arguments as a JSON-able dictionary."""
        return dict(in_channels=self.in_channels, hidden_channels=self.hidden_channels,
                    latent_channels=self.latent_channels)

    def encode(self, x_nbr: Tensor, x_ctr: Tensor):
        h = F.relu(self.enc(torch.cat([x_nbr, x_ctr], dim=-1)))
        return self.enc_mean(h), self.enc_logvar(h)

    def decode(self, z: Tensor, x_ctr: Tensor) -> Tensor:
        h = F.relu(self.dec(torch.cat([z, x_ctr], dim=-1)))
        return torch.sigmoid(self.dec_out(h))

    def forward(self, x_nbr: Tensor, x_ctr: Tensor):
        mean, logvar = self.encode(x_nbr, x_ctr)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return self.decode(z, x_ctr), mean, logvar

    def loss(self, x_nbr: Tensor, x_ctr: Tensor) -> Tensor:
        r"""Negative ELBO per pair: summed binary cross-entropy plus KL divergence."""
        recon, mean, logvar = self(x_nbr, x_ctr)
        bce = F.binary_cross_entropy(recon, x_nbr, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp())
        return (bce + kld) / x_nbr.size(0)

    def fit(self, x: Tensor, edge_index: Tensor, epochs: int = 10, batch_size: int = 64,
            lr: float = 0.01, generator: Optional[torch.Generator] = None,
            callback: Optional[Callable[[int, float], None]] = None) -> List[float]:
        r"""Trains the generator on the (centre, neighbour) pairs given by ``edge_index``
        (``edge_index[1]`` is the centre, ``edge_index[0]`` its neighbour; self-loops are
        dropped). Pairs are gathered batch by batch, never materialised. Returns the mean loss
        of every epoch."""
        _check_features(x, "LocalAugmentationCVAE.fit")
        if x.size(1) != self.in_channels:
            raise ValueError(f"LocalAugmentationCVAE.fit: 'x' has {x.size(1)} features but the "
                             f"generator was built with in_channels={self.in_channels}")
        if float(x.min()) < 0 or float(x.max()) > 1:
            raise ValueError("LocalAugmentationCVAE.fit: features must lie in [0, 1] (binary "
                             "cross-entropy reconstruction); pass raw binary features or rescale")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"LocalAugmentationCVAE.fit: 'edge_index' must have shape "
                             f"[2, num_edges] (got {tuple(edge_index.shape)})")
        if edge_index.numel() and (int(edge_index.min()) < 0
                                   or int(edge_index.max()) >= x.size(0)):
            raise ValueError(f"LocalAugmentationCVAE.fit: 'edge_index' holds node ids outside "
                             f"[0, {x.size(0)})")
        src, dst = edge_index[0], edge_index[1]
        keep = src != dst
        src, dst = src[keep], dst[keep]
        if src.numel() == 0:
            raise ValueError("LocalAugmentationCVAE.fit: the graph has no edges (other than "
                             "self-loops); the generator learns from (centre, neighbour) pairs")
        if epochs < 1 or batch_size < 1:
            raise ValueError("LocalAugmentationCVAE.fit: 'epochs' and 'batch_size' must be >= 1")
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        losses: List[float] = []
        self.train()
        for epoch in range(epochs):
            perm = torch.randperm(src.numel(), generator=generator).to(src.device)
            total, count = 0.0, 0
            for start in range(0, perm.numel(), batch_size):
                idx = perm[start:start + batch_size]
                loss = self.loss(x[src[idx]], x[dst[idx]])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
            losses.append(total / count)
            if callback is not None:
                callback(epoch, losses[-1])
        self.eval()
        return losses

    @torch.no_grad()
    def generate(self, x: Tensor, num_samples: int = 1, normalize: bool = True,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        r"""Draws ``num_samples`` generated feature matrices conditioned on every node's
        features ``x`` (row-normalised if :obj:`normalize`), stacked node-first as
        :math:`(N, S, F)` so that PyG slices, batches and subgraphs them like ``x``
        (``out[:, s]`` is sample :math:`s`)."""
        _check_features(x, "LocalAugmentationCVAE.generate")
        if x.size(1) != self.in_channels:
            raise ValueError(f"LocalAugmentationCVAE.generate: 'x' has {x.size(1)} features but "
                             f"the generator was built with in_channels={self.in_channels}")
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(f"LocalAugmentationCVAE.generate: 'num_samples' must be a positive "
                             f"int (got {num_samples!r})")
        # The conditional half of the decoder's first layer is shared by all samples.
        w_z = self.dec.weight[:, :self.latent_channels]
        cond = x @ self.dec.weight[:, self.latent_channels:].t() + self.dec.bias
        out = x.new_empty(x.size(0), num_samples, x.size(1))
        for s in range(num_samples):
            z = torch.randn(x.size(0), self.latent_channels, generator=generator,
                            device=x.device if generator is None else generator.device
                            ).to(x.device, x.dtype)
            h = F.relu(z @ w_z.t() + cond)
            xs = torch.sigmoid(self.dec_out(h))
            out[:, s] = row_normalize(xs) if normalize else xs
        return out

    def save(self, path: PathLike) -> pathlib.Path:
        r"""Writes ``<path>.pt`` (``state_dict``) and ``<path>.json`` (arguments), each
        atomically. Returns the ``.pt`` path."""
        path = pathlib.Path(path)
        if path.suffix in (".pt", ".json"):
            path = path.with_suffix("")
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        meta = dict(format=_FORMAT, class_name=type(self).__name__, args=self.config())
        for suffix, write in ((".pt", lambda f: torch.save(state, f)),
                              (".json", lambda f: f.write(json.dumps(meta, indent=2).encode()))):
            atomic_write(path.with_suffix(suffix), write)
        return path.with_suffix(".pt")

    @classmethod
    def load(cls, path: PathLike, map_location: Union[str, torch.device] = "cpu"
             ) -> "LocalAugmentationCVAE":
        r"""Rebuilds a generator written by :meth:`save` (``torch.load(weights_only=True)``)."""
        path = pathlib.Path(path)
        if path.suffix in (".pt", ".json"):
            path = path.with_suffix("")
        meta_path, state_path = path.with_suffix(".json"), path.with_suffix(".pt")
        for p in (meta_path, state_path):
            if not p.exists():
                raise FileNotFoundError(f"LocalAugmentationCVAE.load: {p} does not exist")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"LocalAugmentationCVAE.load: {meta_path} is not a saved generator "
                             f"(format {meta.get('format')!r}, expected {_FORMAT!r})")
        model = cls(**meta["args"])
        model.load_state_dict(torch.load(state_path, map_location=map_location,
                                         weights_only=True))
        model.eval()
        return model
