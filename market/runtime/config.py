"""Scenario configuration: TOML files, dotted ``key=value`` overrides, typed checking against defaults.

A scenario file names its ``Scenario`` (``[scenario] builder = "module:NAME"``), whose defaults fix each
key's type, whose schema (``market/runtime/schema.py``) fixes each key's range, and whose factories'
keywords bound each ``params`` table. Every error is one line naming the key, the bad value and what is
allowed.
"""

from __future__ import annotations

import copy
import importlib
import importlib.resources
import math
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from market.core.parameters import accepted_keywords
from market.core.registry import HOW_TO_REGISTER
from market.runtime.scenario import Factories, Scenario
from market.runtime.schema import COMMON, LOG_FORMAT, Rule, shown


class ConfigError(ValueError):
    """A configuration that cannot be used: names the key, the value and what was expected."""


def scenario_files() -> dict[str, Path]:
    """Built-in scenarios: ``scenarios/*.toml`` shipped with the package, by name."""
    root = importlib.resources.files("scenarios")
    return {p.name[:-5]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a table; a missing, unreadable, non-UTF-8 or malformed file is a ConfigError."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"scenario: file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"scenario: got {str(path)!r}, a directory; expected a TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"scenario: {str(path)!r} is not UTF-8 text (byte {exc.start}); expected a TOML "
                          "file") from None
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: e.g. an integer of over 4300 digits
        raise ConfigError(f"scenario: {str(path)!r} is not valid TOML: {_one_line(str(exc))}") from None
    except OSError as exc:
        raise ConfigError(f"scenario: cannot read {str(path)!r}: {exc.strerror or exc}") from None


