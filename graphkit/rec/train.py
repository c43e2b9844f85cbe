r"""Training loop for embedding recommenders (LightGCN, UltraGCN, MF) with early stopping,
checkpoints and resume.

A model plugs in by providing ``set_graph(train_edge_index)``, ``loss(users, pos, neg)``,
``embeddings() -> (user_emb, item_emb)`` (or ``score_all(users)``), ``reset_parameters()`` and
a JSON-able ``model_args`` property. Models that draw their own negatives (UltraGCN's many
negatives) expose ``sample_negatives(num, generator, users=...)``.

Under ``torchrun --nproc_per_node=N`` (or several nodes) :func:`fit` trains with
``torch.distributed`` DDP and needs no other code: the process group is created on first use
(gloo on CPU, nccl on GPU, one GPU per process), every rank draws the same global batch from
the same seeded generator and trains on its contiguous part of it (:func:`split_for_rank`),
the per-rank losses are weighted by their share of the batch so that the averaged gradient is
the single-process one, and rank 0 alone evaluates (and tells the others the result), writes
checkpoints and the log. Resuming reads ``last.pt`` on rank 0 and sends its content to the
other ranks, so the checkpoint folder need not be visible from every node.
"""
from __future__ import annotations

import math
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from graphkit.engine.distributed import (
    any_rank,
    broadcast_object,
    ensure_distributed,
    get_world_size,
    is_distributed,
    is_main_process,
    split_for_rank,
    wrap_ddp,
)
from graphkit.engine.optim import adam
from graphkit.rec.data import InteractionGraph, data_fingerprint
from graphkit.rec.evaluate import DotProductScorer, full_ranking
from graphkit.rec.sampling import sample_bpr_triples, sample_negatives
from graphkit.utils.ranking import PairIndex


