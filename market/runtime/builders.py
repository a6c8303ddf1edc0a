"""Which code a run directory may make us run: the builders of installed scenarios, and nothing else.

A log header (and a run's ``config.toml``) names its builder as ``"module:NAME"``. Importing that module runs
its code, so a log someone sent would be a program. ``replay``, ``verify``, ``--resume``, ``report`` and
``inspect`` therefore resolve a logged builder through ``logged_scenario``: a module named by one of the
package's built-in scenario files (or one registered with ``register_scenario``, the hook for plug-ins) is
imported; any other module is refused before anything is imported, unless the caller passes
``trust_builder=True`` (the CLI's ``--trust-builder``). ``run`` of a TOML file the user gives still imports
its builder: the user chose to run that file.

The same holds for the other code a logged config can name: its ``scenario.plugins`` and any ``"module:attr"``
name (a strategy, a mechanism). ``logged_code`` allows a module that is the package's own, an installed
scenario's or an installed plug-in's (an ``llm_market.plugins`` entry point, whose scenarios count as
installed), and refuses any other before importing it unless trusted; allowed plug-ins are then loaded.
"""

from __future__ import annotations

from typing import Any

from market.core.registry import is_reference
from market.runtime import plugins
from market.runtime.config import ConfigError, load_scenario, load_toml, scenario_files
from market.runtime.scenario import Scenario

TRUST_FLAG = "--trust-builder"

# "module:NAME" -> Scenario, added by plug-ins at import time of the code that installs them.
_REGISTERED: dict[str, Scenario] = {}


class BuilderRefused(ConfigError):
    """A logged builder outside the installed scenarios, refused because it was not trusted."""


def register_scenario(spec: str, scenario: Scenario) -> None:
    """Make ``spec`` ("module:NAME") resolve to ``scenario`` for logs, without importing anything later."""
    if not isinstance(scenario, Scenario):
        raise ConfigError(f"register_scenario: got {scenario!r} for {spec!r}, expected a Scenario")
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"register_scenario: got {spec!r}, expected 'module:NAME'")
    _REGISTERED[spec] = scenario


def installed_modules() -> frozenset[str]:
    """Modules the package's own scenario files name as builders, and installed plug-ins' modules (read from
    the files and the packages' metadata; nothing is imported)."""
    modules = set(plugins.entry_point_modules())
    for path in scenario_files().values():
        spec = load_toml(path).get("scenario", {}).get("builder")
        if isinstance(spec, str) and ":" in spec:
            modules.add(spec.split(":", 1)[0])
    return frozenset(modules)


def _references(node: Any, key: str) -> list[tuple[str, str]]:
    """(dotted key, module) of every ``"module:attr"`` string in a config tree, the builder's excepted."""
    if isinstance(node, dict):
        return [r for k, v in node.items() for r in _references(v, f"{key}.{k}" if key else str(k))]
    if isinstance(node, list):
        return [r for i, v in enumerate(node) for r in _references(v, f"{key}[{i}]")]
    if key != "scenario.builder" and is_reference(node):
        return [(key, node.split(":")[0])]
    return []


def _own(module: str) -> bool:
    return module.split(".")[0] in plugins.OWN


def logged_code(config: dict[str, Any], *, trust_builder: bool = False) -> None:
    """Check the modules a logged config names besides its builder (``scenario.plugins``, ``"module:attr"``
    names) before any is imported: each must be the package's own or installed, unless ``trust_builder``;
    then load the plug-ins so that their names resolve as they did in the run."""
    head: dict[str, Any] = config["scenario"] if isinstance(config.get("scenario"), dict) else {}
    listed = head.get("plugins", [])
    if not isinstance(listed, list):
        raise ConfigError(f"scenario.plugins: got {listed!r} in the log, expected a list of module names")
    named = [("scenario.plugins", plugins.module_name(m, "scenario.plugins")) for m in listed]
    named += _references(config, "")
    installed = installed_modules()
    for key, module in named:
        if not (trust_builder or _own(module) or module in installed):
            raise BuilderRefused(
                f"{key}: the log names module {module!r}, which is no installed plug-in (installed: "
                f"{sorted(installed)}); it was not imported. Pass {TRUST_FLAG} to import and run it if you trust "
                "where the run directory came from, or install it as an llm_market.plugins entry point")
    plugins.load_entry_points()
    plugins.load_plugins(listed, "the log's scenario.plugins")


def logged_scenario(spec: object, *, trust_builder: bool = False, config: dict[str, Any] | None = None) -> Scenario:
    """The Scenario a logged ``scenario.builder`` names, if it is installed (or ``trust_builder``);
    raises ``BuilderRefused`` naming the module and the flag otherwise, before importing anything. With the
    logged ``config``, its other code is checked and its plug-ins loaded too (``logged_code``): pass it
    wherever agents or mechanisms will be built from the log."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"scenario.builder: got {spec!r}, expected 'module:NAME' naming a Scenario")
    if config is not None:
        logged_code(config, trust_builder=trust_builder)
    if spec in _REGISTERED:
        return _REGISTERED[spec]
    module = spec.split(":", 1)[0]
    installed = installed_modules()
    if module not in installed and not trust_builder:
        raise BuilderRefused(
            f"scenario.builder: the log names {spec!r}, and module {module!r} is not an installed scenario "
            f"(installed: {sorted(installed)}); it was not imported. Pass {TRUST_FLAG} to import and run it "
            "if you trust where the run directory came from")
    return load_scenario(spec)
