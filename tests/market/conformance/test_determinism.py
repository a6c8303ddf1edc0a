"""Two runs with one seed write byte-identical event logs: for every built-in scenario and every registered
hostile agent, and the check fails for an agent that draws from the process-wide random module."""

from __future__ import annotations

import random

import pytest

from agents.hostile import HOSTILES
from agents.strategies import Truthful
from market.conformance.api import ConformanceError
from market.conformance.determinism import check_run_determinism
from market.runtime.config import load_toml, scenario_files

SCENARIOS = sorted(name for name, path in scenario_files().items() if "scenario" in load_toml(path))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_built_in_scenario_is_deterministic(scenario):
    check_run_determinism(scenario, rounds=10)


@pytest.mark.parametrize("name", HOSTILES.names())
def test_every_registered_hostile_agent_is_deterministic(name):
    check_run_determinism("hostile", [f'hostile.agents=["{name}"]'], rounds=20)


def test_the_check_catches_a_provider_drawing_from_the_global_random_module(monkeypatch):
    def noisy(self, cost, context, rng):
        return self.clip(cost * (1.0 + 0.1 * random.random()))

    monkeypatch.setattr(Truthful, "bid", noisy)
    with pytest.raises(ConformanceError, match="two runs wrote different event logs; first difference at record"):
        check_run_determinism("quickstart", rounds=10)
