r"""A polynomial low-pass graph filter on the normalised item–item graph (training-free)."""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

from graphkit.nn.models.gf_cf import _ItemFilterRecommender
from graphkit.nn.models.recommender import register_recommender

__all__ = ["PolyFilter"]


@register_recommender("polyfilter")
class PolyFilter(_ItemFilterRecommender):
    r"""A polynomial item–item graph filter in the spirit of Turbo-CF, `"Turbo-CF: Matrix
    Decomposition-Free Graph Filtering for Fast Recommendation"
    <https://arxiv.org/abs/2404.14243>`_ (Park, Shin, Shin; SIGIR 2024): no SVD, no training, only
    sparse matrix products.

    .. math::
        \tilde{\mathbf{P}} = \tilde{\mathbf{R}}^{\top}\tilde{\mathbf{R}},\quad
        \tilde{\mathbf{R}} = \mathbf{D}_U^{-1/2}\mathbf{R}\mathbf{D}_I^{-1/2},\qquad
        \mathbf{s}_u = \mathbf{r}_u\, h(\tilde{\mathbf{P}}),\quad
        h(\tilde{\mathbf{P}}) = \sum_{k=0}^{K} c_k \tilde{\mathbf{P}}^{k}

    The eigenvalues :math:`\lambda` of :math:`\tilde{\mathbf{P}}` lie in :math:`[0, 1]`
    (squared singular values of :math:`\tilde{\mathbf{R}}`), large :math:`\lambda` being the
    smooth (low-frequency) signals, so :math:`h(\lambda)` is the filter's frequency response.
    The default :math:`h(\lambda) = 2\lambda - \lambda^2 = 1 - (1-\lambda)^2` is a low-pass
    filter steeper than the linear :math:`h(\lambda) = \lambda` of GF-CF. The polynomial is
    applied with Horner's rule to item-major blocks of users, each power of
    :math:`\tilde{\mathbf{P}}` being two sparse products (see :mod:`graphkit.nn.models.gf_cf`).

    What differs from Turbo-CF: Turbo-CF raises the item–item weights element-wise to a power
    and renormalises before taking the polynomial, which needs the ``[I, I]`` matrix; here the
    polynomial acts on :math:`\tilde{\mathbf{P}}` itself, so nothing of size ``I x I`` is formed.

    Args:
        num_users (int): number of users.
        num_items (int): number of items.
        coefficients (Sequence[float]): :math:`c_0, \dots, c_K` (finite; any sign; not all
            zero). (default: :obj:`(0.0, 2.0, -1.0)`)
        memory_budget_mb (float): working memory of one scoring block. (default: :obj:`1024`)
        item_item (str): ``"auto"``, ``"sparse"`` or ``"dense"``. (default: :obj:`"auto"`)

    Shapes:
        - **input:** training interactions ``[2, E]`` (or a sparse ``[U, I]`` matrix) via
          :meth:`set_graph`; user ids ``[B]``
        - **output:** :meth:`score_all` → ``[B, I]``; :meth:`recommend` → ``[B, k]``
    """

    def __init__(self, num_users: int, num_items: int, coefficients: Sequence[float] = (0.0, 2.0, -1.0),
                 memory_budget_mb: float = 1024.0, item_item: str = "auto") -> None:
        super().__init__(num_users, num_items, memory_budget_mb, item_item)
        if (isinstance(coefficients, (str, bytes)) or not hasattr(coefficients, "__len__")
                or len(coefficients) == 0):
            raise ValueError(f"PolyFilter: 'coefficients' must be a non-empty sequence of numbers, "
                             f"got {coefficients!r}")
        coeffs = []
        for k, c in enumerate(coefficients):
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(float(c)):
                raise ValueError(f"PolyFilter: coefficients[{k}] must be a finite number, got {c!r}")
            coeffs.append(float(c))
        if not any(coeffs):
            raise ValueError("PolyFilter: the coefficients are all zero (every score would be 0)")
        while coeffs[-1] == 0:
            coeffs.pop()
        self.coefficients = coeffs

    _work_columns = (3, 1)

    def _filter(self, x: Tensor) -> Tensor:
        c = self.coefficients
        if len(c) == 1:
            return x * c[0]
        # Horner's rule; the first power acts on the raw rows (a cheaper product, see _propagate)
        out = self._propagate(x).mul_(c[-1])
        for k in range(len(c) - 2, -1, -1):
            if c[k]:
                out.add_(x, alpha=c[k])
            if k > 0:
                out = self._propagate(out)
        return out

    def __repr__(self) -> str:
        return f"PolyFilter({self.num_users}, {self.num_items}, coefficients={self.coefficients})"
