r"""The catalogue of equivariant polynomial basis elements and two evaluators.

Every basis element is a small multigraph :math:`H` whose vertices are the output vertex ``i``
(node level) or the output pair ``i, j`` (edge level) plus summed vertices ``a, b, c, ...``.
Its value on an adjacency :math:`A` is the tensor contraction

.. math::
    P_H(A)_{\text{out}} = \sum_{\text{summed vertices}} \prod_{(u, v) \in E(H)} A_{u v},

written here as an ``einsum`` subscript string (one ``uv`` term per edge of :math:`H`).

* :func:`evaluate_naive` evaluates each element on its own with :func:`torch.einsum` (the
  definition; used by the tests and as the baseline of the speed benchmark);
* :func:`evaluate_batched` evaluates all requested elements of a padded batch at once from
  shared matrix powers and one batched four-index contraction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class Basis:
    name: str
    level: str          # "node" or "edge"
    degree: int         # number of edges of H
    einsum: str         # one operand per edge of H
    ppgn: bool          # computable by PPGN's matrix products and element-wise products
    meaning: str


def _b(name, level, einsum, ppgn, meaning):
    degree = einsum.split("->")[0].count(",") + 1
    return Basis(name, level, degree, einsum, ppgn, meaning)


#: All basis elements, ordered by level, then degree. Meanings are for simple undirected graphs.
CATALOGUE: Tuple[Basis, ...] = (
    # node level: P[i]
    _b("deg", "node", "ia->i", True, "degree d_i"),
    _b("star2", "node", "ia,ib->i", True, "d_i^2 (ordered pairs of neighbours, repeats allowed)"),
    _b("walk2", "node", "ia,ab->i", True, "walks of length 2 from i (sum of neighbour degrees)"),
    _b("tri", "node", "ia,ab,bi->i", True, "(A^3)_ii = 2 x number of triangles containing i"),
    _b("walk3", "node", "ia,ab,bc->i", True, "walks of length 3 from i"),
    _b("cyc4", "node", "ia,ab,bc,ci->i", True,
       "(A^4)_ii closed 4-walks = 2 x 4-cycles at i + d_i^2 + walk2_i - d_i"),
    _b("walk4", "node", "ia,ab,bc,cd->i", True, "walks of length 4 from i"),
    _b("tri_nb", "node", "ia,ab,bc,ca->i", True,
       "sum over neighbours a of (A^3)_aa = 2 x triangles at the neighbours"),
    _b("cyc5", "node", "ia,ab,bc,cd,di->i", True, "(A^5)_ii closed 5-walks"),
    _b("diamond_tip", "node", "ia,ab,bi,ac,cb->i", True,
       "triangles (i, a, b) weighted by the common neighbours of a and b"),
    _b("cyc6", "node", "ia,ab,bc,cd,de,ei->i", True, "(A^6)_ii closed 6-walks"),
    _b("k4", "node", "ia,ib,ic,ab,ac,bc->i", False,
       "6 x number of 4-cliques containing i (beyond PPGN)"),
    # edge level: P[i, j]
    _b("adj", "edge", "ij->ij", True, "A_ij (the edge itself)"),
    _b("walk2", "edge", "ia,aj->ij", True,
       "(A^2)_ij walks of length 2 (common neighbours; degree on the diagonal)"),
    _b("walk3", "edge", "ia,ab,bj->ij", True, "(A^3)_ij walks of length 3"),
    _b("tri", "edge", "ij,ia,aj->ij", True, "A_ij (A^2)_ij = triangles containing edge ij"),
    _b("walk4", "edge", "ia,ab,bc,cj->ij", True, "(A^4)_ij walks of length 4"),
    _b("cyc4", "edge", "ij,ia,ab,bj->ij", True, "A_ij (A^3)_ij closed 4-walks through edge ij"),
    _b("sq_common", "edge", "ia,aj,ib,bj->ij", True,
       "((A^2)_ij)^2 ordered pairs of common neighbours (4-cycles through i and j)"),
    _b("walk5", "edge", "ia,ab,bc,cd,dj->ij", True, "(A^5)_ij walks of length 5"),
    _b("diamond", "edge", "ia,ja,ib,jb,ab->ij", False,
       "adjacent common neighbours: K4 minus the edge ij (beyond PPGN)"),
    _b("k4", "edge", "ij,ia,ja,ib,jb,ab->ij", False,
       "2 x number of 4-cliques containing edge ij (beyond PPGN)"),
    _b("diamond_sub_outer", "edge", "ic,ca,ja,ib,jb,ab->ij", False,
       "diamond with its edge i-a subdivided (beyond PPGN)"),
    _b("diamond_sub_middle", "edge", "ia,ja,ac,cb,ib,jb->ij", False,
       "diamond with its middle edge a-b subdivided (beyond PPGN)"),
)

BY_KEY: Dict[Tuple[str, str], Basis] = {(b.level, b.name): b for b in CATALOGUE}


def select(level: str, degree: int, subset: str) -> List[Basis]:
    """The basis elements of ``level`` with at most ``degree`` edges; ``subset="ppgn++"`` keeps
    those PPGN cannot compute."""
    return [b for b in CATALOGUE if b.level == level and b.degree <= degree
            and (subset == "all" or not b.ppgn)]


def evaluate_naive(adj: Tensor, elements: Sequence[Basis]) -> List[Tensor]:
    """Each element of one graph's ``(n, n)`` adjacency on its own, by ``einsum``."""
    out = []
    for b in elements:
        inputs = b.einsum.split("->")[0].split(",")
        out.append(torch.einsum(b.einsum, *([adj] * len(inputs))))
    return out


