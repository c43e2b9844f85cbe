"""One flag set for every example script.

Every script in ``examples/`` builds its parser with :func:`example_parser`, so the shared flags
have one spelling, one unit and one default everywhere::

    --dataset NAME --runs N --seed S --epochs E --device auto|cpu|cuda[:i] --root DIR
    --out DIR --select test|valid --time-budget SECONDS --no-resume --checkpoint-dir DIR
    --threads N --no-record --deviation TEXT

and names its result record with :func:`entry_id`, so a variant and a selection rule read the
same in every entry (``lightgcn-gowalla-neg64-valid``). A script adds its own method flags
(learning rate, hidden size, ...) to the returned parser as usual.
"""
from __future__ import annotations

import argparse
import re
from typing import Iterable, Mapping, Optional, Sequence

__all__ = ["example_parser", "entry_id", "slug", "apply_threads"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def example_parser(description: str, *, datasets: Optional[Iterable[str]] = None,
                   dataset: Optional[str] = None, runs: int = 1, seed: int = 0,
                   epochs: Optional[int] = None, select: str = "valid",
                   epilog: Optional[str] = None) -> argparse.ArgumentParser:
    r"""An :class:`argparse.ArgumentParser` with the flags every example shares.

    Args:
        description (str): the parser's description (usually the script's docstring).
        datasets (Iterable[str], optional): the dataset names the script accepts; ``--dataset``
            is then checked against them case-insensitively and normalised to the listed
            spelling. (default: ``None``, any name)
        dataset (str, optional): default ``--dataset``. (default: ``None``)
        runs (int): default ``--runs``, the number of seeds. (default: ``1``)
        seed (int): default ``--seed``; run ``r`` uses seed ``seed + r``. (default: ``0``)
        epochs (int, optional): default ``--epochs``; ``None`` lets the script pick the
            paper's per-dataset value. (default: ``None``)
        select (str): default ``--select``: ``"valid"`` reports test at the best-validation
            epoch, ``"test"`` picks the best epoch on test as some papers' code does (the
            record then says so). (default: ``"valid"``)
        epilog (str, optional): text shown after the flags in ``--help``.

    The shared flags and their units:

    * ``--time-budget SECONDS``: wall-clock seconds of training per run, after which the run
      stops at the end of an epoch, checkpointed (``None``: no limit);
    * resume is on by default: a run whose checkpoint exists continues from it;
      ``--no-resume`` starts afresh;
    * ``--checkpoint-dir DIR``: where checkpoints go (default: ``runs/<entry id>``, chosen by
      the script);
    * ``--out DIR``: result-record folder (default: ``leaderboards/results``);
      ``--no-record`` writes none;
    * ``--threads N``: torch CPU threads (default: torch's choice).
    """
    if select not in ("test", "valid"):
        raise ValueError(f"example_parser: select must be 'test' or 'valid', got {select!r}")
    names = list(datasets) if datasets is not None else None
    lookup = {n.lower(): n for n in names} if names else None

    def dataset_name(text: str) -> str:
        if lookup is None:
            return text
        try:
            return lookup[text.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"unknown dataset {text!r}; choose from {', '.join(names)}") from None

    p = argparse.ArgumentParser(description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("shared example flags")
    g.add_argument("--dataset", type=dataset_name, default=dataset, required=dataset is None,
                   help="dataset name" + (f": {', '.join(names)}" if names else "")
                   + (f" (default: {dataset})" if dataset else ""))
    g.add_argument("--runs", type=_positive_int, default=runs,
                   help=f"number of seeds (default: {runs})")
    g.add_argument("--seed", type=_nonnegative_int, default=seed,
                   help=f"seed of the first run; run r uses seed + r (default: {seed})")
    g.add_argument("--epochs", type=_positive_int, default=epochs,
                   help="maximum epochs" + (f" (default: {epochs})" if epochs
                                            else " (default: the paper's, per dataset)"))
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i (default: auto)")
    g.add_argument("--root", default=None,
                   help="dataset folder (default: $GRAPHKIT_DATA, then the cache)")
    g.add_argument("--out", default="leaderboards/results",
                   help="result-record folder (default: leaderboards/results)")
    g.add_argument("--no-record", dest="record", action="store_false",
                   help="do not write a result record")
    g.add_argument("--select", choices=("test", "valid"), default=select,
                   help="epoch selection: best validation epoch, or best test epoch as in "
                   f"the paper's code (default: {select})")
    g.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS",
                   help="seconds of training per run before it stops, checkpointed "
                   "(default: no limit)")
    g.add_argument("--no-resume", dest="resume", action="store_false",
                   help="ignore existing checkpoints and start afresh (default: resume)")
    g.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default: runs/<entry id>)")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's choice)")
    g.add_argument("--deviation", action="append", default=[],
                   help="a further deviation from the paper, noted in the record (repeatable)")
    return p


def slug(text: str) -> str:
    """Lower-case, file-name-safe form of a dataset or method name: ``"ML-1M"`` → ``"ml-1m"``."""
    out = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-")
    if not out:
        raise ValueError(f"slug: {text!r} has no letters or digits")
    return out


def entry_id(method: str, dataset: str, *, variant: str = "", select: str = "valid",
             paper_select: str = "valid", parts: Sequence[str] = ()) -> str:
    """The leaderboard entry id of a run: ``<method>[-<parts>]-<dataset>[-<variant>][-valid]``.

    ``-valid`` is appended when the run selects its epoch on validation although the paper
    selected on test (``paper_select="test"``), so the paper's own protocol keeps the plain id.
    ``variant`` names what changed from the paper's recipe (see
    :func:`graphkit.engine.variant_tag`); ``parts`` are extra words placed after the method
    (``entry_id("lagnn", "Cora", parts=["gcn"])`` → ``"lagnn-gcn-cora"``).
    """
    if select not in ("test", "valid") or paper_select not in ("test", "valid"):
        raise ValueError(f"entry_id: select and paper_select must be 'test' or 'valid', "
                         f"got {select!r} and {paper_select!r}")
    words = [slug(method), *(slug(p) for p in parts), slug(dataset)]
    if variant:
        words.append(variant)
    if select == "valid" and paper_select == "test":
        words.append("valid")
    return "-".join(words)


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads from ``--threads`` (no-op when it was not given)."""
    threads = getattr(args, "threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)


def changed_settings(args: argparse.Namespace, defaults: Mapping[str, object],
                     names: Iterable[str]) -> dict:
    """The settings among ``names`` whose value in ``args`` differs from ``defaults``, in order.

    Scripts pass the result to :func:`graphkit.engine.variant_tag` to name a changed recipe.
    """
    return {n: getattr(args, n) for n in names if getattr(args, n) != defaults[n]}