def find_scenario(name_or_path: str) -> Path:
    """A built-in scenario's file by name, or the TOML file at a path (which must be a file)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError(f"scenario: file {name_or_path!r} does not exist")
        if not p.is_file():
            raise ConfigError(f"scenario: got {name_or_path!r}, which is not a file; expected a TOML file or one "
                              f"of {sorted(scenario_files())}")
        return p
    files = scenario_files()
    if name_or_path not in files:
        raise ConfigError(f"scenario: unknown scenario {name_or_path!r}; built-in: {sorted(files)}")
    return files[name_or_path]


def load_scenario(spec: str) -> Scenario:
    """``"module:NAME"`` -> the module's ``Scenario`` called NAME. NAME may also be the Scenario's build
    function, as logs written before Scenario objects name it (``"scenarios.procurement:build"``)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"scenario.builder: got {spec!r}, expected 'module:NAME' naming a Scenario")
    mod_name, attr = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"scenario.builder: cannot import {mod_name!r}: {exc}") from None
    found = getattr(mod, attr, None)
    if isinstance(found, Scenario):
        return found
    scenarios = [v for v in vars(mod).values() if isinstance(v, Scenario)]
    built_by = [s for s in scenarios if found is not None and s.build is found]
    if len(built_by) == 1:
        return built_by[0]
    exported = sorted(k for k, v in vars(mod).items() if isinstance(v, Scenario))
    raise ConfigError(f"scenario.builder: got {spec!r}, but {mod_name!r} has no Scenario {attr!r} (nor one built by "
                      f"a function {attr!r}); its Scenarios: {exported}")


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ("a.b", 3); the value is read as TOML, or as a bare string if that fails."""
    if "=" not in item:
        raise ConfigError(f"--set: got {item!r}, expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set: got {item!r}, the key is empty")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, ValueError):  # ValueError: an integer of over 4300 digits
        value = raw
    return key, value


def _one_line(text: str) -> str:
    """A message for one line of output: line breaks written as \\n."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _shown_key(key: str) -> str:
    """A key as typed, unless it holds characters a one-line message cannot show as they are."""
    return key if key.isprintable() and len(key) <= 200 else shown(key)


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def _coerce(key: str, default: Any, value: Any, rule: Rule | None = None) -> Any:
    """``value`` as the type of ``default``; refused naming what the key's rule allows when it has one."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise ConfigError(f"{key}: got {shown(value)}, expected "
                                  f"{rule.expected() if rule is not None else 'a finite number'}")
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, list):
            return value
    elif default is None:
        return value
    if rule is not None:
        raise ConfigError(f"{key}: got {shown(value)}, expected {rule.expected()}")
    raise ConfigError(f"{key}: got {shown(value)}, expected {_type_name(default)} (like {shown(default)})")


def merge(defaults: dict[str, Any], values: dict[str, Any], prefix: str = "",
          rules: dict[str, Rule] | None = None) -> dict[str, Any]:
    """Overlay ``values`` on ``defaults``: unknown keys and wrong types are refused (saying what the key's rule
    in ``rules``, dotted key -> Rule, allows, where it has one)."""
    rules = rules or {}
    out = copy.deepcopy(defaults)
    for k, v in values.items():
        key = f"{prefix}{_shown_key(k)}"
        if k not in defaults:
            raise ConfigError(f"{key}: unknown key; known keys here: {sorted(defaults)}")
        d = defaults[k]
        if isinstance(d, dict) and d:
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: got {shown(v)}, expected a table")
            out[k] = merge(d, v, f"{key}.", rules)
        elif isinstance(d, dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: got {shown(v)}, expected a table")
            out[k] = copy.deepcopy(v)  # an empty default table takes any keys (free-form parameters)
        else:
            out[k] = _coerce(key, d, v, rules.get(key))
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{_shown_key(key)}: {shown(p)} is not a table")
    node[parts[-1]] = value


def resolve(scenario: str, overrides: Iterable[str] = (),
            plugins: Iterable[str] = ()) -> tuple[dict[str, Any], Scenario]:
    """Load a scenario file, load its plug-ins, apply ``--set`` overrides, check everything; returns (config,
    its Scenario).

    A scenario file outside the package has its folder made importable first (``plugins.add_scenario_folder``);
    installed plug-ins (entry points), the file's ``[scenario] plugins`` and then ``plugins`` (``--plugin``) are
    imported before its builder and names are resolved. ``plugins`` are recorded after the file's in the
    config's ``scenario.plugins``, so the log names every module that registered something."""
    from market.runtime import plugins as loader  # plugins raise ConfigError: imported here, not at the top

    path = find_scenario(scenario)
    raw = load_toml(path)
    head = raw.get("scenario", {})
    if not isinstance(head, dict):
        raise ConfigError(f"scenario: got {shown(head)} in {path.name}, expected a table with builder = "
                          "\"module:NAME\"")
    spec = head.get("builder")
    if spec is None and "sweep" in raw:
        raise ConfigError(f"scenario: {path.name} is a sweep, not a scenario; expected a scenario file (run the sweep "
                          f"with: llm-market sweep {path} --out DIR)")
    if spec is None:
        raise ConfigError(f"scenario.builder: missing in {path.name}")
    if path.resolve() not in {p.resolve() for p in scenario_files().values()}:
        loader.add_scenario_folder(path)
    loader.load_entry_points()
    listed = head.get("plugins", [])
    if not isinstance(listed, list):
        raise ConfigError(f"scenario.plugins: got {shown(listed)} in {path.name}, expected a list of module names")
    every = [*loader.load_plugins(listed, "scenario.plugins"), *loader.load_plugins(plugins, "--plugin",
                                                                                     where="--plugin")]
    if every:
        head["plugins"] = every
    market = load_scenario(spec)
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    head = raw["scenario"]
    builder = head.get("builder") if isinstance(head, dict) else head
    if builder != spec:  # the config logged must name the Scenario that was run
        raise ConfigError(f"scenario.builder: got {shown(builder)} from --set, expected the scenario file's "
                          f"{spec!r}: a builder is chosen by the file")
    if every and head.get("plugins") != every:
        raise ConfigError(f"scenario.plugins: got {shown(head.get('plugins'))} from --set, expected {every}: "
                          "plug-ins are chosen by the file or --plugin")
    return checked(raw, market, path.stem), market


