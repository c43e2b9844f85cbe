"""Learnable commutative monoid aggregation with an exact identity element."""
from typing import Optional

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, Parameter
from torch_geometric.nn.aggr import Aggregation

from graphkit.nn.aggr._lcm_tree import (
    _BufferPool,
    _gru_pair_gates,
    _LCMLevel,
    _Lease,
    _new_planes,
    _PlanCache,
    _split_weights,
    _TreePlan,
)
from graphkit.nn.aggr._utils import check_inputs


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
    to the task loss with a weight of your choice). The loss is a squared norm summed over
    the channels and any constant operator minimises it, so keep the weight small relative to
    the task loss: on the second-minimum task (128 channels) a weight of :obj:`1e-3` left
    accuracy unchanged while :obj:`1e-2` and :obj:`0.1` let the operator collapse.

    Differences from :class:`torch_geometric.nn.aggr.LCMAggregation`:

    * **identity element.** PyG pads every group with zero vectors to the
      maximum group size and feeds the zeros through the GRU together with the
      real elements, so the output depends on the largest degree in the batch
      and on zero vectors that are not elements of the set. Here padding never
      exists: unpaired elements are carried, and empty groups return the
      learnable :math:`e` (PyG returns a GRU of zeros).
    * **memory and time.** PyG materialises a dense ``[num_groups, max_degree, C]``
      tensor (``to_dense_batch``) and runs the GRU on every padded pair, so memory and
      time grow as :math:`N \cdot d_{\max}`. Here every tree level works on the flat
      ``[num_elements, C]`` tensor (groups of every degree side by side), so the work is
      :math:`|\mathcal{E}| - N` operator calls in total and memory does not depend on
      :math:`d_{\max}`. A level is one autograd node that evaluates the operator over
      cache-sized blocks of pairs, computes the reset/update products of both orders
      from :math:`a+b` and :math:`a-b` (8 instead of 12 :math:`C^2` multiply-adds per
      pair), and keeps 8C numbers per pair for a hand-written backward, in storage that
      is reused from one training step to the next (:obj:`reuse_buffers`). The tree's
      schedule (which rows pair up at every level) depends on :obj:`index` only: it is built
      once and reused while the same, unmodified index tensor comes back with the same
      :obj:`dim_size` (full-graph training), and built anew for any other.
    * **double backward.** The hand-written backward is first-order; under
      ``create_graph=True`` (gradient penalties, meta-learning) a level's gradient is formed
      instead by autograd from a recomputation of the same operator, so second-order
      gradients are exact, at the price of recomputing every level once.
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
        reuse_buffers (bool, optional): Keep the storage of the backward factors
            (:math:`8C` floats per reduced pair) between training steps instead of
            allocating it afresh at every forward pass. Writing freshly allocated memory
            costs a page fault per 4 KiB on first touch, which made up about a fifth of the
            forward + backward time on CPU; the price is that the largest buffer used so far
            stays allocated (free it with :meth:`release_buffers`). A buffer is reused only
            once the backward pass of the graph that filled it has run (or the graph is
            gone); a backward through factors overwritten since (a graph kept with
            ``retain_graph=True`` across a later forward pass) raises an error instead of
            returning wrong gradients. (default: :obj:`True`)
        compiled_kernels (bool, optional): Evaluate the operator and its backward on full
            blocks of pairs with kernels generated by :func:`torch.compile`: one call per
            block, in which the gather of the pairs, the elementwise work (some forty eager
            passes) and the scatter of the results are fused loops around the matrix
            products; the same math, equal up to float rounding. It is faster than the eager
            path on CPU (``leaderboards/speed.md``, ``benchmarks/bench_aggr.py``), at the price
            of compiling the kernels (tens of seconds, once per process, channel
            size and dtype; the compiled code is cached on disk by PyTorch). Needs a working
            :func:`torch.compile` backend (on CPU, a C++ compiler); if compiling fails the
            module warns once and uses the eager path. (default: :obj:`False`)

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
        reuse_buffers: bool = True,
        compiled_kernels: bool = False,
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
        self.reuse_buffers = bool(reuse_buffers)
        self.compiled_kernels = bool(compiled_kernels)
        self._factor_pool = _BufferPool()
        self._plan_cache = _PlanCache()

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

    def release_buffers(self) -> None:
        r"""Frees the factor storage kept for reuse (see :obj:`reuse_buffers`); buffers
        still needed by a pending backward pass stay alive until it has run."""
        self._factor_pool.clear()

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
        caller_index = index if index is not None else ptr  # the tensor the plan cache keys on
        index, dim_size = check_inputs("LCMAggregation", x, index, ptr, dim_size, dim)
        if x.size(-1) != self.in_channels:
            raise ValueError(f"LCMAggregation: expected {self.in_channels} input channels "
                             f"(got {x.size(-1)})")
        if self.lin is not None:
            x = self.lin(x).relu()
        plan = self._tree_plan(index if caller_index is None else caller_index, index, dim_size)
        if plan.perm is not None:  # unsorted index: sorted stably, as a cached permutation
            x = x[plan.perm]

        if self.training and self.assoc_samples > 0 and x.size(0) > 0:
            self.assoc_loss = self.associativity_loss(x, self.assoc_samples)
        else:
            self.assoc_loss = None

        # `x` stays in group order (sorted by group, then position inside the group). At
        # every level the elements at positions 2k and 2k+1 of a group are combined and an
        # unpaired last element is carried. The even-position elements, in group order, are
        # exactly the rows of the next level, so the results go straight to their rows: no
        # padding and no re-sorting.
        fused = type(self)._combine_pairs is LCMAggregation._combine_pairs
        lease = None
        if fused and plan.levels and torch.is_grad_enabled() and (
                x.requires_grad or any(p.requires_grad for p in self.gru_cell.parameters())):
            lease = (self._factor_pool.lease(plan.num_pairs, x, len(plan.levels))
                     if self.reuse_buffers else
                     _Lease([p.view(plan.num_pairs, x.size(1)) for p in
                             _new_planes(plan.num_pairs * x.size(1), x)], len(plan.levels)))
        offset = 0
        for level in plan.levels:
            if fused:
                factors = None
                if lease is not None:
                    n = level.left.numel()
                    factors = [p[offset:offset + n] for p in lease.planes]
                    offset += n
                x = _LCMLevel.apply(x, self.gru_cell.weight_ih, self.gru_cell.weight_hh,
                                    self.gru_cell.bias_ih, self.gru_cell.bias_hh, level,
                                    factors, lease, self.compiled_kernels)
            else:
                left = level.left
                combined = self._combine_pairs(torch.stack([x[left], x[left + 1]], 1))
                x = x.new_empty(level.num_rows, x.size(1)).index_put(
                    (level.dest_pair,), combined).index_put((level.dest_carry,), x[level.carry])
        if lease is not None:
            lease.version = lease.versions()

        out = self.identity.to(x.dtype).unsqueeze(0).expand(dim_size, -1)
        if x.size(0) == 0:
            return out.clone()
        return out.index_copy(0, plan.index, x)

    def _tree_plan(self, key: Tensor, index: Tensor, dim_size: int) -> "_TreePlan":
        r"""The reduction schedule for ``index`` (see :class:`_TreePlan`), reused while the
        same index tensor (``key``: the caller's ``index`` or ``ptr``), unchanged since (its
        version counter), comes back with the same :obj:`dim_size`, as in full-graph
        training; any other input builds a new one."""
        cached = self._plan_cache.get(key, dim_size)
        if cached is not None:
            return cached
        plan = _TreePlan(index, dim_size)
        self._plan_cache.put(key, dim_size, plan)
        return plan

    def _combine_pairs(self, pairs: Tensor) -> Tensor:
        r"""The operator on a ``[P, 2, C]`` tensor of pairs, ``[P, C]`` out (autograd
        through torch ops). :meth:`forward` runs the same computation blockwise with a
        hand-written backward; subclasses that override this method to use another
        operator are reduced through it instead."""
        cell = self.gru_cell
        c = self.out_channels
        _, rz0, rz1, n0, n1 = _gru_pair_gates(
            pairs, *_split_weights(cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
        h0 = n0 + rz0[:, c:] * (pairs[:, 1] - n0)
        h1 = n1 + rz1[:, c:] * (pairs[:, 0] - n1)
        return 0.5 * (h0 + h1)

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