def _diamonds(adj: Tensor, adj2: Tensor, names: set) -> Dict[str, Tensor]:
    r"""The four-index elements of a batched ``(B, n, n)`` adjacency, sharing one
    ``(B, n, n, n)`` intermediate :math:`M_{ija} = A_{ia} A_{ja}`:

    * ``diamond`` :math:`= \sum_a M_{ija} W_{ija}` with
      :math:`W_{ija} = \sum_b A_{ab} M_{ijb}` (one batched product, :math:`O(B n^4)`);
    * ``diamond_sub_outer`` :math:`= \sum_a (A^2)_{ia} A_{ja} W_{ija}` (no further product);
    * ``diamond_sub_middle`` :math:`= \sum_a M_{ija} \sum_b (A^2)_{ab} M_{ijb}` (one more).

    Products run as ``bmm`` of ``(B, n^2, n)`` by ``(B, n, n)`` (no broadcast copies)."""
    b, n = adj.size(0), adj.size(1)
    m = adj.unsqueeze(2) * adj.unsqueeze(1)                      # (B, i, j, a)
    flat = m.view(b, n * n, n)
    out: Dict[str, Tensor] = {}
    if names & {"diamond", "diamond_sub_outer"}:
        w = torch.bmm(flat, adj.transpose(1, 2)).view(b, n, n, n)  # W_ija = sum_b M_ijb A_ab
        if "diamond" in names:
            out["diamond"] = (m * w).sum(-1)
        if "diamond_sub_outer" in names:
            out["diamond_sub_outer"] = ((adj2.unsqueeze(2) * adj.unsqueeze(1)) * w).sum(-1)
    if "diamond_sub_middle" in names:
        w2 = torch.bmm(flat, adj2.transpose(1, 2)).view(b, n, n, n)
        out["diamond_sub_middle"] = (m * w2).sum(-1)
    return out


#: Highest matrix power of A each element is read from.
_POWERS = {("node", "walk2"): 2, ("node", "tri"): 3, ("node", "walk3"): 3, ("node", "cyc4"): 4,
           ("node", "walk4"): 4, ("node", "tri_nb"): 3, ("node", "cyc5"): 5,
           ("node", "diamond_tip"): 2, ("node", "cyc6"): 6, ("edge", "walk2"): 2,
           ("edge", "walk3"): 3, ("edge", "tri"): 2, ("edge", "walk4"): 4, ("edge", "cyc4"): 3,
           ("edge", "sq_common"): 2, ("edge", "walk5"): 5, ("edge", "diamond_sub_outer"): 2,
           ("edge", "diamond_sub_middle"): 2}


def _diag(m: Tensor) -> Tensor:
    return torch.diagonal(m, dim1=-2, dim2=-1)


def evaluate_batched(adj: Tensor, node: Sequence[Basis], edge: Sequence[Basis]
                     ) -> Tuple[Tensor, Tensor]:
    """All requested elements of a padded ``(B, n, n)`` batch (padding must be zero).

    Returns ``(node (B, n, F_node), edge (B, n, n, F_edge))`` in the order given."""
    need_pow = max([1] + [_POWERS.get(("node", b.name), 1) for b in node]
                   + [_POWERS.get(("edge", b.name), 1) for b in edge])
    pw = {1: adj}
    for k in range(2, need_pow + 1):
        pw[k] = torch.matmul(pw[k - 1], adj)
    quartic = {b.name for b in edge if not b.ppgn} | {"diamond" for b in node if not b.ppgn}
    if quartic & {"k4"}:
        quartic.add("diamond")
    cache = _diamonds(adj, pw.get(2, adj), quartic - {"k4"}) if quartic else {}

    def diamond() -> Tensor:
        return cache["diamond"]

    def node_value(name: str) -> Tensor:
        if name == "deg":
            return adj.sum(-1)
        if name == "star2":
            return adj.sum(-1) ** 2
        if name.startswith("walk"):
            return pw[int(name[4:])].sum(-1)
        if name.startswith("cyc") or name == "tri":
            return _diag(pw[3 if name == "tri" else int(name[3:])])
        if name == "tri_nb":
            return torch.matmul(adj, _diag(pw[3]).unsqueeze(-1)).squeeze(-1)
        if name == "diamond_tip":
            return _diag(torch.matmul(torch.matmul(adj, adj * pw[2]), adj))
        if name == "k4":
            return (adj * diamond()).sum(-1)
        raise KeyError(name)

    def edge_value(name: str) -> Tensor:
        if name == "adj":
            return adj
        if name.startswith("walk"):
            return pw[int(name[4:])]
        if name == "tri":
            return adj * pw[2]
        if name == "cyc4":
            return adj * pw[3]
        if name == "sq_common":
            return pw[2] * pw[2]
        if name == "diamond":
            return diamond()
        if name == "k4":
            return adj * diamond()
        if name in ("diamond_sub_outer", "diamond_sub_middle"):
            return cache[name]
        raise KeyError(name)

    b, n = adj.size(0), adj.size(1)
    node_out = (torch.stack([node_value(e.name) for e in node], -1) if node
                else adj.new_zeros(b, n, 0))
    edge_out = (torch.stack([edge_value(e.name) for e in edge], -1) if edge
                else adj.new_zeros(b, n, n, 0))
    return node_out, edge_out
