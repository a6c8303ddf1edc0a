"""verify_run: every built-in market's run passes every check (also resumed, and run again), the run's files
are compared with its log, and what is not a run is refused in one line (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from market.lab.cli import main
from market.runtime.checkpoint import last_checkpoint
from market.runtime.config import ConfigError
from market.runtime.eventlog import EventLogWriter, iter_frames
from market.runtime.records import Footer
from market.runtime.run import resume_scenario, run_scenario
from market.runtime.verify import CheckResult, UnusableRun, VerifyReport, verify_run

NAMES = ["log", "chain", "transfers", "money", "rounds", "mechanism", "summary", "summary.json", "config.toml"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "run"
    run_scenario("quickstart", rounds=120, out=out, overrides=["run.checkpoint_every=40"])
    return out


@pytest.fixture
def copy(quick, tmp_path) -> Path:
    return Path(shutil.copytree(quick, tmp_path / "copy"))


@pytest.mark.parametrize(("scenario", "sets"), [
    ("quickstart", []),
    ("faults", []),
    ("hostile", []),
    ("ads", []),
    ("ads", ["mechanism.name=mosaic-rochet"]),
    ("multi-llm", []),
    ("finetune", []),
    ("quickstart", ["mechanism.name=rosa-trcm-ucb"]),
    ("quickstart", ["market.user_budget=1.0"]),  # the user runs out: void rounds, refused payments
])
def test_every_built_in_market_passes_every_check_and_its_resimulation(scenario, sets, tmp_path):
    run_scenario(scenario, rounds=80, out=tmp_path, overrides=sets)
    report = verify_run(tmp_path, resimulate=True)
    assert report.ok, [c.line() for c in report.failed()]
    assert [c.name for c in report.checks] == [*NAMES, "resimulate"]


def test_a_resumed_run_passes_and_is_byte_for_byte_the_uninterrupted_one(quick, tmp_path):
    run = Path(shutil.copytree(quick, tmp_path / "run"))
    cut = last_checkpoint(run / "events.msgpack").offset  # killed mid-frame, after its last checkpoint
    data = (run / "events.msgpack").read_bytes()
    (run / "events.msgpack").write_bytes(data[:cut + 200])
    assert not verify_run(run).ok  # torn, unfinished: the log check says so
    resume_scenario(run)
    assert verify_run(run, resimulate=True).ok


def test_summary_json_and_config_toml_are_compared_with_the_log(copy):
    summary = json.loads((copy / "summary.json").read_text())
    assert "digest" in summary.pop("log")  # the log's digest: not a footer key, checked by "chain"
    assert verify_run(copy).ok
    summary["log"] = json.loads((copy / "summary.json").read_text())["log"]
    summary["rounds"] += 1
    (copy / "summary.json").write_text(json.dumps(summary))
    text = (copy / "config.toml").read_text()
    (copy / "config.toml").write_text(text.replace('name = "myerson"', 'name = "pay-as-bid"'))
    failed = {c.name: c.detail for c in verify_run(copy).failed()}
    assert set(failed) == {"summary.json", "config.toml"}
    assert "'rounds' is 121, the footer says 120" in failed["summary.json"]
    assert "mechanism.name: config.toml says 'pay-as-bid', the header says 'myerson'" in failed["config.toml"]
    (copy / "summary.json").unlink()
    (copy / "config.toml").write_text("not toml [")
    failed = {c.name: c.detail for c in verify_run(copy).failed()}
    assert "is missing" in failed["summary.json"] and "unreadable" in failed["config.toml"]


def test_a_footer_that_is_not_what_the_records_add_up_to_fails_summary_and_money(copy):
    records = [rec for _, rec, _ in iter_frames(copy / "events.msgpack")]
    footer = records[-1]
    assert isinstance(footer, Footer)
    summary = json.loads(json.dumps(footer.summary))
    summary["balances"]["user"] += 5
    w = EventLogWriter(copy / "events.msgpack")
    for rec in records[:-1]:
        w.append(rec)
    w.append(Footer(summary))
    w.close()
    failed = {c.name: c.detail for c in verify_run(copy).failed()}
    assert {"summary", "money", "summary.json"} <= set(failed)
    assert failed["money"].startswith("the footer, frame ")


def test_a_torn_or_unfinished_log_fails_the_log_check_and_nothing_else_is_claimed(copy, capsys):
    data = (copy / "events.msgpack").read_bytes()
    (copy / "events.msgpack").write_bytes(data[: len(data) // 2])
    report = verify_run(copy)
    assert [c.name for c in report.checks] == ["log"] and "torn" in report.checks[0].detail
    assert main(["verify", str(copy)]) == 1
    assert "log: FAILED: frame " in capsys.readouterr().out
    assert main(["replay", str(copy)]) == 1
    assert "the run did not finish" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["missing", "empty dir", "file", "empty log", "not a log"])
def test_what_is_not_a_run_is_a_one_line_error_with_exit_2(make, tmp_path, capsys):
    target = tmp_path / "target"
    if make == "empty dir":
        target.mkdir()
    elif make == "file":
        target.write_text("hello")
    elif make in ("empty log", "not a log"):
        target.mkdir()
        (target / "events.msgpack").write_bytes(b"" if make == "empty log" else b"[run]\nseed = 0\n")
    with pytest.raises(UnusableRun):
        verify_run(target)
    for command in (["verify"], ["replay"], ["run", "quickstart", "--resume"]):
        assert main([*command, str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and str(target) in err


def test_the_chain_is_checked_against_a_given_digest_and_the_copies_beside_the_log(copy, capsys):
    digest = (copy / "events.digest").read_text().strip()
    assert verify_run(copy, digest=digest).ok
    assert main(["verify", str(copy), "--digest", digest.upper()]) == 0
    failed = {c.name: c.detail for c in verify_run(copy, digest="ab" * 32).failed()}
    assert set(failed) == {"chain"} and "--digest says 'abab" in failed["chain"]
    with pytest.raises(ConfigError, match="expected the 64 hex digits"):
        verify_run(copy, digest="xyz")
    (copy / "events.digest").write_text("cd" * 32 + "\n")  # a copy beside the log rewritten alone
    failed = {c.name: c.detail for c in verify_run(copy).failed()}
    assert set(failed) == {"chain"} and "events.digest says 'cdcd" in failed["chain"]


def test_a_keyed_run_needs_its_key(tmp_path, capsys):
    (tmp_path / "key").write_bytes(b"secret")
    (tmp_path / "other").write_bytes(b"not the secret")
    assert main(["run", "quickstart", "--rounds", "30", "--out", str(tmp_path / "run"),
                 "--key-file", str(tmp_path / "key")]) == 0
    assert "keyed" in capsys.readouterr().out
    run = tmp_path / "run"
    assert verify_run(run, key=b"secret").ok
    assert main(["replay", str(run), "--key-file", str(tmp_path / "key")]) == 0
    for key, why in ((None, "give its key"), (b"not the secret", "keyed chain is")):
        failed = {c.name: c.detail for c in verify_run(run, key=key).failed()}
        assert set(failed) == {"chain"} and why in failed["chain"]
    assert main(["verify", str(run), "--key-file", str(tmp_path / "other")]) == 1
    assert main(["verify", str(run), "--key-file", str(tmp_path / "nowhere")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_cli_prints_one_line_per_check(copy, capsys):
    assert main(["verify", str(copy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == NAMES
    assert all(": ok (" in line for line in lines[:-1]) and lines[-1].startswith("verify OK")


def test_a_report_is_ok_only_with_checks_and_all_passed():
    assert not VerifyReport(Path(".")).ok
    report = VerifyReport(Path("."), [CheckResult("a", True, "fine"), CheckResult("b", False, "broken")])
    assert not report.ok and [c.name for c in report.failed()] == ["b"]
    assert report.checks[1].line() == "b: FAILED: broken" and report.checks[0].line() == "a: ok (fine)"
