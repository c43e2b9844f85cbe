"""A PyG transform that attaches locally augmented feature matrices to a graph."""
from __future__ import annotations

from typing import Optional

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from graphkit.nn.models.lagnn_cvae import LocalAugmentationCVAE


class LocalAugmentation(BaseTransform):
    r"""Draws ``num_samples`` feature matrices from a trained
    :class:`~graphkit.nn.models.LocalAugmentationCVAE` (`"Local Augmentation for Graph Neural
    Networks" <https://arxiv.org/abs/2109.03856>`_, Liu et al., ICML 2022) and stores them as
    ``data[attr]`` node-first, with shape :math:`(N, S, F)`, ready for
    ``LAGNN(...)(data.x, data.edge_index, x_aug=data.x_aug)``.

    Node-first storage makes ``data[attr]`` a node-level attribute like ``data.x``: PyG's
    batching (:class:`~torch_geometric.data.Batch`), :meth:`~torch_geometric.data.Data.subgraph`
    and neighbour-sampling loaders slice and concatenate it along the node dimension, so row
    :math:`i` of every generated matrix stays aligned with ``data.x[i]``.

    .. math::
        \hat{\mathbf{X}}_s = \mathrm{rownorm}\left(p_\theta(\cdot \mid \mathbf{z}_s,
        \mathbf{X})\right), \qquad \mathbf{z}_s \sim \mathcal{N}(\mathbf{0}, \mathbf{I}),
        \quad s = 1, \ldots, S

    The generator is conditioned on ``data.x`` as it is when the transform runs, so place this
    transform before feature normalisation when the generator was trained on raw features.

    Args:
        generator (LocalAugmentationCVAE): A trained generator.
        num_samples (int, optional): Number :math:`S` of matrices. (default: :obj:`1`)
        attr (str, optional): Attribute to write. (default: :obj:`"x_aug"`)
        normalize (bool, optional): Row-normalise the generated matrices.
            (default: :obj:`True`)
        seed (int, optional): Seed for a private generator, for repeatable draws.
            (default: :obj:`None`, torch's global generator)

    Shapes:
        - **input:** ``data.x`` :math:`(N, F)`
        - **output:** ``data[attr]`` :math:`(N, S, F)`; ``data[attr][:, s]`` is sample
          :math:`s`
    """

    def __init__(self, generator: LocalAugmentationCVAE, num_samples: int = 1,
                 attr: str = "x_aug", normalize: bool = True,
                 seed: Optional[int] = None) -> None:
        if not isinstance(generator, LocalAugmentationCVAE):
            raise TypeError(f"LocalAugmentation: 'generator' must be a LocalAugmentationCVAE "
                            f"(got {type(generator).__name__})")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"LocalAugmentation: 'num_samples' must be a positive int "
                             f"(got {num_samples!r})")
        self.generator = generator
        self.num_samples = num_samples
        self.attr = attr
        self.normalize = normalize
        self.seed = seed

    def forward(self, data: Data) -> Data:
        if getattr(data, "x", None) is None:
            raise ValueError("LocalAugmentation: the graph has no node features 'x'")
        gen = None
        if self.seed is not None:
            gen = torch.Generator(device=data.x.device).manual_seed(self.seed)
        data[self.attr] = self.generator.generate(data.x.float(), self.num_samples,
                                                  normalize=self.normalize, generator=gen)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_samples={self.num_samples}, attr={self.attr!r})"
