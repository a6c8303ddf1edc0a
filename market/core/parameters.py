"""The keyword parameters a factory accepts: the named parameters of its signature, and, where it passes
``**kwargs`` on, those of the factories it declares with ``forwards``. A config can then refuse a
misspelt parameter when it is read, instead of four calls deep.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F")

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def forwards(*targets: Callable[..., Any], bound: Iterable[str] = ()) -> Callable[[F], F]:
    """Declare that a factory (function or class) passes its ``**kwargs`` on to ``targets``; ``bound``: the
    targets' keywords the factory sets itself, so a caller may not."""
    declared = (tuple(targets), frozenset(bound))

    def mark(factory: F) -> F:
        factory.__forwards__ = declared  # type: ignore[attr-defined]
        return factory

    return mark


def accepted_keywords(factory: Callable[..., Any]) -> frozenset[str] | None:
    """Every keyword ``factory`` accepts; None if it takes ``**kwargs`` without declaring where they go
    (then nobody can tell, and a caller should not refuse anything)."""
    if isinstance(factory, functools.partial):
        return accepted_keywords(factory.func)
    params = inspect.signature(factory).parameters.values()
    names = {p.name for p in params if p.kind in _KEYWORD_KINDS}
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(names)
    # vars(), not getattr: a subclass must not inherit its parent's declaration for a different __init__
    declared = vars(factory).get("__forwards__") if hasattr(factory, "__dict__") else None
    if declared is None:
        return None
    targets, bound = declared
    for target in targets:
        more = accepted_keywords(target)
        if more is None:
            return None
        names |= more - bound
    return frozenset(names)
