"""Plug-ins: a user's own strategies, mechanisms and scenarios, registered from modules outside the package.

A plug-in is a module that registers names when imported (``STRATEGIES.register("mine", make)``,
``register_scenario(...)``). It is loaded in one of three ways: named in a scenario file
(``[scenario] plugins = ["my.module"]``), named on the command line (``--plugin my.module``, which the config
records under ``scenario.plugins`` so the log says what ran), or declared by an installed package in the
entry-point group ``llm_market.plugins`` (loaded whenever names are resolved, as installed code).

The folder of a scenario file is importable while the file is resolved (appended to ``sys.path``, so a
module there never shadows an installed one): a ``mine.py`` next to ``mine.toml`` needs no PYTHONPATH.

What a log names is another matter: a module named in a logged config (a plug-in, or a ``"module:attr"``
name) is code, so ``builders.logged_code`` lets ``replay``, ``verify`` and ``--resume`` import it only when it
is installed (an entry point's module or the package's own), else only with ``--trust-builder``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Iterable
from pathlib import Path

from market.runtime.config import ConfigError

GROUP = "llm_market.plugins"
# The package's own top-level modules: names from them are built in, never plug-ins.
OWN = ("market", "agents", "scenarios")

_loaded: dict[str, str] = {}  # module -> how it was loaded ("entry point DIST", "plugins", "--plugin")
_entry_points_loaded = False


def module_name(name: object, where: str) -> str:
    """``name`` checked as a dotted module name (``where`` names the key or flag for the error)."""
    if not isinstance(name, str) or not name or not all(p.isidentifier() for p in name.split(".")):
        raise ConfigError(f"{where}: got {name!r}, expected a module name such as 'my_strategies' or 'pkg.mod'")
    return name


def entry_point_modules() -> dict[str, str]:
    """Module -> distribution of every ``llm_market.plugins`` entry point (read from metadata, not imported)."""
    found = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        found[ep.module] = dist
    return found


def load_entry_points() -> None:
    """Import every installed package's plug-in module once per process (they are installed code)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for module, dist in entry_point_modules().items():
        _import(module, f"entry point of {dist}", where=f"entry point {GROUP} of {dist}")


def load_plugins(modules: Iterable[str], how: str, *, where: str = "scenario.plugins") -> list[str]:
    """Import each module (once per process) so that it registers its names; returns them checked."""
    names = [module_name(m, where) for m in modules]
    for name in names:
        _import(name, how, where=where)
    return names


def _import(module: str, how: str, *, where: str) -> None:
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import plug-in {module!r}: {exc}; a module next to the scenario file "
                          "is importable, else install it or put its folder on PYTHONPATH") from None
    _loaded[module] = how


def loaded() -> dict[str, str]:
    """Plug-in modules imported in this process, with how each was loaded."""
    return dict(_loaded)


def add_scenario_folder(path: Path) -> None:
    """Make the modules next to a scenario file importable (appended: an installed module wins a clash)."""
    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)
