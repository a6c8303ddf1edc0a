"""A log is data, not a program: a run directory whose header (or config.toml) names a builder module outside
the installed scenarios is refused by replay, verify, resume, report and inspect before anything is
imported (the refusal names the module and ``--trust-builder``); with ``--trust-builder`` it is imported.

The hostile module here writes a marker file when imported, then exports the quickstart's Scenario, so that
trusting it otherwise works.
"""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from market.lab.cli import main
from market.runtime.builders import BuilderRefused, installed_modules, logged_scenario, register_scenario
from market.runtime.config import ConfigError, dump_toml
from market.runtime.eventlog import EventLogWriter, iter_frames
from market.runtime.records import Header
from market.runtime.run import replay, run_scenario
from market.runtime.verify import verify_run
from scenarios import procurement

MODULE = "llm_market_marker_builder"


def with_builder(src: Path, dst: Path, spec: str) -> Path:
    """A copy of the run in ``src`` whose header and config.toml name ``spec`` as the builder, with the
    digest beside the log remade (the log is what the sender says it is: only its builder is in question)."""
    dst.mkdir(parents=True)
    writer = EventLogWriter(dst / "events.msgpack")
    for _, rec, _ in iter_frames(src / "events.msgpack"):
        if isinstance(rec, Header):
            config = json.loads(json.dumps(rec.config))
            config["scenario"]["builder"] = spec
            rec = replace(rec, config=config)
            (dst / "config.toml").write_text(dump_toml(config))
        writer.append(rec)
    writer.close()
    summary = json.loads((src / "summary.json").read_text())
    chain = writer.chain
    summary["log"] = {"digest": chain.digest, "frames": chain.frames, "bytes": chain.bytes, "keyed": chain.keyed}
    (dst / "summary.json").write_text(json.dumps(summary))
    (dst / "events.digest").write_text(chain.digest + "\n")
    return dst


@pytest.fixture
def hostile(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(a run directory naming the hostile module, the marker its import would write)."""
    marker = tmp_path / "imported.marker"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{MODULE}.py").write_text(textwrap.dedent(f'''
        from pathlib import Path
        Path({str(marker)!r}).write_text("this module ran")
        from scenarios.procurement import SCENARIO
    '''))
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    run_scenario("quickstart", rounds=120, out=tmp_path / "honest", overrides=["run.checkpoint_every=50"])
    return with_builder(tmp_path / "honest", tmp_path / "run", f"{MODULE}:SCENARIO"), marker


def _refused(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert MODULE in err and "--trust-builder" in err and "not imported" in err
    return err


@pytest.mark.parametrize("command", [
    ["replay", "{run}"],
    ["verify", "{run}"],
    ["verify", "{run}", "--resimulate"],
    ["run", "quickstart", "--resume", "{run}"],
    ["report", "{run}"],
    ["inspect", "{run}", "--round", "3"],
])
def test_a_builder_outside_the_installed_scenarios_is_refused_without_importing_it(hostile, command, capsys):
    run, marker = hostile
    before = (run / "events.msgpack").read_bytes()
    assert main([a.format(run=run) for a in command]) == 2
    _refused(capsys)
    assert not marker.exists() and MODULE not in sys.modules
    assert (run / "events.msgpack").read_bytes() == before  # --resume did not cut the log either


def test_the_functions_refuse_it_too(hostile):
    run, marker = hostile
    for call in (lambda: replay(run), lambda: verify_run(run), lambda: logged_scenario(f"{MODULE}:SCENARIO")):
        with pytest.raises(BuilderRefused, match=MODULE):
            call()
    assert not marker.exists()


@pytest.mark.parametrize("command", [["replay", "{run}"], ["verify", "{run}"], ["verify", "{run}", "--resimulate"]])
def test_trust_builder_imports_it(hostile, command, capsys):
    run, marker = hostile
    code = main([*[a.format(run=run) for a in command], "--trust-builder"])
    out = capsys.readouterr().out
    assert marker.exists() and code == 0, out  # it exports the quickstart's Scenario: every check holds


def test_a_trusted_builder_that_cannot_be_imported_is_a_one_line_error(finished_copy, capsys):
    for command in (["replay", str(finished_copy), "--trust-builder"], ["verify", str(finished_copy),
                                                                          "--trust-builder"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot import 'llm_market_no_such_module'" in err


@pytest.fixture
def finished_copy(tmp_path) -> Path:
    run_scenario("quickstart", rounds=30, out=tmp_path / "honest")
    return with_builder(tmp_path / "honest", tmp_path / "run", "llm_market_no_such_module:SCENARIO")


@pytest.mark.parametrize("spec", ["os:system", "subprocess:run", "scenarios:anything", "market.lab.cli:main"])
def test_any_module_but_an_installed_scenario_is_refused(spec):
    with pytest.raises(BuilderRefused, match="--trust-builder"):
        logged_scenario(spec)


def test_installed_scenarios_resolve_without_the_flag_and_a_plug_in_can_register(monkeypatch):
    assert {"scenarios.procurement", "scenarios.ads", "scenarios.selection"} <= installed_modules()
    assert logged_scenario("scenarios.procurement:build") is procurement.SCENARIO
    monkeypatch.setattr("market.runtime.builders._REGISTERED", {})
    register_scenario("my_plugin.markets:MINE", procurement.SCENARIO)
    assert logged_scenario("my_plugin.markets:MINE") is procurement.SCENARIO
    with pytest.raises(ConfigError, match="expected a Scenario"):
        register_scenario("my_plugin.markets:OTHER", object())  # type: ignore[arg-type]


def test_run_of_a_file_the_user_gives_still_imports_its_builder(tmp_path, monkeypatch):
    (tmp_path / "mine_market.py").write_text("from scenarios.procurement import SCENARIO\n")
    (tmp_path / "mine.toml").write_text('[scenario]\nbuilder = "mine_market:SCENARIO"\n[run]\nrounds = 10\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mine_market", raising=False)
    assert main(["run", str(tmp_path / "mine.toml"), "--out", str(tmp_path / "run")]) == 0
