"""Named factories: one ``Registry`` per kind of thing a scenario file or the command line picks by name
(mechanisms, strategies, selectors, ...). An entry is a callable or a ``"module:attr"`` string imported on
first use, so listing names never imports heavy modules.

Where a name is accepted, ``"module:attr"`` is accepted too: the factory is that attribute of that module,
imported on first use (a plug-in's own strategy or mechanism, without registering it). Whether a module may
be imported at all (a name read from a log someone sent) is decided above this floor, before building.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Said by every unknown-name error: the ways a user's own factory gets a name.
HOW_TO_REGISTER = ("to add your own, give it as 'module:attr', or register it (REGISTRY.register(name, factory)) "
                   "in a module named by `plugins = [...]` in the scenario file's [scenario] table, by --plugin "
                   "MODULE, or by an installed package's `llm_market.plugins` entry point")


def is_reference(name: object) -> bool:
    """True for a ``"module:attr"`` name: dotted identifiers, one colon (nothing is imported to tell)."""
    if not isinstance(name, str) or name.count(":") != 1:
        return False
    module, attr = name.split(":")
    return all(part.isidentifier() for part in module.split(".")) and attr.isidentifier()


class RegistryError(ValueError):
    """An unknown name, a name taken twice, or parameters a factory does not take: names the kind, the name
    and the choices. Layers whose callers catch their own error subclass it (``class X(RegistryError, LayerError)``).
    """


class Registry(Generic[T]):
    """Name -> factory for one ``kind`` of thing; ``build(name, ...)`` calls the factory.

    Names iterate sorted, so the order never depends on which module registered first.
    """

    def __init__(self, kind: str, entries: Mapping[str, Callable[..., T] | str] | None = None, *,
                 error: type[RegistryError] = RegistryError) -> None:
        if not (isinstance(error, type) and issubclass(error, RegistryError)):
            raise RegistryError(f"{kind}: error = {error!r}; expected a subclass of RegistryError")
        self.kind = kind
        self.error = error
        self._entries: dict[str, Callable[..., T] | str] = {}
        self._references: dict[str, Callable[..., T]] = {}  # "module:attr" names used, once imported
        for name, factory in (entries or {}).items():
            self.register(name, factory)

    def register(self, name: str, factory: Callable[..., T] | str | None = None) -> Any:
        """Add ``factory`` under ``name``; without a factory, a decorator that adds what it decorates."""
        if factory is None:
            def decorate(f: Callable[..., T]) -> Callable[..., T]:
                self.register(name, f)
                return f
            return decorate
        if not isinstance(name, str) or not name:
            raise self.error(f"{self.kind}: name {name!r}; expected a non-empty string")
        if name in self._entries:
            raise self.error(f"{self.kind}: name {name!r} is already registered")
        if isinstance(factory, str):
            if factory.count(":") != 1 or not all(factory.split(":")):
                raise self.error(f"{self.kind} {name!r}: factory {factory!r}; expected 'module:attr'")
        elif not callable(factory):
            raise self.error(f"{self.kind} {name!r}: factory {factory!r}; expected a callable or 'module:attr'")
        self._entries[name] = factory
        return factory

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def origin(self, name: str) -> str:
        """The module a registered factory comes from (read from the entry; nothing is imported)."""
        factory = self._entries[name]
        if isinstance(factory, str):
            return factory.split(":")[0]
        while hasattr(factory, "func"):  # functools.partial: the module of the function it wraps
            factory = factory.func
        return str(getattr(factory, "__module__", None) or "?")

    def unknown(self, name: object) -> RegistryError:
        """The error for a name not registered here (for callers that check before building)."""
        return self.error(f"{self.kind}: unknown name {name!r}; known: {', '.join(self.names())}; "
                          f"{HOW_TO_REGISTER}")

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name`` (imported now if it was given as ``"module:attr"``), or, for an
        unregistered ``"module:attr"`` name, that attribute of that module."""
        if isinstance(name, str) and name not in self._entries and is_reference(name):
            return self._reference(name)
        try:
            factory = self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None
        if isinstance(factory, str):
            module, attr = factory.split(":")
            try:
                factory = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise self.error(f"{self.kind} {name!r}: cannot load {self._entries[name]!r}: {err}") from err
            self._entries[name] = factory
        return factory

    def _reference(self, name: str) -> Callable[..., T]:
        if name not in self._references:
            module, attr = name.split(":")
            try:
                factory = getattr(importlib.import_module(module), attr)
            except ImportError as err:
                raise self.error(f"{self.kind} {name!r}: cannot import module {module!r}: {err}; a module next to "
                                 "the scenario file is importable, else put its folder on PYTHONPATH") from None
            except AttributeError:
                raise self.error(f"{self.kind} {name!r}: module {module!r} has no attribute {attr!r}") from None
            if not callable(factory):
                raise self.error(f"{self.kind} {name!r}: got {factory!r}, expected a callable factory")
            self._references[name] = factory
        return self._references[name]

    def build(self, name: str, *args: Any, **params: Any) -> T:
        """``get(name)(*args, **params)``; parameters the factory does not take raise this registry's error."""
        factory = self.get(name)
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # some builtins have none: only the call can tell
            signature = None
        if signature is not None:
            try:
                signature.bind(*args, **params)
            except TypeError as err:
                raise self._bad_parameters(name, params, err) from None
            if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                return factory(*args, **params)  # a TypeError from inside is a bug there, not bad parameters
        try:
            return factory(*args, **params)
        except TypeError as err:
            # **params passed on to another callable: a keyword it does not take surfaces from deeper down
            raise self._bad_parameters(name, params, err) from err

    def _bad_parameters(self, name: str, params: Mapping[str, Any], err: TypeError) -> RegistryError:
        return self.error(f"{self.kind} {name!r}: bad parameters {sorted(params)}: {err}")

    def __contains__(self, name: object) -> bool:
        """Registered, or a ``"module:attr"`` name (whose import ``get`` tries; nothing is imported here)."""
        return isinstance(name, str) and (name in self._entries or is_reference(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self.names())})"
