"""Which code a run directory may make us run: the builders of installed scenarios, and nothing else.

A log header (and a run's ``config.toml``) names its builder as ``"module:NAME"``. Importing that module runs
its code, so a log someone sent would be a program. ``replay``, ``verify``, ``--resume``, ``report`` and
``inspect`` therefore resolve a logged builder through ``logged_scenario``: a module named by one of the
package's built-in scenario files (or one registered with ``register_scenario``, the hook for plug-ins) is
imported; any other module is refused before anything is imported, unless the caller passes
``trust_builder=True`` (the CLI's ``--trust-builder``). ``run`` of a TOML file the user gives still imports
its builder: the user chose to run that file.
"""

from __future__ import annotations

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
    """Modules the package's own scenario files name as builders (read from the files; nothing is imported)."""
    modules = set()
    for path in scenario_files().values():
        spec = load_toml(path).get("scenario", {}).get("builder")
        if isinstance(spec, str) and ":" in spec:
            modules.add(spec.split(":", 1)[0])
    return frozenset(modules)


def logged_scenario(spec: object, *, trust_builder: bool = False) -> Scenario:
    """The Scenario a logged ``scenario.builder`` names, if it is installed (or ``trust_builder``);
    raises ``BuilderRefused`` naming the module and the flag otherwise, before importing anything."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"scenario.builder: got {spec!r}, expected 'module:NAME' naming a Scenario")
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
