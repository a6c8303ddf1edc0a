"""The default scenario end to end: deterministic logs, replay agrees with the footer, clear config errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from market.lab.cli import main
from market.runtime.eventlog import read_log
from market.runtime.records import LOG_SCHEMA, Header, LedgerTransfer
from market.runtime.run import replay


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert main(["run", "quickstart", "--seed", str(seed), "--out", str(base / name)]) == 0
    return base


def test_same_seed_gives_a_byte_identical_event_log(runs):
    a = (runs / "a" / "events.msgpack").read_bytes()
    assert a == (runs / "b" / "events.msgpack").read_bytes()
    assert a != (runs / "c" / "events.msgpack").read_bytes()


def test_run_dir_holds_log_summary_and_resolved_config(runs):
    summary = json.loads((runs / "a" / "summary.json").read_text())
    assert summary["rounds"] == 1000
    text = (runs / "a" / "config.toml").read_text()
    assert 'name = "quickstart"' in text and "seed = 7" in text
    header = read_log(runs / "a" / "events.msgpack").records[0]
    assert isinstance(header, Header) and header.seed == 7 and header.config["run"]["seed"] == 7
    assert header.schema == LOG_SCHEMA


def test_replay_recomputes_ledger_and_summary_from_the_log_alone(runs):
    footer, recomputed, torn = replay(runs / "a")
    assert torn is None
    assert recomputed == footer
    assert sum(recomputed["balances"].values()) == 0
    assert main(["replay", str(runs / "a")]) == 0


def test_replay_detects_a_tampered_log(runs, tmp_path):
    contents = read_log(runs / "a" / "events.msgpack")
    from market.runtime.eventlog import EventLogWriter

    w = EventLogWriter(tmp_path / "events.msgpack")
    for rec in contents.records:
        if isinstance(rec, LedgerTransfer) and rec.memo == "payment":
            rec = replace(rec, amount_minor=rec.amount_minor + 1)  # skim one minor unit
        w.append(rec)
    w.close()
    assert main(["replay", str(tmp_path)]) == 1


def test_replay_reports_a_torn_log(runs, tmp_path, capsys):
    data = (runs / "a" / "events.msgpack").read_bytes()
    (tmp_path / "events.msgpack").write_bytes(data[: len(data) // 2])
    assert main(["replay", str(tmp_path)]) == 1
    assert "torn" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "market.providers=many"], "market.providers: got 'many'"),
        (["--set", "market.colour=1"], "market.colour: unknown key"),
        (["--set", "market.providers=0"], "market.providers: got 0"),
        (["--set", "mechanism.name=nonsense"], "mechanism.name: got 'nonsense', expected one of ["),
        (["--set", "mechanism.name=rosa-trcm-ucb", "--set", "mechanism.params.muu=0.1"],
         "mechanism.params.muu: not a parameter of mechanism 'rosa-trcm-ucb'; accepted: ['alpha', "),
        (["--set", "mechanism.params.theta=[1.0]"], "mechanism.params.theta: not a parameter of mechanism 'myerson'; "
                                                    "accepted: ['reserve']"),
        (["--set", "novalue"], "expected key=value"),
    ],
)
def test_config_errors_name_the_key_and_value(args, needle, capsys, tmp_path):
    assert main(["run", "quickstart", "--out", str(tmp_path / "x"), *args]) == 2
    assert needle in capsys.readouterr().err


def test_unknown_scenario_and_broken_file_are_clear(tmp_path, capsys):
    assert main(["run", "no-such-scenario"]) == 2
    assert "unknown scenario 'no-such-scenario'" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\nbuilder = 1")
    assert main(["run", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_list_names_scenarios_mechanisms_and_strategies(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "myerson" in out and "truthful" in out
    scenarios, sweeps = out.split("sweeps")[0], out.split("sweeps")[1].split("mechanisms")[0]
    assert "quickstart_sweep" not in scenarios and "quickstart_sweep" in sweeps
