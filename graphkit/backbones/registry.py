"""timm-style registry of backbones: every variant is a small registered function.

.. code-block:: python

    from graphkit.backbones import create_backbone, list_backbones

    list_backbones("poolformer_*")           # ['poolformer_m36', 'poolformer_m48', ...]
    model = create_backbone("poolformer_s12", num_classes=0)    # pooled 512-d features
    gnn = create_backbone("graph_poolformer", in_channels=1433, out_channels=7)
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch.nn import Module

__all__ = ["BackboneInfo", "register_backbone", "create_backbone", "list_backbones",
           "backbone_info"]


@dataclass(frozen=True)
class BackboneInfo:
    """What the registry knows of an entry (used by the contract tests).

    Attributes:
        name: registry name.
        fn: the function building the module from keyword arguments.
        input: ``"image"`` (``(B, 3, H, W)``) or ``"graph"`` (``x``, ``edge_index``, ``batch``).
        num_params: the paper's parameter count with the default arguments, if any.
        paper: the paper's link.
        test_kwargs: arguments the contract tests add (e.g. ``in_channels`` of a graph model).
        test_input_size: the small image size the contract tests use ``(C, H, W)``.
        smallest: the smallest member of its family (the one ``torch.compile`` is tested on).
    """

    name: str
    fn: Callable[..., Module]
    input: str
    num_params: Optional[int]
    paper: str
    test_kwargs: Dict[str, Any] = field(default_factory=dict)
    test_input_size: Tuple[int, int, int] = (3, 32, 32)
    smallest: bool = False


_REGISTRY: Dict[str, BackboneInfo] = {}


def register_backbone(*, input: str, paper: str, num_params: Optional[int] = None,
                      test_kwargs: Optional[Dict[str, Any]] = None,
                      test_input_size: Tuple[int, int, int] = (3, 32, 32),
                      smallest: bool = False) -> Callable[[Callable[..., Module]],
                                                          Callable[..., Module]]:
    """Decorator registering a backbone function under its ``__name__``."""
    if input not in ("image", "graph"):
        raise ValueError(f"register_backbone: input must be 'image' or 'graph' (got {input!r})")

    def wrap(fn: Callable[..., Module]) -> Callable[..., Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"register_backbone: {name!r} is already registered")
        _REGISTRY[name] = BackboneInfo(name, fn, input, num_params, paper,
                                       dict(test_kwargs or {}), tuple(test_input_size), smallest)
        return fn

    return wrap


def _lookup(name: str) -> BackboneInfo:
    if not isinstance(name, str) or name not in _REGISTRY:
        close = fnmatch.filter(sorted(_REGISTRY), f"*{str(name).split('_')[0]}*")
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint}; list_backbones() gives all "
                         f"{len(_REGISTRY)} names")
    return _REGISTRY[name]


def create_backbone(name: str, **kwargs: Any) -> Module:
    """Build the registered backbone ``name``; ``kwargs`` override its defaults."""
    return _lookup(name).fn(**kwargs)


def list_backbones(pattern: Optional[str] = None) -> List[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern``
    (``"poolformer_*"``)."""
    names = sorted(_REGISTRY)
    return fnmatch.filter(names, pattern) if pattern else names


def backbone_info(name: str) -> BackboneInfo:
    """The :class:`BackboneInfo` of ``name``."""
    return _lookup(name)
