"""Scenario objects: a scenario file names one ("module:NAME") or, as logs written before them do, its build
function ("module:build"); both resolve to the same object, replay and resume of such logs keep working, and
a Scenario that gives only a build still runs (the summary printed as JSON)."""

from __future__ import annotations

import json
import textwrap

import pytest

from market.lab.cli import main
from market.runtime.config import ConfigError, load_scenario, resolve
from market.runtime.eventlog import read_log
from market.runtime.run import replay, resume_scenario, run_scenario
from market.runtime.scenario import Scenario
from scenarios import ads, procurement, selection


@pytest.mark.parametrize(("spec", "expected"), [
    ("scenarios.procurement:SCENARIO", procurement.SCENARIO),
    ("scenarios.procurement:build", procurement.SCENARIO),
    ("scenarios.ads:build", ads.SCENARIO),
    ("scenarios.selection:build_posted", selection.POSTED),
    ("scenarios.selection:build_finetune", selection.FINETUNE),
    ("scenarios.selection:FINETUNE", selection.FINETUNE),
])
def test_a_spec_names_a_scenario_or_the_function_that_builds_one(spec, expected):
    assert load_scenario(spec) is expected


@pytest.mark.parametrize(("spec", "needle"), [
    ("scenarios.procurement", "expected 'module:NAME'"),
    ("scenarios.nowhere:SCENARIO", "cannot import 'scenarios.nowhere'"),
    ("scenarios.procurement:describe", "its Scenarios: ['SCENARIO']"),
    ("scenarios.selection:SCENARIO", "its Scenarios: ['FINETUNE', 'POSTED']"),
])
def test_a_spec_naming_no_scenario_is_refused_with_the_ones_there_are(spec, needle):
    with pytest.raises(ConfigError, match=r"scenario\.builder") as err:
        load_scenario(spec)
    assert needle in str(err.value)


def test_every_built_in_file_resolves_to_a_scenario_of_its_module():
    for name, module in (("quickstart", procurement), ("ads", ads), ("multi-llm", selection), ("finetune", selection)):
        config, market = resolve(name)
        assert isinstance(market, Scenario) and market.build.__module__ == module.__name__
        assert config["scenario"]["name"] == name


def test_a_file_naming_the_scenario_object_runs_as_the_one_naming_its_build(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[scenario]\nbuilder = "scenarios.procurement:SCENARIO"\n[run]\nrounds = 30\n')
    config, summary, market = run_scenario(str(mine), out=tmp_path / "new")
    _, reference, _ = run_scenario("quickstart", rounds=30, out=tmp_path / "old")
    assert market is procurement.SCENARIO
    assert summary == reference  # same defaults, same market; only the header's names differ
    assert read_log(tmp_path / "new" / "events.msgpack").records[0].config["scenario"]["builder"] == \
        "scenarios.procurement:SCENARIO"
    footer, recomputed, torn = replay(tmp_path / "new")
    assert torn is None and recomputed == footer and "regret" in recomputed["metrics"]


def test_a_log_naming_the_build_function_replays_and_resumes(tmp_path):
    run_scenario("quickstart", rounds=250, out=tmp_path, overrides=["run.checkpoint_every=100"])
    header = read_log(tmp_path / "events.msgpack").records[0]
    assert header.config["scenario"]["builder"] == "scenarios.procurement:build"
    footer, recomputed, _ = replay(tmp_path)
    assert recomputed == footer
    config, summary, market = resume_scenario(tmp_path)
    assert market is procurement.SCENARIO and summary == footer


def test_a_scenario_with_only_a_build_prints_its_summary_as_json(tmp_path, monkeypatch, capsys):
    (tmp_path / "lonely_market.py").write_text(textwrap.dedent('''
        from market.runtime.scenario import Scenario

        def build(world, config):
            world.ledger.open("alice", balance=config["market"]["coins"])

        LONELY = Scenario("lonely", {"run": {"seed": 0, "rounds": 0}, "market": {"coins": 5}}, build)
    '''))
    (tmp_path / "lonely.toml").write_text('[scenario]\nbuilder = "lonely_market:LONELY"\n[market]\ncoins = 7\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", str(tmp_path / "lonely.toml"), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[: out.rindex("}") + 1])
    assert printed["balances"]["alice"] == 7 and "metrics" not in printed
    with pytest.raises(ConfigError, match="--trust-builder"):  # not an installed scenario: its code is not run
        replay(tmp_path / "run")
    footer, recomputed, _ = replay(tmp_path / "run", trust_builder=True)
    assert recomputed == footer
