r"""Uniform multi-hop neighbour sampling in plain torch (GraphSAGE-style mini-batches).

Hamilton, Ying, Leskovec, "Inductive Representation Learning on Large Graphs", NeurIPS 2017
(https://arxiv.org/abs/1706.02216). For seed nodes :math:`S_0` and fan-outs
:math:`k_1, \dots, k_L`, hop :math:`\ell` draws for every node :math:`v` first reached at hop
:math:`\ell - 1` a uniform sample of :math:`k_\ell` of its in-neighbours
:math:`\mathcal{N}(v) = \{u : (u, v) \in E\}`:

.. math::
    \text{without replacement: } \Pr[u \in \text{sample}(v)] = \frac{\min(k, d_v)}{d_v},
    \qquad \text{with replacement: } \Pr[\text{draw} = u] = \frac{1}{d_v}.

The batch has the format of PyG's :class:`~torch_geometric.loader.NeighborLoader` (homogeneous,
``disjoint=False``): ``n_id`` (global ids; the first ``batch_size`` are the seeds, then each
hop's new nodes in order of first appearance), ``edge_index`` relabelled to positions in
``n_id`` with messages flowing from the sampled neighbour (row 0) to the node it was sampled for
(row 1), ``e_id`` (the edges' positions in the input ``edge_index``), ``batch_size``,
``input_id``, ``num_sampled_nodes`` / ``num_sampled_edges`` per hop, and every node-level
(edge-level) attribute of the input indexed by ``n_id`` (``e_id``). PyG models run on it
unchanged. Unlike PyG's loader it needs neither ``pyg-lib`` nor ``torch-sparse``.

Everything is vectorised per hop: the graph is a CSR over destinations on the sampling device;
with replacement, ``floor(rand * degree)`` picks the offsets; without replacement, rows whose
degree exceeds the fan-out get one random key per edge, a single sort of ``row + key`` orders
every row at random, and the first ``k`` of each row are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

from graphkit.loader.index import IndexLoader, default_seed, derive_seed, make_generator
from graphkit.loader.prefetch import Prefetcher


@dataclass
class SamplerOutput:
    """What :meth:`NeighborSampler.sample` returns (all on the sampler's device)."""
    node: Tensor               # [N'] global ids, seeds first
    row: Tensor                # [E'] local source (sampled neighbour)
    col: Tensor                # [E'] local destination (the node it was sampled for)
    edge: Tensor               # [E'] positions in the input edge_index
    batch_size: int
    num_sampled_nodes: List[int]
    num_sampled_edges: List[int]


def _segments(start: Tensor, count: Tensor):
    """Segment index and absolute position of every element of the segments
    ``[start[i], start[i] + count[i])``."""
    total = int(count.sum()) if count.numel() else 0
    dev = start.device
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    seg = torch.repeat_interleave(torch.arange(count.numel(), device=dev), count,
                                  output_size=total)
    offset = torch.arange(total, device=dev) - torch.repeat_interleave(
        torch.cumsum(count, 0) - count, count, output_size=total)
    return seg, start[seg] + offset


def check_num_neighbors(num_neighbors: Sequence[int], where: str = "NeighborSampler") -> List[int]:
    """Fan-outs as a list of ints; ``-1`` means every neighbour, ``0`` and other negatives
    are errors."""
    if isinstance(num_neighbors, int) or not isinstance(num_neighbors, (list, tuple)):
        raise ValueError(f"{where}: num_neighbors must be a list of fan-outs, one per hop "
                         f"(e.g. [15, 10]), got {num_neighbors!r}")
    if len(num_neighbors) == 0:
        raise ValueError(f"{where}: num_neighbors is empty; give at least one hop")
    out = []
    for hop, k in enumerate(num_neighbors):
        if isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"{where}: fan-out of hop {hop} must be an int, got {k!r}")
        if k == 0 or k < -1:
            raise ValueError(f"{where}: fan-out of hop {hop} is {k}; use a positive number of "
                             "neighbours, or -1 for all of them (a hop with fan-out 0 samples "
                             "nothing: drop it instead)")
        out.append(k)
    return out