class ResumeError(ValueError):
    """The checkpoint :func:`fit` was asked to resume from cannot continue this run: it was
    written by a run with other training settings, another model or data, or is unreadable."""


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``history`` holds one dict per evaluation: ``epoch`` (0-based), mean training ``loss``, the
    metrics of the selection part prefixed with its name (``"valid_recall@20"``) and the number of
    users they are over (``"valid_num_users"``), ``best_epoch``
    so far and ``elapsed_s``, the run's wall time up to then (earlier sittings and evaluations
    included). ``wall_time_s`` is the run's total over all its sittings; ``sittings`` counts
    them and ``resumed_from`` is the number of epochs done before this call (``None`` when the
    run started afresh). ``valid_users`` is the size of the validation sample the selection
    metrics are over (``None``: every validation user).
    """

    best_epoch: int
    best_valid: Dict[str, float]
    test: Optional[Dict[str, float]]
    history: List[Dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    wall_time_s: float = 0.0
    selected_on: str = "valid"
    stopped_early: bool = False
    interrupted: bool = False
    resumed_from: Optional[int] = None
    sittings: int = 1
    valid_users: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in ("best_epoch", "best_valid", "test", "epochs_run", "wall_time_s",
                                              "selected_on", "stopped_early", "interrupted")}


#: The paper recipe of LightGCN: batch 2048, Adam lr 1e-3.
PAPER_BATCH_SIZE, PAPER_LR = 2048, 1e-3
#: The scaled recipe keeps an epoch at most this many optimisation steps.
MAX_STEPS_PER_EPOCH = 128
#: Up to this many training pairs the paper recipe is kept whatever its step count: the paper
#: datasets (ML-1M, Gowalla, Yelp2018: 0.8 to 1.2 M pairs) keep the recipe whose figures are
#: verified on them.
PAPER_RECIPE_MAX_PAIRS = 1_500_000
_GB = 1 << 30


@dataclass
class ScaleRecipe:
    r"""The training recipe :func:`scale_recipe` picks for a data size.

    ``name`` is ``"paper"`` (batch 2048, lr 1e-3) or ``"scaled"``; ``scale`` is the batch
    multiple of the paper's; ``estimated_bytes`` the memory training is expected to take;
    ``detail`` more settings for the line of :meth:`describe` (UltraGCN's negatives).
    """

    name: str
    batch_size: int
    lr: float
    steps_per_epoch: int
    scale: int
    estimated_bytes: int
    memory_budget: Optional[int] = None
    detail: str = ""

    def describe(self) -> str:
        """One line for the command's output."""
        text = (f"recipe: {self.name} (batch {self.batch_size}, lr {self.lr:.3g}, {self.steps_per_epoch} steps "
                f"per epoch{self.detail}")
        if self.name == "scaled":
            text += (f"; {self.scale}x the paper batch so that an epoch costs {MAX_STEPS_PER_EPOCH} full-graph "
                     f"propagations at most, lr x sqrt({self.scale})")
        text += f"; estimated training memory {self.estimated_bytes / _GB:.2f} GB"
        if self.memory_budget is not None:
            text += f" of {self.memory_budget / _GB:.1f} GB"
        return text + ")"


def lightgcn_memory_estimate(num_train: int, num_users: int, num_items: int, embedding_dim: int = 64,
                             batch_size: int = PAPER_BATCH_SIZE, score_memory: Optional[int] = None) -> int:
    r"""Bytes LightGCN training with :func:`fit` takes, roughly: ``150`` bytes per training pair
    (the pairs, their index, three CSR copies of the normalised adjacency for the locality
    order) plus ten ``[U + I, F]`` float32 tables (weights, gradient, two Adam moments,
    propagation buffers), the batch, and one evaluation score block."""
    from graphkit.nn.models.recommender import DEFAULT_SCORE_MEMORY

    nodes = num_users + num_items
    return int(150 * num_train + 40 * nodes * embedding_dim + 64 * batch_size * embedding_dim
               + (DEFAULT_SCORE_MEMORY if score_memory is None else score_memory))


#: UltraGCN defaults of ``graphkit rec train`` (batch, negatives, item-item neighbours).
ULTRAGCN_BATCH_SIZE, ULTRAGCN_NUM_NEGATIVES, ULTRAGCN_NUM_NEIGHBORS = 1024, 200, 10


def ultragcn_memory_parts(num_train: int, num_users: int, num_items: int, embedding_dim: int = 64,
                          batch_size: int = ULTRAGCN_BATCH_SIZE, num_negatives: int = ULTRAGCN_NUM_NEGATIVES,
                          num_neighbors: int = ULTRAGCN_NUM_NEIGHBORS,
                          score_memory: Optional[int] = None) -> Dict[str, int]:
    r"""The peak memory, in bytes, of each stage of UltraGCN training with :func:`fit`.

    With :math:`E` training pairs, :math:`U` users, :math:`I` items, :math:`n = U + I`,
    dimension :math:`d`, batch :math:`B`, :math:`N` negatives and :math:`K` item-item
    neighbours, every stage holds ``base`` (512 MiB: the interpreter with torch and SciPy, and
    the freed memory the allocator keeps for reuse, see
    :func:`~graphkit.engine.memory.keep_freed_memory`) and the interaction pairs (training and
    held-out, :math:`32 E`), and

    * ``set_graph`` - the weights (:math:`4 d n`) and the item-item pre-computation (the
      de-duplicated keys, the interaction matrix and its transpose, the chunked co-occurrence
      product: :math:`64 E`; the neighbours and weights, :math:`24 K I`);
    * ``step`` - what training holds: the epoch's shuffle, the sampler's pair index and the
      model's CSR of training items (:math:`32 E`), the ``[n, d]`` float32 weights with their
      gradient and Adam's two moments (:math:`16 d n`), the per-node buffers
      (:math:`28 U + (4 + 12 K) I`); and one step's transients: the backward's dense
      ``[n, d]`` gradients of the lookups and of the L2 term beside the accumulated one
      (:math:`12 d n`), the ``[B, N]`` negatives and ``[B, K]`` neighbours (ids, degree
      weights, scores, their gradients and the backward's sort, about 64 bytes an entry; the
      sampled-product kernels of :func:`~graphkit.nn.models.ultragcn.sampled_dot` never
      gather the ``[B, N, d]`` rows, except when :math:`N` exceeds the items, where the
      gathered rows and their gradient, :math:`8 B N d`, are added);
    * ``evaluation`` - what training holds and a full-ranking pass: three blocks of scores
      (the scorer's block of ``min(score_memory, 2048 I)`` float32 scores, default
      ``score_memory`` 512 MiB, with the masked scores and the top-``k`` work beside it, as
      measured at 1M and 4M interactions) and the pair indexes of the masked and held-out
      pairs (:math:`48 E`).

    The estimate (:func:`ultragcn_memory_estimate`) is the largest of the three. Against the
    peaks measured after ``set_graph`` and after training steps at 1M to 64M synthetic
    interactions (``benchmarks/bench_rec_scale.py``, phase ``ultragcn-epoch``) the stages are
    6% to 26% above.
    """
    from graphkit.nn.models.recommender import DEFAULT_SCORE_MEMORY

    nodes, d, k = num_users + num_items, embedding_dim, num_neighbors
    block = min(DEFAULT_SCORE_MEMORY if score_memory is None else score_memory, 2048 * 4 * num_items)
    base = 512 * 2 ** 20 + 32 * num_train
    held = base + 32 * num_train + 16 * d * nodes + 28 * num_users + (4 + 12 * k) * num_items
    return {
        "set_graph": base + 4 * d * nodes + 64 * num_train + 24 * k * num_items,
        "step": held + 12 * d * nodes + 64 * batch_size * (num_negatives + k)
        + (8 * batch_size * num_negatives * d if num_negatives > num_items else 0),
        "evaluation": held + 3 * block + 48 * num_train,
    }


def ultragcn_memory_estimate(num_train: int, num_users: int, num_items: int, embedding_dim: int = 64,
                             batch_size: int = ULTRAGCN_BATCH_SIZE, num_negatives: int = ULTRAGCN_NUM_NEGATIVES,
                             num_neighbors: int = ULTRAGCN_NUM_NEIGHBORS, score_memory: Optional[int] = None,
                             memory_budget: Optional[int] = None) -> int:
    r"""Bytes UltraGCN training with :func:`fit` takes at its peak, from the data sizes alone:
    the largest of the item-item pre-computation, a training step (embeddings with gradient and
    Adam state, the ``[B, N]`` negatives, the backward's dense gradients) and an evaluation
    (see :func:`ultragcn_memory_parts`).

    With ``memory_budget`` (bytes), an estimate above it is a :class:`ValueError` raised
    before any work, naming what is needed and what to lower.
    """
    for name, value in (("num_train", num_train), ("num_users", num_users), ("num_items", num_items),
                        ("embedding_dim", embedding_dim), ("batch_size", batch_size),
                        ("num_negatives", num_negatives), ("num_neighbors", num_neighbors)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"ultragcn_memory_estimate: {name} must be a positive integer, got {value!r}")
    parts = ultragcn_memory_parts(num_train, num_users, num_items, embedding_dim, batch_size, num_negatives,
                                  num_neighbors, score_memory)
    total = max(parts.values())
    if memory_budget is not None and total > memory_budget:
        nodes = num_users + num_items
        raise ValueError(
            f"{num_train} training pairs ({num_users} users, {num_items} items) need about {_mem(total)} to train "
            f"UltraGCN (dim {embedding_dim}, batch {batch_size}, {num_negatives} negatives), more than the "
            f"{_mem(memory_budget)} budget. The embeddings with gradients and Adam state take "
            f"{_mem(28 * embedding_dim * nodes)} (lower --embedding-dim), one step's negatives "
            f"{_mem(64 * batch_size * (num_negatives + num_neighbors))} (lower --batch-size or --num-negatives), "
            f"the interaction pairs and their indexes {_mem(64 * num_train)} (train on a sample of the data), the "
            f"process itself (interpreter, libraries, memory kept for reuse) about 0.5 GB; or free memory and raise "
            f"--max-memory")
    return total


def _mem(num_bytes: float) -> str:
    """Bytes for messages: GB with one decimal from 1 GB on, else MB."""
    if num_bytes >= _GB:
        return f"{num_bytes / _GB:.1f} GB"
    mb = num_bytes / 2 ** 20
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.2g} MB"