def checked(raw: dict[str, Any], market: Scenario, name: str) -> dict[str, Any]:
    """``raw`` (a scenario file's tables, or a config read back from a log or a checkpoint) over the Scenario's
    defaults, every key checked against its type, its rule and its factory: the config a run may be built
    from. ``name`` is the scenario's name where ``raw`` does not give one."""
    defaults = copy.deepcopy(market.defaults)
    defaults["scenario"] = {"name": name, "builder": "", "description": ""}
    head = raw.get("scenario")
    if isinstance(head, dict) and "plugins" in head:  # only then: configs without plug-ins log as before
        defaults["scenario"]["plugins"] = []
    for key, default in market.optional.items():  # only when given: configs without them log as before
        if _lookup(raw, key) is not _MISSING:
            set_dotted(defaults, key, copy.deepcopy(default))
    schema = schema_of(market)
    run = raw.get("run")
    if isinstance(run, dict) and "log" in run and isinstance(defaults.get("run"), dict):
        # The log's format (eventlog: "plain" or "compact"), a key only when given, so that configs
        # without it resolve, and log, as before.
        defaults["run"]["log"] = "plain"
        schema["run.log"] = LOG_FORMAT
    config = merge(defaults, raw, rules=schema)
    check_schema(config, schema)
    for factories in market.factories:
        check_params(config, factories)
    return config


def schema_of(market: Scenario) -> dict[str, Rule]:
    """The rules of a Scenario's keys: the common ``run.*`` rules its defaults have keys for, then its own."""
    common = {k: r for k, r in COMMON.items() if _lookup(market.defaults, k) is not _MISSING}
    return {**common, **market.schema}


_MISSING = object()


def _lookup(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_schema(config: dict[str, Any], schema: dict[str, Rule]) -> None:
    """Refuse the first value a rule does not allow, naming the key, the value and what is allowed. A rule
    for a key the config lacks is a mistake in the scenario, not in the file: it is refused too."""
    for key, rule in schema.items():
        value = _lookup(config, key)
        if value is _MISSING:
            raise ConfigError(f"{key}: a rule of the scenario's schema names a key its defaults do not have")
        why = rule.refusal(value)
        if why is not None:
            raise ConfigError(f"{key}: got {shown(value)}, expected {why}")


def check_params(config: dict[str, Any], factories: Factories) -> None:
    """``<table>.name`` must be registered and every key of ``<table>.params`` a keyword its factory accepts
    (less those the builder supplies), so a misspelt parameter is refused here, not deep inside a build."""
    table = factories.table
    name = config[table]["name"]
    factory = factories.factory(name)
    if factory is None:
        raise ConfigError(f"{table}.name: got {shown(name)}, expected one of {factories.names()} or 'module:attr' "
                          f"({HOW_TO_REGISTER})")
    accepted = accepted_keywords(factory)
    if accepted is None:  # the factory takes **kwargs and does not say where they go: nothing to check
        return
    allowed = sorted(accepted - factories.supplied)
    for key in config[table]["params"]:
        if key not in allowed:
            raise ConfigError(f"{table}.params.{_shown_key(key)}: not a parameter of {table} {name!r}; "
                              f"accepted: {allowed}")


def require(cond: bool, key: str, value: Any, expected: str) -> None:
    """For builders: refuse a semantically bad value, naming the key."""
    if not cond:
        raise ConfigError(f"{key}: got {shown(value)}, expected {expected}")


def dump_toml(tree: dict[str, Any]) -> str:
    """Write a resolved config as TOML (tables of scalars and lists; what configs here contain)."""
    lines: list[str] = []

    def table(prefix: str, node: dict[str, Any]) -> None:
        plain = {k: v for k, v in node.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in node.items() if isinstance(v, dict)}
        if prefix and (plain or not nested):
            lines.append(f"[{prefix}]")
        for k, v in plain.items():
            lines.append(f"{_key(k)} = {toml_value(v)}")
        if plain:
            lines.append("")
        for k, v in nested.items():
            table(f"{prefix}.{_key(k)}" if prefix else _key(k), v)

    table("", tree)
    return "\n".join(lines).rstrip() + "\n"


def toml_value(v: Any) -> str:
    """One value as TOML text that reads back as the same value (also NaN, infinities and control characters)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)  # repr gives inf, -inf, 1e+300: TOML spells them alike
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise ConfigError(f"config: cannot write {shown(v)} as TOML")


def _toml_string(s: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX (TOML allows
    only the tab as it is)."""
    out = []
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    """A bare key when TOML allows one (ASCII letters, digits, _ and -), else a quoted one."""
    bare = k.replace("_", "").replace("-", "")
    return k if k and (not bare or (bare.isascii() and bare.isalnum())) else _toml_string(k)
