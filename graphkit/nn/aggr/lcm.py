"""Learnable commutative monoid aggregation with an exact identity element."""
import math
from typing import Optional

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, Parameter
from torch_geometric.nn.aggr import Aggregation

from graphkit.nn.aggr._utils import check_inputs, group_positions, is_sorted


class LCMAggregation(Aggregation):
    r"""The learnable commutative monoid (LCM) aggregation from the
    `"Learnable Commutative Monoids for Graph Neural Networks"
    <https://arxiv.org/abs/2212.08541>`_ paper (Ong & Veličković, LoG 2022).

    The elements of every group are reduced by a balanced binary tree of depth
    :math:`\lceil \log_2 d \rceil` using a learnable binary operator that is
    commutative by construction (a GRU cell applied in both orders and
    averaged), with a learnable identity element :math:`e`:

    .. math::
        a \oplus b = \tfrac{1}{2}\big(\mathrm{GRU}(a, b) + \mathrm{GRU}(b, a)\big),
        \qquad a \oplus e = e \oplus a = a,

    .. math::
        \mathbf{h}_i = \bigoplus_{j \in \mathcal{N}(i)} \mathbf{x}_j,
        \qquad \mathbf{h}_i = e \text{ if } \mathcal{N}(i) = \emptyset.

    At every tree level the elements of a group at positions :math:`2k` and
    :math:`2k+1` are combined; an unpaired last element is carried to the next
    level unchanged (it is reduced with the identity, exactly). The optional
    associativity regulariser

    .. math::
        \mathcal{L}_{\mathrm{assoc}} = \mathbb{E}_{a,b,c}
        \big\| (a \oplus b) \oplus c - a \oplus (b \oplus c) \big\|_2^2

    over random triples of input elements is returned by
    :meth:`associativity_loss` and, when :obj:`assoc_samples > 0`, stored as
    :obj:`self.assoc_loss` after every forward pass in training mode (add it
    to the task loss with a weight of your choice).

    Differences from :class:`torch_geometric.nn.aggr.LCMAggregation`:

    * **identity element.** PyG pads every group with zero vectors to the
      maximum group size and feeds the zeros through the GRU together with the
      real elements, so the output depends on the largest degree in the batch
      and on zero vectors that are not elements of the set. Here padding never
      exists: unpaired elements are carried, and empty groups return the
      learnable :math:`e` (PyG returns a GRU of zeros).
    * **memory.** PyG materialises a dense ``[num_groups, max_degree, C]``
      tensor (``to_dense_batch``) and runs the GRU on every padded pair, so
      memory and time grow as :math:`N \cdot d_{\max}`. Here every tree level
      works on the flat ``[num_elements, C]`` tensor (all groups in one
      bucket-free pass, groups of every degree side by side), so the work is
      :math:`\mathcal{O}(|\mathcal{E}|)` operator calls in total and memory
      does not depend on :math:`d_{\max}`.
    * **index order.** PyG raises on an unsorted :obj:`index`; here it is
      sorted stably (elements keep their relative order inside a group).
    * **regulariser.** PyG has no associativity regulariser.

    When all groups have the same power-of-two size (so PyG pads nothing) the
    two implementations compute the same function for the same weights. The
    PyG-only argument :obj:`max_num_elements` is accepted and ignored.

    .. note::
        Commutativity holds exactly; associativity only approximately (it is
        what the regulariser encourages), so the output depends on the order of
        the elements inside a group: swapping the two members of a tree pair
        leaves it unchanged, other permutations in general do not.

    Args:
        in_channels (int): Size of each input element.
        out_channels (int): Size of each output.
        project (bool, optional): Apply :math:`\mathrm{ReLU}(\mathbf{W}\mathbf{x}+\mathbf{b})`
            before reducing. Required if :obj:`in_channels != out_channels`.
            (default: :obj:`True`)
        learn_identity (bool, optional): Learn the identity element; otherwise it
            is fixed to the zero vector. (default: :obj:`True`)
        assoc_samples (int, optional): Number of random triples used for the
            associativity loss stored in :obj:`assoc_loss` during training
            (:obj:`0` disables it). (default: :obj:`0`)

    Shapes:
        - **input:** :math:`(|\mathcal{E}|, F_{in})`, index :math:`(|\mathcal{E}|)`
          (or :obj:`ptr` :math:`(N+1)`)
        - **output:** :math:`(N, F_{out})`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        project: bool = True,
        learn_identity: bool = True,
        assoc_samples: int = 0,
    ) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(val, int) or val <= 0:
                raise ValueError(f"LCMAggregation: '{name}' must be a positive int (got {val!r})")
        if in_channels != out_channels and not project:
            raise ValueError("LCMAggregation: inputs must be projected (project=True) "
                             f"when in_channels ({in_channels}) != out_channels ({out_channels})")
        if assoc_samples < 0:
            raise ValueError(f"LCMAggregation: 'assoc_samples' must be >= 0 (got {assoc_samples})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.project = project
        self.learn_identity = learn_identity
        self.assoc_samples = assoc_samples

        self.lin = Linear(in_channels, out_channels) if project else None
        self.gru_cell = GRUCell(out_channels, out_channels)
        if learn_identity:
            self.identity = Parameter(torch.empty(out_channels))
        else:
            self.register_buffer("identity", torch.zeros(out_channels))
        self.assoc_loss: Optional[Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.lin is not None:
            self.lin.reset_parameters()
        self.gru_cell.reset_parameters()
        with torch.no_grad():
            self.identity.zero_()
        self.assoc_loss = None

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        r"""The commutative binary operator :math:`a \oplus b` on rows of
        ``a`` and ``b`` (both ``[P, C]``)."""
        p = a.size(0)
        out = self.gru_cell(torch.cat([a, b], 0), torch.cat([b, a], 0))
        return 0.5 * (out[:p] + out[p:])

    def forward(
        self,
        x: Tensor,
        index: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        dim_size: Optional[int] = None,
        dim: int = -2,
        max_num_elements: Optional[int] = None,
    ) -> Tensor:
        index, dim_size = check_inputs("LCMAggregation", x, index, ptr, dim_size, dim)
        if x.size(-1) != self.in_channels:
            raise ValueError(f"LCMAggregation: expected {self.in_channels} input channels "
                             f"(got {x.size(-1)})")
        if self.lin is not None:
            x = self.lin(x).relu()
        if not is_sorted(index):
            index, perm = torch.sort(index, stable=True)
            x = x[perm]

        if self.training and self.assoc_samples > 0 and x.size(0) > 0:
            self.assoc_loss = self.associativity_loss(x, self.assoc_samples)
        else:
            self.assoc_loss = None

        count, _, pos = group_positions(index, dim_size)
        max_count = int(count.max()) if count.numel() > 0 else 0
        depth = math.ceil(math.log2(max_count)) if max_count > 1 else 0
        # `index`/`pos` describe the elements in group order and `rows[i]` is the row of
        # `x` holding the i-th of them. At every level the rows are gathered once into
        # the layout [a_0, b_0, a_1, b_1, ..., carries], so the operator runs on a
        # contiguous [P, 2, C] view without any padding.
        rows: Optional[Tensor] = None
        for _ in range(depth):
            size = count[index]
            even = pos % 2 == 0
            left = (even & (pos + 1 < size)).nonzero().view(-1)
            carry = (even & (pos + 1 == size)).nonzero().view(-1)
            num_pairs = left.numel()
            order = torch.cat([torch.stack([left, left + 1], 1).view(-1), carry])
            xs = x[order if rows is None else rows[order]]
            combined = self._combine_pairs(xs[:2 * num_pairs].view(num_pairs, 2, -1))
            x = torch.cat([combined, xs[2 * num_pairs:]], 0)
            index_new = torch.cat([index[left], index[carry]])
            pos_new = torch.cat([pos[left], pos[carry]]) // 2
            count = (count + 1) // 2
            ptr = torch.zeros(dim_size + 1, dtype=torch.long, device=x.device)
            torch.cumsum(count, 0, out=ptr[1:])
            dest = ptr[index_new] + pos_new  # position of each new row in group order
            rows = torch.empty_like(dest)
            rows[dest] = torch.arange(dest.numel(), device=x.device)
            index, pos = index_new[rows], pos_new[rows]
        if rows is not None:
            x = x[rows]

        out = self.identity.to(x.dtype).unsqueeze(0).expand(dim_size, -1)
        if x.size(0) == 0:
            return out.clone()
        return out.index_copy(0, index, x)

    def _combine_pairs(self, pairs: Tensor) -> Tensor:
        # pairs: [P, 2, C] -> [P, C], equal to combine(pairs[:, 0], pairs[:, 1]).
        # The reset/update pre-activations of both orders share one product: with
        # S = a + b and D = a - b, W_i a + W_h b = U + V and W_i b + W_h a = U - V for
        # U = (W_i + W_h)/2 S + biases and V = (W_i - W_h)/2 D, which needs 8 instead of
        # 12 C^2 multiply-adds per pair. The candidate gate needs W_in and W_hn of both.
        c = self.out_channels
        cell = self.gru_cell
        w_i, w_h = cell.weight_ih, cell.weight_hh
        w_plus = 0.5 * (w_i[:2 * c] + w_h[:2 * c])
        w_minus = 0.5 * (w_i[:2 * c] - w_h[:2 * c])
        b_rz = cell.bias_ih[:2 * c] + cell.bias_hh[:2 * c]
        w_n = torch.cat([w_i[2 * c:], w_h[2 * c:]], 0)
        b_n = torch.cat([cell.bias_ih[2 * c:], cell.bias_hh[2 * c:]], 0)
        a, b = pairs[:, 0], pairs[:, 1]
        u = torch.nn.functional.linear(a + b, w_plus, b_rz)     # [P, 2C]
        v = torch.nn.functional.linear(a - b, w_minus)          # [P, 2C]
        n_proj = torch.nn.functional.linear(pairs, w_n, b_n)    # [P, 2, 2C]
        return _SymmetricGRU.apply(u, v, n_proj, pairs)

    def associativity_loss(self, x: Tensor, num_samples: int = 256) -> Tensor:
        r"""Mean squared associativity error
        :math:`\|(a\oplus b)\oplus c - a\oplus(b\oplus c)\|^2` over
        :obj:`num_samples` random triples of rows of ``x`` (already projected,
        ``[*, out_channels]``)."""
        if x.dim() != 2 or x.size(-1) != self.out_channels:
            raise ValueError("LCMAggregation.associativity_loss: 'x' must be "
                             f"[num_elements, {self.out_channels}] (got {tuple(x.shape)})")
        if x.size(0) == 0:
            return x.new_zeros(())
        idx = torch.randint(0, x.size(0), (3, num_samples), device=x.device)
        a, b, c = x[idx[0]], x[idx[1]], x[idx[2]]
        lhs = self.combine(self.combine(a, b), c)
        rhs = self.combine(a, self.combine(b, c))
        return (lhs - rhs).pow(2).sum(-1).mean()

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"project={self.project})")


class _SymmetricGRU(torch.autograd.Function):
    r"""Elementwise part of :math:`\tfrac12(\mathrm{GRU}(a,b)+\mathrm{GRU}(b,a))`
    given ``u +/- v`` (reset/update pre-activations of the two orders) and the
    candidate projections ``n_proj[:, s] = [W_in x_s + b_in, W_hn x_s + b_hn]``, with a
    hand-written backward that saves only the gates and the ``W_hn`` projections."""

    @staticmethod
    def forward(ctx, u: Tensor, v: Tensor, n_proj: Tensor, pairs: Tensor) -> Tensor:
        c = pairs.size(-1)
        saved = []
        out = None
        for s, pre in ((0, u + v), (1, u - v)):  # slot s is the input, 1 - s the hidden state
            rz = torch.sigmoid(pre)
            r, z = rz[:, :c], rz[:, c:]
            ghn = n_proj[:, 1 - s, c:].contiguous()
            n = torch.tanh(torch.addcmul(n_proj[:, s, :c], r, ghn))
            h = torch.addcmul(n, z, pairs[:, 1 - s] - n)
            out = h if out is None else out.add_(h)
            saved += [rz, n, ghn]
        ctx.save_for_backward(pairs, *saved)
        return out.mul_(0.5)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pairs, *saved = ctx.saved_tensors
        c = pairs.size(-1)
        dh = 0.5 * grad
        drz = []
        dn_proj = pairs.new_empty(pairs.size(0), 2, 2 * c)
        dpairs = pairs.new_empty(pairs.shape)
        for s in (0, 1):
            rz, n, ghn = saved[3 * s:3 * s + 3]
            r, z = rz[:, :c], rz[:, c:]
            hidden = pairs[:, 1 - s]
            dhid = torch.mul(dh, z, out=dpairs[:, 1 - s])
            dpre_n = torch.mul(dh - dhid, 1 - n * n, out=dn_proj[:, s, :c])
            d = torch.empty_like(rz)
            torch.mul(dpre_n * ghn, r * (1 - r), out=d[:, :c])
            torch.mul(dhid * (hidden - n), 1 - z, out=d[:, c:])
            torch.mul(dpre_n, r, out=dn_proj[:, 1 - s, c:])
            drz.append(d)
        return drz[0] + drz[1], drz[0] - drz[1], dn_proj, dpairs
