"""Inverted dropout with a cheaper CPU mask sampler."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["fast_dropout"]


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    r"""Inverted dropout with a cheaper mask sampler than
    :func:`torch.nn.functional.dropout` on CPU.

    Large CPU tensors draw their mask as 16-bit integers from NumPy's PCG64 bit generator
    (raw 64-bit words split in four), seeded
    from torch's global generator (so :func:`torch.manual_seed` still makes runs repeatable);
    the keep probability is then :math:`1 - \lceil 65536 p \rceil / 65536` (off from
    :math:`1 - p` by less than :math:`2 \cdot 10^{-5}`) and kept entries are scaled by its
    inverse. Other tensors use :func:`torch.rand_like`.

    A sparse CSR ``x`` (bag-of-words features) keeps its pattern: dropout acts on the stored
    values only, which equals dense dropout since dropped zeros stay zero."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"fast_dropout: 'p' must be in [0, 1) (got {p})")
    if x.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(),
                                       fast_dropout(x.values(), p, True), x.size(),
                                       check_invariants=False)
    if x.layout != torch.strided:
        raise ValueError(f"fast_dropout: unsupported layout {x.layout} (use dense or CSR)")
    if x.device.type == "cpu" and x.numel() >= 65536 and not torch.compiler.is_compiling():
        thr = int(math.ceil(p * 65536))
        seed = int(torch.randint(0, 2**62, (1,)))
        n = x.numel()
        bits = np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.uint16)[:n]
        keep = torch.from_numpy(np.greater_equal(bits, thr)).view(x.shape)
        return x.mul(65536.0 / (65536 - thr)).mul_(keep)
    return x * ((torch.rand_like(x) >= p).to(x.dtype) * (1.0 / (1.0 - p)))
