"""Careless or hostile input to ``llm-market run``: each case once gave a traceback, a hang or a run that
quietly did nothing (or accepted a nonsense value). Each is now refused before anything is built: exit 2 and
exactly one line on stderr naming the key (or the argument), the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from market.lab.cli import main
from market.runtime.schema import MAX_SEED


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command in-process; it must exit 2 with one line on stderr (returned), and no traceback."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argument errors leave through argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def run(tmp_path: Path, *args: str) -> list[str]:
    return ["run", *args, "--rounds", "2", "--out", str(tmp_path / "out")]


def test_a_scenario_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[scenario]\nbuilder = "scenarios.procurement:build"\ndescription = "caf\xe9"\n'.encode("latin-1"))
    line = refusal(run(tmp_path, str(path)), capsys)
    assert line.startswith("config error: scenario: ") and "latin1.toml" in line and "not UTF-8" in line


def test_a_directory_as_the_scenario(tmp_path, capsys):
    line = refusal(run(tmp_path, str(tmp_path)), capsys)
    assert line.startswith("config error: scenario: ") and str(tmp_path) in line and "not a file" in line


def test_a_negative_seed(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--seed", "-1"), capsys)
    assert f"argument --seed: got -1, expected an integer in [0, {MAX_SEED}]" in line


def test_a_seed_beyond_64_bits(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--seed", str(2**70)), capsys)
    assert f"argument --seed: got {2**70}, expected an integer in [0, {MAX_SEED}]" in line


@pytest.mark.parametrize("value", ["-1", str(2**70)])
def test_a_bad_seed_in_the_file_or_set(tmp_path, capsys, value):
    line = refusal(run(tmp_path, "quickstart", "--set", f"run.seed={value}"), capsys)
    assert line == f"config error: run.seed: got {value}, expected an integer in [0, {MAX_SEED}]"


def test_a_negative_user_budget(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--set", "market.user_budget=-1"), capsys)
    assert line == "config error: market.user_budget: got -1.0, expected a finite number in [0, 1e+09]"


def test_a_user_budget_beyond_the_ledger(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--set", "market.user_budget=1e300"), capsys)
    assert line == "config error: market.user_budget: got 1e+300, expected a finite number in [0, 1e+09]"


@pytest.mark.parametrize("table", ["market", "faults"])
def test_a_negative_latency(tmp_path, capsys, table):
    line = refusal(run(tmp_path, "quickstart", "--set", f"{table}.latency=-1"), capsys)
    assert line == f"config error: {table}.latency: got -1.0, expected a finite number in [0, 1e+06]"


@pytest.mark.parametrize("table", ["market", "faults"])
def test_a_negative_jitter(tmp_path, capsys, table):
    line = refusal(run(tmp_path, "quickstart", "--set", f"{table}.jitter=-0.5"), capsys)
    assert line == f"config error: {table}.jitter: got -0.5, expected a finite number in [0, 1e+06]"


@pytest.mark.parametrize("table", ["market", "faults"])
def test_a_loss_above_one(tmp_path, capsys, table):
    line = refusal(run(tmp_path, "quickstart", "--set", f"{table}.loss=1.5"), capsys)
    assert line == f"config error: {table}.loss: got 1.5, expected a finite number in [0, 1]"


def test_an_endless_bid_window(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--set", "market.bid_window=1e300"), capsys)
    assert line == "config error: market.bid_window: got 1e+300, expected a finite number in [1e-06, 1e+06]"


def test_contexts_too_long_for_the_wire(tmp_path, capsys):
    # d = 5000 once ran 0 rounds and exited 0: every query frame was refused (at most 4096 context entries)
    line = refusal(run(tmp_path, "quickstart", "--set", "market.dim=5000"), capsys)
    assert line == "config error: market.dim: got 5000, expected an integer in [1, 512]"


def test_a_negative_checkpoint_period(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--set", "run.checkpoint_every=-1"), capsys)
    assert line == "config error: run.checkpoint_every: got -1, expected an integer in [0, 10000000]"


def test_a_negative_feedback_timeout(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--set", "market.feedback_timeout=-1"), capsys)
    assert line == "config error: market.feedback_timeout: got -1.0, expected a finite number in [1e-06, 1e+06]"


def test_a_negative_flood(tmp_path, capsys):
    line = refusal(run(tmp_path, "hostile", "--set", "hostile.flood=-1"), capsys)
    assert line == "config error: hostile.flood: got -1, expected an integer in [0, 10000]"


def test_the_same_rule_from_a_file_as_from_set(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text('[scenario]\nbuilder = "scenarios.procurement:build"\n\n[market]\nloss = nan\n')
    line = refusal(run(tmp_path, str(path)), capsys)
    assert line == "config error: market.loss: got nan, expected a finite number in [0, 1]"


def test_a_hostile_period_that_would_flood_every_round(tmp_path, capsys):
    line = refusal(run(tmp_path, "hostile", "--set", "hostile.period=0.01"), capsys)
    assert line.startswith("config error: hostile.period: got 0.01, expected a period that keeps the hostile agents "
                           "under 10000 frames per round")


@pytest.mark.parametrize("scenario", ["ads", "multi-llm", "finetune"])
def test_the_other_markets_refuse_a_loss_above_one_too(tmp_path, capsys, scenario):
    line = refusal(run(tmp_path, scenario, "--set", "market.loss=1.5"), capsys)
    assert line == "config error: market.loss: got 1.5, expected a finite number in [0, 1]"


def test_a_value_with_a_line_break_stays_on_one_line(tmp_path, capsys):
    line = refusal(run(tmp_path, "quickstart", "--set", 'quality.model="linear\\nmmlu"'), capsys)
    assert line == "config error: quality.model: got 'linear\\nmmlu', expected one of ['linear', 'mmlu']"


def test_a_sweep_file_given_to_run_says_it_is_a_sweep_and_how_to_run_it(capsys):
    assert main(["run", "quickstart_sweep"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quickstart_sweep.toml is a sweep, not a scenario" in err
    assert "llm-market sweep " in err and "--out DIR" in err