class NeighborSampler:
    r"""Uniform neighbour sampler over a CSR (by destination) kept on ``device``.

    Args:
        edge_index (Tensor): ``[2, E]`` COO edges ``(source, destination)``; messages flow
            from source to destination, so a node's neighbours are the sources of its
            incoming edges (PyG's default flow). Pass both directions for an undirected graph.
        num_nodes (int): number of nodes (> 0).
        replace (bool): sample with replacement (a neighbour may be drawn several times, and
            a node of degree ``d > 0`` always gets ``k`` draws). (default: ``False``)
        directed (bool): ``True`` keeps only the sampled edges; ``False`` returns the
            subgraph induced by all sampled nodes (every input edge between two of them), as
            PyG's ``directed=False`` / ``subgraph_type="induced"``. (default: ``True``)
        device (torch.device, optional): where the CSR lives and sampling runs.
            (default: the device of ``edge_index``)

    Shapes:
        - **input:** edge_index :math:`(2, |\mathcal{E}|)`
        - **output of** :meth:`sample`: :class:`SamplerOutput` with ``node`` :math:`(N')`,
          ``row``, ``col``, ``edge`` :math:`(E')`

    Raises:
        ValueError: for an empty graph (``num_nodes == 0``), a malformed ``edge_index`` or ids
            outside ``[0, num_nodes)``. A graph with nodes but no edges is allowed: its batches
            hold the seeds only.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, *, replace: bool = False,
                 directed: bool = True, device: Optional[Union[str, torch.device]] = None):
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int):
            raise ValueError(f"NeighborSampler: num_nodes must be an int, got {num_nodes!r}")
        if num_nodes <= 0:
            raise ValueError(f"NeighborSampler: the graph is empty (num_nodes={num_nodes}); "
                             "there is nothing to sample")
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
            raise ValueError(f"NeighborSampler: edge_index must be a [2, E] tensor, got {shape}")
        if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
            raise ValueError(f"NeighborSampler: edge_index must hold integer ids, got {edge_index.dtype}")
        dev = torch.device(device) if device is not None else edge_index.device
        ei = edge_index.to(dev, torch.long)
        if ei.numel():
            bad = ((ei < 0) | (ei >= num_nodes)).any(0)
            if bool(bad.any()):
                j = int(bad.nonzero()[0])
                raise ValueError(f"NeighborSampler: edge {j} of edge_index is "
                                 f"({int(ei[0, j])}, {int(ei[1, j])}), outside [0, {num_nodes})")
        self.num_nodes, self.num_edges = num_nodes, ei.size(1)
        self.replace, self.directed, self.device = bool(replace), bool(directed), dev
        perm = torch.sort(ei[1], stable=True).indices
        self.row = ei[0, perm]            # sources, grouped by destination
        self.eid = perm                   # their positions in the input edge_index
        self.colptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=dev)
        torch.cumsum(torch.bincount(ei[1], minlength=num_nodes), 0, out=self.colptr[1:])
        self._local = torch.full((num_nodes,), -1, dtype=torch.long, device=dev)

    def degree(self, nodes: Optional[Tensor] = None) -> Tensor:
        """In-degrees (number of neighbours) of ``nodes`` (default: all)."""
        deg = self.colptr[1:] - self.colptr[:-1]
        return deg if nodes is None else deg[nodes]

    def check_seeds(self, seeds: Tensor) -> Tensor:
        if not isinstance(seeds, Tensor) or seeds.dim() != 1:
            raise ValueError("NeighborSampler: seed nodes must be a 1-D tensor of node ids")
        if seeds.dtype.is_floating_point or seeds.dtype == torch.bool:
            raise ValueError(f"NeighborSampler: seed nodes must be integer ids, got {seeds.dtype}")
        seeds = seeds.to(self.device, torch.long)
        if seeds.numel():
            bad = (seeds < 0) | (seeds >= self.num_nodes)
            if bool(bad.any()):
                j = int(bad.nonzero()[0])
                raise ValueError(f"NeighborSampler: seed node {int(seeds[j])} at position {j} is "
                                 f"outside [0, {self.num_nodes})")
            if torch.unique(seeds).numel() != seeds.numel():
                raise ValueError("NeighborSampler: seed nodes contain duplicates; each node may be "
                                 "a seed once per batch")
        return seeds

    def _hop(self, frontier: Tensor, k: int, generator: Optional[torch.Generator]):
        """Sampled (position in CSR, index into frontier) for one hop."""
        start = self.colptr[frontier]
        deg = self.colptr[frontier + 1] - start
        if k < 0:  # every neighbour
            seg, pos = _segments(start, deg)
            return pos, seg
        if self.replace:
            has = (deg > 0).nonzero().view(-1)
            if has.numel() == 0:
                empty = frontier.new_zeros(0)
                return empty, empty
            r = torch.rand(has.numel(), k, device=self.device, generator=generator)
            d = deg[has].view(-1, 1)
            off = torch.minimum((r * d).long(), d - 1)
            pos = (start[has].view(-1, 1) + off).view(-1)
            seg = has.repeat_interleave(k)
            return pos, seg
        seg, pos = _segments(start, deg)
        big = deg[seg] > k
        if not bool(big.any()):
            return pos, seg
        bseg, bpos = seg[big], pos[big]
        key = bseg.double() + torch.rand(bseg.numel(), dtype=torch.float64, device=self.device,
                                         generator=generator)
        order = torch.sort(key).indices           # each row's edges in random order
        bseg, bpos = bseg[order], bpos[order]
        cnt = torch.bincount(bseg, minlength=frontier.numel())
        rank = torch.arange(bseg.numel(), device=self.device) - (torch.cumsum(cnt, 0) - cnt)[bseg]
        keep = rank < k
        small = ~big
        seg = torch.cat([seg[small], bseg[keep]])
        pos = torch.cat([pos[small], bpos[keep]])
        order = torch.sort(seg, stable=True).indices  # group by the node sampled for
        return pos[order], seg[order]

    @torch.no_grad()
    def sample(self, seeds: Tensor, num_neighbors: Sequence[int],
               generator: Optional[torch.Generator] = None) -> SamplerOutput:
        """Sample ``len(num_neighbors)`` hops around ``seeds`` (distinct node ids)."""
        fanouts = check_num_neighbors(num_neighbors)
        seeds = self.check_seeds(seeds)
        local = self._local
        dev = self.device
        nodes = [seeds]
        local[seeds] = torch.arange(seeds.numel(), device=dev)
        n_total = seeds.numel()
        frontier = seeds
        rows, cols, edges = [], [], []
        num_nodes_hop, num_edges_hop = [seeds.numel()], []
        try:
            for k in fanouts:
                pos, seg = self._hop(frontier, k, generator)
                src = self.row[pos]
                dst_local = local[frontier[seg]]
                fresh = src[local[src] < 0]
                if fresh.numel():
                    uniq, inv = torch.unique(fresh, return_inverse=True)
                    first = torch.full((uniq.numel(),), fresh.numel(), dtype=torch.long, device=dev)
                    first.scatter_reduce_(0, inv, torch.arange(fresh.numel(), device=dev), "amin")
                    new = uniq[torch.sort(first).indices]   # order of first appearance
                    local[new] = torch.arange(n_total, n_total + new.numel(), device=dev)
                    n_total += new.numel()
                else:
                    new = fresh
                nodes.append(new)
                num_nodes_hop.append(new.numel())
                rows.append(local[src])
                cols.append(dst_local)
                edges.append(self.eid[pos])
                num_edges_hop.append(pos.numel())
                frontier = new
            node = torch.cat(nodes)
            if self.directed:
                row, col, edge = torch.cat(rows), torch.cat(cols), torch.cat(edges)
            else:  # induced subgraph: every incoming edge of a sampled node from a sampled node
                start = self.colptr[node]
                seg, pos = _segments(start, self.colptr[node + 1] - start)
                src_local = local[self.row[pos]]
                keep = src_local >= 0
                row, col, edge = src_local[keep], seg[keep], self.eid[pos[keep]]
        finally:
            local[torch.cat(nodes)] = -1  # reset only what was touched
        return SamplerOutput(node, row, col, edge, int(seeds.numel()), num_nodes_hop, num_edges_hop)


class NeighborLoader:
    r"""Mini-batches of sampled neighbourhoods of seed nodes, as PyG's
    :class:`~torch_geometric.loader.NeighborLoader`, without ``pyg-lib`` or ``torch-sparse``
    (see :mod:`graphkit.loader.neighbor` for the method and the batch format).

    Args:
        data (torch_geometric.data.Data): the graph (``edge_index``, ``num_nodes`` and any
            node- or edge-level attributes).
        num_neighbors (list of int): fan-out per hop; ``-1`` takes every neighbour. Zero or
            other negative fan-outs raise :class:`ValueError`.
        input_nodes (Tensor, optional): seed ids or a boolean mask. (default: all nodes)
        batch_size (int): seeds per global batch (split over ranks, see :class:`IndexLoader`).
            (default: ``1``)
        shuffle (bool): reshuffle the seeds every epoch. (default: ``False``)
        replace (bool), directed (bool): see :class:`NeighborSampler`.
        drop_last (bool): drop the last, smaller batch. (default: ``False``)
        seed (int, optional): seeds the order of the seeds and the sampling; epoch ``e`` of
            rank ``r`` samples from a stream derived from ``(seed, e, r)``. (default: drawn
            from torch's global generator)
        device (torch.device, optional): where the graph structure lives, sampling runs and
            batches are delivered. Attributes are gathered where they live; CPU attributes
            headed for a GPU go through pinned memory, one batch ahead (:class:`Prefetcher`;
            a no-op on CPU). (default: the device of ``data.edge_index``)
        rank (int, optional), world_size (int, optional), uneven (str): sharding of the seeds
            over ``torch.distributed`` ranks, see :class:`IndexLoader`.

    Example::

        loader = NeighborLoader(data, [15, 10], input_nodes=data.train_mask, batch_size=1024,
                                shuffle=True, seed=0)
        for batch in loader:
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
    """

    def __init__(self, data, num_neighbors: Sequence[int], *, input_nodes: Optional[Tensor] = None,
                 batch_size: int = 1, shuffle: bool = False, replace: bool = False,
                 directed: bool = True, drop_last: bool = False, seed: Optional[int] = None,
                 device: Optional[Union[str, torch.device]] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, uneven: str = "error"):
        self.num_neighbors = check_num_neighbors(num_neighbors, "NeighborLoader")
        if getattr(data, "edge_index", None) is None:
            raise ValueError("NeighborLoader: data has no edge_index")
        num_nodes = data.num_nodes
        if num_nodes is None or num_nodes == 0:
            raise ValueError(f"NeighborLoader: the graph is empty (num_nodes={num_nodes})")
        dev = torch.device(device) if device is not None else data.edge_index.device
        self.data, self.device = data, dev
        self.sampler = NeighborSampler(data.edge_index, int(num_nodes), replace=replace,
                                       directed=directed, device=dev)
        if input_nodes is None:
            input_nodes = torch.arange(num_nodes, device=dev)
        elif isinstance(input_nodes, Tensor) and input_nodes.dtype == torch.bool:
            if input_nodes.numel() != num_nodes:
                raise ValueError(f"NeighborLoader: input_nodes mask has {input_nodes.numel()} "
                                 f"entries for {num_nodes} nodes")
            input_nodes = input_nodes.nonzero().view(-1)
        else:
            input_nodes = self.sampler.check_seeds(torch.as_tensor(input_nodes))
        self.input_nodes = input_nodes.to(dev)
        self.seed = default_seed(seed)
        self.index = IndexLoader(self.input_nodes.numel(), batch_size, shuffle=shuffle,
                                 drop_last=drop_last, seed=self.seed, device=dev, rank=rank,
                                 world_size=world_size, uneven=uneven)
        self.node_keys = [k for k in data.keys() if k != "edge_index" and data.is_node_attr(k)]
        self.edge_keys = [k for k in data.keys() if k != "edge_index" and data.is_edge_attr(k)
                          and k not in self.node_keys]

    @property
    def epoch(self) -> int:
        return self.index.epoch

    def set_epoch(self, epoch: int) -> None:
        self.index.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def _batch(self, out: SamplerOutput, input_id: Tensor):
        from torch_geometric.data import Data

        batch = Data()
        for key in self.node_keys:
            value = self.data[key]
            batch[key] = value[out.node.to(value.device)]
        for key in self.edge_keys:
            value = self.data[key]
            batch[key] = value[out.edge.to(value.device)]
        batch.edge_index = torch.stack([out.row, out.col])
        batch.n_id, batch.e_id = out.node, out.edge
        batch.input_id = input_id
        batch.batch_size = out.batch_size
        batch.num_sampled_nodes = out.num_sampled_nodes
        batch.num_sampled_edges = out.num_sampled_edges
        batch.num_nodes = out.node.numel()
        return batch

    def _batches(self):
        g = make_generator(self.device, derive_seed(self.seed, self.index.epoch, 1 + self.index.rank))
        for idx in self.index:
            out = self.sampler.sample(self.input_nodes[idx], self.num_neighbors, generator=g)
            yield self._batch(out, idx)

    def __iter__(self):
        return iter(Prefetcher(self._batches(), self.device))

    def __repr__(self) -> str:
        return (f"NeighborLoader(num_neighbors={self.num_neighbors}, batch_size="
                f"{self.index.batch_size}, replace={self.sampler.replace}, "
                f"directed={self.sampler.directed}, device={self.device})")
