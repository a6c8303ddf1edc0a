"""What a builder module exports: one ``Scenario`` per market it builds, with the config's defaults, the
function that adds the agents to a world, and what the run, replay, sweep and report read of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from market.core.instance import MarketInstance
from market.core.registry import Registry
from market.runtime.schema import Rule

if TYPE_CHECKING:
    from market.runtime.world import World


def summary_json(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The whole summary, for a scenario with no table of its own."""
    return json.dumps(summary, indent=2)


def no_metrics(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, float]:
    return {}


def no_observers(config: dict[str, Any], seed: int) -> list[Any]:
    return []


def config_rounds(config: dict[str, Any]) -> int:
    """One round record per round of ``run.rounds``: what most markets close."""
    return int(config["run"]["rounds"])


@dataclass(frozen=True, slots=True)
class Factories:
    """A config table that picks a factory by ``name`` and passes it ``params``: the registry it picks from,
    and the keywords the builder supplies itself (a config may not set them)."""

    table: str
    registry: Registry
    supplied: frozenset[str] = frozenset()

    def factory(self, name: str) -> Callable[..., Any] | None:
        """The factory registered under ``name``, None if there is none."""
        return self.registry.get(name) if name in self.registry else None

    def names(self) -> list[str]:
        return list(self.registry.names())


@dataclass(frozen=True, slots=True, eq=False)
class Scenario:
    """A market a scenario file can name (``[scenario] builder = "module:NAME"``).

    defaults: every config key with a value that fixes its type; build(world, config): adds the agents;
    describe(summary, config): what ``llm-market run`` prints; metrics(summary, config): flat figures for
    sweeps and reports; observers(config, seed): metric observers of the log records (replay rebuilds them
    from the logged config and seed); factories: the tables whose ``params`` are checked against their
    factory's keywords when the config is resolved; instance(config, seed): the market as a floor-1 value,
    for procurement markets that the fast engine can play without a bus (None for the others); schema: the
    rule of each dotted key beyond its type (range, finiteness, names allowed), checked when the config is
    resolved, with the common ``run.*`` rules of ``market/runtime/schema.py`` (its own rules win); optional:
    dotted keys (with their defaults) a config may set that ``defaults`` leave out, so that a config without them
    resolves, and logs, as it did before they existed; rounds(config): the round records a finished run of
    ``config`` closes, users' lost queries included (by default ``run.rounds``; a market that holds several
    auctions per round, like ads asking each query once per proposal, says how many), which ``verify`` and
    ``replay`` check.
    """

    name: str
    defaults: dict[str, Any]
    build: Callable[[World, dict[str, Any]], None]
    describe: Callable[[dict[str, Any], dict[str, Any]], str] = summary_json
    metrics: Callable[[dict[str, Any], dict[str, Any]], dict[str, float]] = no_metrics
    observers: Callable[[dict[str, Any], int], list[Any]] = no_observers
    factories: tuple[Factories, ...] = ()
    instance: Callable[[dict[str, Any], int], MarketInstance] | None = None
    schema: dict[str, Rule] = field(default_factory=dict)
    optional: dict[str, Any] = field(default_factory=dict)
    rounds: Callable[[dict[str, Any]], int] = config_rounds