def available_memory() -> Optional[int]:
    """Bytes the system can give without swapping (``MemAvailable``), ``None`` if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def scale_recipe(num_train: int, num_users: int, num_items: int, *, embedding_dim: int = 64,
                 max_steps_per_epoch: int = MAX_STEPS_PER_EPOCH,
                 paper_recipe_max_pairs: int = PAPER_RECIPE_MAX_PAIRS, memory_budget: Optional[int] = None,
                 score_memory: Optional[int] = None) -> ScaleRecipe:
    r"""The LightGCN recipe for ``num_train`` training pairs, with an epoch cost linear in them.

    Every LightGCN step propagates over the whole graph, :math:`O(E)`; with the paper's batch
    of 2048 an epoch has :math:`E / 2048` steps, so it costs :math:`O(E^2)`. Up to
    ``max(2048 * max_steps_per_epoch, paper_recipe_max_pairs)`` pairs the paper recipe is kept
    (batch 2048, lr 1e-3).
    Above, the batch is the paper's times :math:`m = \lceil E / (2048 \cdot
    \text{max\_steps\_per\_epoch}) \rceil`, so an epoch has at most ``max_steps_per_epoch``
    steps and costs :math:`O(E)`, and the learning rate is scaled by :math:`\sqrt{m}` (the
    square-root rule for Adam, which keeps the update noise of a step comparable).

    Args:
        num_train (int): training pairs :math:`E`.
        num_users (int): users.
        num_items (int): items.
        embedding_dim (int): embedding size (for the memory estimate). (default: ``64``)
        max_steps_per_epoch (int): steps above which the batch grows. (default: ``128``)
        paper_recipe_max_pairs (int): the paper recipe is kept up to this many pairs, so the
            datasets its figures were verified on are trained as in the paper.
            (default: ``1_500_000``)
        memory_budget (int, optional): bytes training may take; an estimate above it is a
            :class:`ValueError` raised before any training.
        score_memory (int, optional): the evaluation's score-block budget in bytes.
    """
    for name, value in (("num_train", num_train), ("num_users", num_users), ("num_items", num_items),
                        ("max_steps_per_epoch", max_steps_per_epoch)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"scale_recipe: {name} must be a positive integer, got {value!r}")
    scale = 1 if num_train <= paper_recipe_max_pairs else \
        max(1, math.ceil(num_train / (PAPER_BATCH_SIZE * max_steps_per_epoch)))
    batch = PAPER_BATCH_SIZE * scale
    recipe = ScaleRecipe(name="paper" if scale == 1 else "scaled", batch_size=batch,
                         lr=PAPER_LR * math.sqrt(scale), steps_per_epoch=math.ceil(num_train / batch), scale=scale,
                         estimated_bytes=lightgcn_memory_estimate(num_train, num_users, num_items, embedding_dim,
                                                                  batch, score_memory),
                         memory_budget=memory_budget)
    if memory_budget is not None and recipe.estimated_bytes > memory_budget:
        raise ValueError(f"{num_train} training pairs ({num_users} users, {num_items} items, dim {embedding_dim}) "
                         f"need about {recipe.estimated_bytes / _GB:.1f} GB to train LightGCN, more than the "
                         f"{memory_budget / _GB:.1f} GB budget; free memory, raise the budget, or use a smaller "
                         f"embedding or a sample of the data")
    return recipe


def make_score_fn(model) -> Callable[[Tensor], Tensor]:
    """Propagate once and return a block scorer ``users -> [B, num_items]``.

    Embedding models score through :class:`DotProductScorer` (one reused buffer); any other
    :class:`~graphkit.nn.models.Recommender` through its ``scorer()`` hook."""
    if hasattr(model, "embeddings"):
        return DotProductScorer(*model.embeddings())
    if hasattr(model, "scorer"):
        return model.scorer()
    return model.score_all


@torch.no_grad()
def evaluate_model(model, graph: InteractionGraph, part: str = "test", ks: Sequence[int] = (20,),
                   metrics: Optional[Sequence[str]] = None, batch_size: Optional[int] = 2048,
                   memory_budget: Optional[int] = None, users: Optional[Tensor] = None) -> Dict[str, float]:
    r"""Full-ranking metrics of ``model`` on ``graph.<part>``.

    Training items are always masked; for ``part="test"`` validation items are masked too.
    Blocks of users hold at most ``batch_size`` users and ``memory_budget`` bytes of scores
    (see :func:`~graphkit.rec.evaluate.full_ranking`). ``users`` restricts the evaluation to
    those users (``None``: every user with ``part`` interactions).
    """
    target = getattr(graph, part)
    if target is None:
        raise ValueError(f"{graph.name} has no {part!r} interactions to evaluate on")
    exclude = [graph.train] + ([graph.valid] if part == "test" and graph.valid is not None else [])
    was_training = model.training
    model.eval()
    try:
        device = _model_device(model)
        kwargs = {} if metrics is None else {"metrics": tuple(metrics)}
        return full_ranking(make_score_fn(model), graph.num_users, graph.num_items, target.to(device),
                            exclude=[e.to(device) for e in exclude], ks=ks, batch_size=batch_size,
                            device=device, memory_budget=memory_budget,
                            users=None if users is None else users.to(device), **kwargs)
    finally:
        model.train(was_training)


def sample_valid_users(valid: Optional[Tensor], num: Optional[int], seed: int = 0) -> Optional[Tensor]:
    r"""A seeded random sample of ``num`` users among those with pairs in ``valid``
    (``[2, E]``), sorted; ``None`` (meaning every user) when ``num`` is ``None`` or at least
    their number. The same ``valid``, ``num`` and ``seed`` give the same sample, and it does not
    touch the global random state."""
    if num is None:
        return None
    if isinstance(num, bool) or int(num) != num or num < 1:
        raise ValueError(f"valid_users must be a positive integer (or None for every user), got {num!r}")
    if valid is None or valid.numel() == 0:
        raise ValueError("valid_users is set but there is no validation part to sample users from")
    users = torch.unique(valid[0].detach().cpu())
    if num >= users.numel():
        return None
    generator = torch.Generator().manual_seed(int(seed))
    return torch.sort(users[torch.randperm(users.numel(), generator=generator)[:int(num)]]).values


def _model_device(model) -> torch.device:
    """The device of the model's parameters, or of its buffers for a model without parameters."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _fit_training_free(model, graph: InteractionGraph, ks: Sequence[int], select_on: str,
                       eval_batch_size: int, eval_memory_budget: Optional[int] = None) -> FitResult:
    """Prepare a training-free model (``trainable = False``: a graph filter) on ``graph.train``
    and evaluate it; there are no epochs, so nothing is selected or checkpointed."""
    t0 = time.perf_counter()
    model.set_graph(graph.train.to(_model_device(model)))
    valid = evaluate_model(model, graph, "valid", ks, batch_size=eval_batch_size,
                           memory_budget=eval_memory_budget) if graph.valid is not None else {}
    test = evaluate_model(model, graph, "test", ks, batch_size=eval_batch_size,
                          memory_budget=eval_memory_budget) if graph.test is not None else None
    return FitResult(best_epoch=0, best_valid=valid, test=test, epochs_run=0,
                     wall_time_s=time.perf_counter() - t0, selected_on=select_on)


def fit(
    model,
    graph: InteractionGraph,
    *,
    epochs: int = 1000,
    batch_size: int = 2048,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    sampler: str = "user",
    negative_candidates: int = 1,
    eval_every: int = 10,
    patience: int = 5,
    ks: Sequence[int] = (20,),
    monitor: str = "recall@20",
    select_on: str = "valid",
    checkpoint_dir: Optional[str] = None,
    resume: bool = True,
    seed: int = 0,
    log_path: Optional[str] = None,
    progress: Optional[bool] = None,
    time_budget_s: Optional[float] = None,
    eval_batch_size: int = 2048,
    on_eval: Optional[Callable[[Dict[str, Any]], None]] = None,
    graceful_stop: bool = True,
    on_resume: Optional[Callable[[Dict[str, Any]], None]] = None,
    eval_memory_budget: Optional[int] = None,
    valid_users: Optional[int] = None,
) -> FitResult:
    r"""Train ``model`` on ``graph.train`` with early stopping on a held-out part.

    Args:
        model: a recommender (see the module docstring); it is moved to no device here — put it
            where it should train before calling.
        graph (InteractionGraph): the data; ``graph.valid`` is used for model selection when
            ``select_on="valid"``.
        epochs (int): maximum number of epochs. (default: ``1000``)
        batch_size (int): training pairs per step. (default: ``2048``)
        lr (float): Adam learning rate. (default: ``1e-3``)
        weight_decay (float): Adam weight decay (the models carry their own L2 terms, so 0 by
            default).
        sampler (str): ``"user"`` — each epoch draws ``|train|`` triples, users uniformly, then
            a positive of theirs (the LightGCN reference sampler); ``"epoch"`` — one shuffled
            pass over all training pairs (the UltraGCN reference). (default: ``"user"``)
        negative_candidates (int): ``1`` draws one uniform negative per pair (plain BPR);
            ``M > 1`` draws ``M`` candidates and the model trains on the one it currently
            scores highest (dynamic negative sampling; LightGCN and MF support it, models that
            draw their own negatives do not). (default: ``1``)
        eval_every (int): evaluate every this many epochs. (default: ``10``)
        patience (int): stop after this many evaluations without improvement of ``monitor``.
            (default: ``5``)
        ks (sequence of int): cut-offs to compute. (default: ``(20,)``)
        monitor (str): the metric used for selection and early stopping. (default: ``"recall@20"``)
        select_on (str): ``"valid"`` (proper model selection) or ``"test"`` (the protocol of the
            LightGCN/UltraGCN reference code, which picks the best epoch on the test set; the
            result then says so). (default: ``"valid"``)
        checkpoint_dir (str, optional): where to keep ``last.pt`` (written atomically after
            every epoch, so an interrupted run loses at most the epoch in progress) and
            ``best.pt`` (the selected model).
        resume (bool): continue from ``checkpoint_dir/last.pt`` when it exists, exactly where it
            stopped; a checkpoint of a run with other training settings, another model, or other
            data (see :func:`~graphkit.rec.data.data_fingerprint`) raises :class:`ResumeError`
            naming what differs. (default: ``True``)
        seed (int): seed of the sampling generator. (default: ``0``)
        log_path (str, optional): JSONL file receiving one line per evaluation.
        progress (bool, optional): show tqdm bars (default: only on a terminal and outside CI).
        time_budget_s (float, optional): stop (after checkpointing) once this much wall time
            has been spent in this call.
        eval_batch_size (int): at most this many users per scoring block. (default: ``2048``)
        eval_memory_budget (int, optional): bytes one block of scores may take (the block
            follows the item count; default 512 MiB, see :func:`~graphkit.rec.evaluate.full_ranking`).
        on_eval (callable, optional): called with each evaluation record.
        graceful_stop (bool): the first Ctrl-C / SIGTERM lets the current epoch finish, then
            evaluates, checkpoints and returns (``interrupted=True``), as if the time budget had
            run out; a second Ctrl-C aborts at once. (default: ``True``)
        on_resume (callable, optional): called once when training continues from a
            checkpoint, with ``{"path", "epochs_done", "wall_time_s", "sittings"}`` (the
            epochs and wall time of the earlier sittings, and this sitting's number).
        valid_users (int, optional): evaluate the validation part (``select_on="valid"``) on a
            random sample of this many of its users, drawn once from ``seed`` by
            :func:`sample_valid_users` and the same at every evaluation; ``None`` or at least
            the number of validation users: all of them. On large data one full-ranking pass
            over every validation user costs as much as many epochs; early stopping needs an
            estimate of the metric, not its exact value. The final test evaluation always ranks
            for every test user. (default: ``None``)

    Under ``torchrun`` (see the module docstring) ``batch_size`` is the global batch, split over
    the ranks in contiguous parts whose sizes differ by at most one; it must be at least the
    world size, and in ``sampler="epoch"`` a last batch with fewer pairs than ranks is skipped
    (those pairs come in another position of the next epoch's shuffle). The model's loss must
    be a mean over the batch plus terms that do not depend on it (LightGCN, MF); a model whose
    ``loss_reduction`` is ``"sum"`` (UltraGCN) raises a :class:`ValueError`. On GPU a model on
    another CUDA device than the rank's is moved to it. Every rank returns the same result.
    """
    from graphkit.engine import JSONLLogger
    from graphkit.engine import progress as progress_bar
    from graphkit.engine.signals import GracefulStop

    if not getattr(model, "trainable", True):
        return _fit_training_free(model, graph, tuple(ks), select_on, eval_batch_size, eval_memory_budget)
    ks = _check_fit_args(model, graph, sampler=sampler, negative_candidates=negative_candidates,
                         select_on=select_on, monitor=monitor, ks=ks)
    if valid_users is not None and select_on != "valid":
        raise ValueError(f"valid_users={valid_users!r} samples the validation part, but select_on={select_on!r}; "
                         "the test part is always evaluated for every user")
    sample = sample_valid_users(graph.valid, valid_users, seed) if valid_users is not None else None
    rank_device = ensure_distributed()
    if is_distributed():
        _check_distributed_fit(model, batch_size)
        if rank_device is not None and rank_device.type == "cuda" and _model_device(model) != rank_device:
            model.to(rank_device)
    device = _model_device(model)
    train = graph.train.to(device)
    model.set_graph(train)
    run = _Run(model=model, graph=graph, train=train,
               positives=PairIndex(train, graph.num_users, graph.num_items),
               optimizer=adam(model.parameters(), lr=lr, weight_decay=weight_decay),
               generator=torch.Generator(device=device).manual_seed(seed),
               ckpt_dir=pathlib.Path(checkpoint_dir) if checkpoint_dir else None,
               # What must not change between sittings of one run: resuming with other values
               # would continue a different training procedure from this one's state.
               train_settings=dict(batch_size=int(batch_size), lr=float(lr), weight_decay=float(weight_decay),
                                   sampler=sampler, negative_candidates=int(negative_candidates),
                                   select_on=select_on, monitor=monitor, seed=int(seed),
                                   num_train=int(graph.num_train),
                                   valid_users=None if sample is None else int(sample.numel())),
               fingerprint=data_fingerprint(graph), select_users=sample)
    main = is_main_process()
    # rank 0 decides: the other ranks may run on nodes that do not see its disk
    if broadcast_object(run.ckpt_dir is not None and resume and (run.ckpt_dir / "last.pt").exists()):
        _resume(run, device)
        if on_resume is not None:
            on_resume({"path": str(run.ckpt_dir / "last.pt"), "epochs_done": run.start_epoch,
                       "wall_time_s": run.elapsed_before, "sittings": run.sittings})
    # DDP over the loss (the models train through ``loss``, not ``forward``); built after
    # resuming, it starts every replica from rank 0's weights
    run.net = wrap_ddp(_LossForward(model), broadcast_buffers=False) if is_distributed() else None
    logger = JSONLLogger(log_path) if log_path and main else None
    run.t0 = time.time()
    # A run that already stopped early is finished: resuming it only restores the selected
    # model and evaluates, it does not train further epochs.
    run.stopped_early = run.start_epoch > 0 and run.bad_evals >= patience
    if run.stopped_early:
        epochs = run.start_epoch
    epoch = run.start_epoch - 1
    bar = progress_bar(range(run.start_epoch, epochs), desc="train", total=epochs,
                       disable=(None if progress is None else not progress) if main else True,
                       initial=run.start_epoch)
    with GracefulStop(enabled=graceful_stop) as stop:
        for epoch in bar:
            record: Dict[str, Any] = {"epoch": epoch, "loss": _train_epoch(
                run, epoch, sampler=sampler, batch_size=batch_size, negative_candidates=negative_candidates)}
            out_of_time = (time_budget_s is not None and time.time() - run.t0 >= time_budget_s) or stop.requested
            if run.net is not None:  # every rank stops at the same epoch
                out_of_time = any_rank(out_of_time)
            if (epoch + 1) % eval_every == 0 or epoch == epochs - 1 or out_of_time:
                _evaluate_and_select(run, epoch, record, select_on=select_on, ks=ks, monitor=monitor,
                                     patience=patience, eval_batch_size=eval_batch_size,
                                     eval_memory_budget=eval_memory_budget)
                if logger is not None:
                    logger.log(**record)
                if on_eval is not None:
                    on_eval(record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{record['loss']:.4f}",
                                    **{monitor: f"{record[f'{select_on}_{monitor}']:.4f}"},
                                    best=f"{run.best_value:.4f}@{run.best_epoch}")
            if run.ckpt_dir is not None:
                _save(run, epoch, run.ckpt_dir / "last.pt")
            if run.stopped_early or out_of_time:
                break
    if hasattr(bar, "close"):
        bar.close()
    if logger is not None:
        logger.close()
    _restore_best(run, device)
    test = None
    if graph.test is not None:
        if main:
            test = evaluate_model(model, graph, "test", ks=ks, batch_size=eval_batch_size,
                                  memory_budget=eval_memory_budget)
        test = broadcast_object(test)
    return FitResult(best_epoch=run.best_epoch, best_valid=run.best_valid, test=test, history=run.history,
                     epochs_run=epoch + 1, wall_time_s=run.elapsed(), selected_on=select_on,
                     stopped_early=run.stopped_early, interrupted=stop.requested,
                     resumed_from=run.start_epoch if run.sittings > 1 else None, sittings=run.sittings,
                     valid_users=None if sample is None else int(sample.numel()))


class _LossForward(torch.nn.Module):
    """``forward(users, pos, neg)`` = ``model.loss(users, pos, neg)``, so DDP sees the loss."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        return self.model.loss(users, pos, neg)


def _check_distributed_fit(model, batch_size: int) -> None:
    """Refuse what DDP training in :func:`fit` cannot reproduce."""
    world = get_world_size()
    if getattr(model, "loss_reduction", "mean") == "sum" or type(model).__name__ == "UltraGCN":
        raise ValueError(f"{type(model).__name__}'s loss sums over the batch and adds a term that does not "
                         "depend on it, so per-rank losses cannot be recombined into the single-process one; "
                         "train it in one process (without torchrun)")
    if batch_size < world:
        raise ValueError(f"batch_size={batch_size} is smaller than the world size {world}: every rank needs "
                         "at least one training pair per step")


def _check_fit_args(model, graph: InteractionGraph, *, sampler: str, negative_candidates: int, select_on: str,
                    monitor: str, ks: Sequence[int]) -> Sequence[int]:
    """Validate :func:`fit`'s arguments; return ``ks`` with the monitored cut-off added."""
    if sampler not in ("user", "epoch"):
        raise ValueError(f"sampler must be 'user' or 'epoch', got {sampler!r}")
    if int(negative_candidates) != negative_candidates or negative_candidates < 1:
        raise ValueError(f"negative_candidates must be a positive integer, got {negative_candidates!r}")
    if negative_candidates > 1 and hasattr(model, "sample_negatives"):
        raise ValueError(f"{type(model).__name__} draws its own negatives; negative_candidates > 1 "
                         "(dynamic negative sampling) applies to BPR models such as LightGCN and MF")
    if select_on not in ("valid", "test"):
        raise ValueError(f"select_on must be 'valid' or 'test', got {select_on!r}")
    if select_on == "valid" and graph.valid is None:
        raise ValueError(f"{graph.name} has no validation part: split one off (graphkit.rec.split) "
                         "or pass select_on='test' to select on the test set (reference protocol)")
    if select_on == "test" and graph.test is None:
        raise ValueError(f"{graph.name} has no test part to select on")
    if monitor.split("@")[0] not in ("recall", "ndcg", "precision", "hit", "mrr", "map", "f1"):
        raise ValueError(f"unknown monitor metric {monitor!r}")
    if int(monitor.split("@")[1]) not in ks:
        ks = tuple(ks) + (int(monitor.split("@")[1]),)
    return ks


@dataclass
class _Run:
    """The state of one :func:`fit` run: what it trains with and what it has selected so far."""

    model: Any
    graph: InteractionGraph
    train: Tensor
    positives: PairIndex
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    ckpt_dir: Optional[pathlib.Path]
    train_settings: Dict[str, Any]
    fingerprint: Dict[str, str]
    start_epoch: int = 0
    best_value: float = -math.inf
    best_epoch: int = -1
    bad_evals: int = 0
    best_valid: Dict[str, float] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)
    elapsed_before: float = 0.0
    sittings: int = 1
    stopped_early: bool = False
    t0: float = 0.0
    best_state: Optional[Dict[str, Tensor]] = None  # the selected weights, without checkpoint_dir
    net: Any = None  # the DDP wrapper of the loss under torchrun
    select_users: Optional[Tensor] = None  # the validation sample (None: every user)

    def elapsed(self) -> float:
        """Wall time of the run so far, earlier sittings included."""
        return self.elapsed_before + time.time() - self.t0


def _resume(run: _Run, device) -> None:
    """Load ``last.pt`` into the run, refusing a checkpoint of other settings or other data.

    Under DDP rank 0 reads and checks the file and sends its content (or the reason it cannot
    be used) to the other ranks."""
    from graphkit.engine.checkpoint import set_rng_state, unwrap_model

    path = run.ckpt_dir / "last.pt"
    state, error = None, None
    if is_main_process():
        try:
            state = _read_resume_state(run, path, device)
        except ResumeError as exc:
            error = str(exc)
    if is_distributed():
        keys = ("epoch", "extra", "model_state", "optimizer_state", "rng")
        error, sent = broadcast_object((error, None if state is None else {k: state[k] for k in keys}))
        if error is None and not is_main_process():
            state = sent
            unwrap_model(run.model).load_state_dict(state["model_state"])
            run.optimizer.load_state_dict(state["optimizer_state"])
            set_rng_state(state["rng"])
    if error is not None:
        raise ResumeError(error)
    extra = state["extra"] or {}
    run.start_epoch = state["epoch"] + 1
    run.best_value = float(extra.get("best_value", -math.inf))
    run.best_epoch = int(extra.get("best_epoch", -1))
    run.bad_evals = int(extra.get("bad_evals", 0))
    run.best_valid = dict(extra.get("best_valid", {}))
    run.history = list(extra.get("history", []))
    run.elapsed_before = float(extra.get("wall_time_s", 0.0))
    run.sittings = int(extra.get("sittings", 1)) + 1
    if "generator" in extra:
        run.generator.set_state(torch.tensor(extra["generator"], dtype=torch.uint8))
    if is_distributed() and run.best_epoch >= 0:
        # the other ranks restore the selected weights from memory at the end, not from best.pt
        best = None
        if is_main_process() and (run.ckpt_dir / "best.pt").exists():
            best = _load_state(run.ckpt_dir / "best.pt", device)
        run.best_state = broadcast_object(best)


def _load_state(path: pathlib.Path, device) -> Dict[str, Tensor]:
    from graphkit.engine import load_checkpoint

    return load_checkpoint(path, map_location=device, restore_rng=False)["model_state"]


def _read_resume_state(run: _Run, path: pathlib.Path, device) -> Dict[str, Any]:
    """Load ``path`` into the run's model and optimiser and check it belongs to this run."""
    from graphkit.engine import load_checkpoint

    try:
        state = load_checkpoint(path, model=run.model, optimizer=run.optimizer, map_location=device)
    except (ValueError, RuntimeError) as exc:
        raise ResumeError(str(exc)) from exc
    extra = state["extra"] or {}
    saved = extra.get("data_fingerprint")
    if saved is not None:
        changed = [k for k, v in run.fingerprint.items() if saved.get(k) != v]
        if changed:
            raise ResumeError(
                f"{path} was written for other data: "
                + ", ".join(f"{k} (checkpoint {saved.get(k)}, now {run.fingerprint[k]})" for k in changed)
                + " differ; the model's indices would refer to other users and items. Train on the "
                "data of that run to continue it, or resume=False / another checkpoint_dir to start afresh")
    saved = extra.get("train_settings")
    if saved is not None:
        changed = {k: (saved.get(k), v) for k, v in run.train_settings.items() if saved.get(k) != v}
        if changed:
            raise ResumeError(
                f"{path} was written by a run with other settings ("
                + ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
                + "); pass the same settings to continue it, or resume=False / another "
                "checkpoint_dir to start afresh")
    return state


def _save(run: _Run, epoch: int, path: pathlib.Path) -> None:
    """Atomically checkpoint the run after ``epoch`` (model, optimiser, selection state,
    sampling generator, settings and data fingerprint). Only rank 0 writes."""
    from graphkit.engine import save_checkpoint

    if not is_main_process():
        return
    extra = dict(best_value=run.best_value, best_epoch=run.best_epoch, bad_evals=run.bad_evals,
                 best_valid=run.best_valid, history=run.history, train_settings=run.train_settings,
                 data_fingerprint=run.fingerprint, sittings=run.sittings, wall_time_s=run.elapsed(),
                 generator=run.generator.get_state().tolist())
    save_checkpoint(path, model=run.model, optimizer=run.optimizer, epoch=epoch,
                    model_args=run.model.model_args, extra=extra)


def _train_epoch(run: _Run, epoch: int, *, sampler: str, batch_size: int, negative_candidates: int) -> float:
    """One epoch of optimisation steps; returns the mean training loss."""
    model, graph, generator, device = run.model, run.graph, run.generator, run.train.device
    steps = max(1, math.ceil(graph.num_train / batch_size))
    uses_own_negatives = hasattr(model, "sample_negatives")
    model.train()
    total = 0.0
    net, world = run.net, get_world_size() if run.net is not None else 1
    perm = torch.randperm(graph.num_train, device=device, generator=generator) if sampler == "epoch" else None
    for step in range(steps):
        if world > 1 and sampler == "epoch" and perm[step * batch_size:(step + 1) * batch_size].numel() < world:
            break  # a last batch with fewer pairs than ranks (see fit)
        if sampler == "user":
            users, pos, neg = sample_bpr_triples(run.positives, batch_size, graph.num_items, generator,
                                                 num_negatives=negative_candidates)
            if uses_own_negatives:
                neg = model.sample_negatives(users.numel(), generator=generator, users=users)
        else:
            idx = perm[step * batch_size:(step + 1) * batch_size]
            users, pos = run.train[0][idx], run.train[1][idx]
            if uses_own_negatives:
                neg = model.sample_negatives(users.numel(), generator=generator, users=users)
            else:
                neg = sample_negatives(users, negative_candidates, run.positives, graph.num_items, generator)
        run.optimizer.zero_grad(set_to_none=True)
        if net is None:
            loss = model.loss(users, pos, neg)
            scaled = loss
        else:
            # every rank drew the same global batch; it trains on its part, weighted by the
            # part's share so that DDP's average of the gradients is the global batch's
            n = users.numel()
            users, pos, neg = (split_for_rank(t) for t in (users, pos, neg))
            loss = net(users, pos, neg)
            scaled = loss * (world * users.numel() / n)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch}, step {step}: "
                                     "lower the learning rate")
        scaled.backward()
        run.optimizer.step()
        total += float(scaled.detach())
    if net is not None:
        from graphkit.engine.distributed import all_reduce_mean

        return all_reduce_mean(total) / steps
    return total / steps


def _evaluate_and_select(run: _Run, epoch: int, record: Dict[str, Any], *, select_on: str, ks: Sequence[int],
                         monitor: str, patience: int, eval_batch_size: int,
                         eval_memory_budget: Optional[int] = None) -> None:
    """Evaluate on the selection part, keep the model if it is the best so far, update early
    stopping, and complete ``record`` (appended to the history)."""
    sel = None
    if is_main_process():  # the replicas are equal: rank 0 evaluates and tells the others
        sel = evaluate_model(run.model, run.graph, select_on, ks=ks, batch_size=eval_batch_size,
                             memory_budget=eval_memory_budget, users=run.select_users)
    sel = broadcast_object(sel)
    record.update({f"{select_on}_{k}": v for k, v in sel.items() if "@" in k})
    record[f"{select_on}_num_users"] = int(sel["num_users"])
    value = sel[monitor]
    if value > run.best_value:
        run.best_value, run.best_epoch, run.bad_evals = value, epoch, 0
        run.best_valid = {k: v for k, v in sel.items() if "@" in k}
        if run.ckpt_dir is not None and is_main_process():
            _save(run, epoch, run.ckpt_dir / "best.pt")
        else:
            run.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    else:
        run.bad_evals += 1
    record["best_epoch"] = run.best_epoch
    # wall time of the run so far, earlier sittings and evaluations included
    record["elapsed_s"] = round(run.elapsed(), 1)
    run.history.append(record)
    if run.bad_evals >= patience:
        run.stopped_early = True


def _restore_best(run: _Run, device) -> None:
    """Put the selected model's weights back into ``run.model`` (from ``best.pt`` or memory)."""
    from graphkit.engine import load_checkpoint

    if run.best_epoch < 0:
        return
    if run.ckpt_dir is not None and is_main_process():
        load_checkpoint(run.ckpt_dir / "best.pt", model=run.model, map_location=device, restore_rng=False)
    elif run.best_state is not None:
        run.model.load_state_dict(run.best_state)
