"""The scripting API: ``market.run`` is the CLI's code path (same log bytes), its run directories verify,
its result carries the scenario's metrics and each provider's utility, and the README's example runs."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import market
from market.lab.cli import main
from market.runtime.config import ConfigError
from market.runtime.verify import verify_run

REPO = Path(__file__).resolve().parents[3]


def test_a_scripted_run_writes_the_bytes_the_cli_writes_and_verifies(tmp_path):
    result = market.run("quickstart", seed=3, rounds=60, overrides={"market.providers": 3}, out=tmp_path / "api")
    assert main(["run", "quickstart", "--seed", "3", "--rounds", "60", "--set", "market.providers=3",
                 "--out", str(tmp_path / "cli")]) == 0
    assert result.log == tmp_path / "api" / "events.msgpack"
    assert result.log.read_bytes() == (tmp_path / "cli" / "events.msgpack").read_bytes()
    assert verify_run(tmp_path / "api").ok
    assert result.summary["rounds"] == 60 and result.config["market"]["providers"] == 3
    assert "regret" in result.summary["metrics"]  # the scenario's observers ran


def test_provider_utility_is_payments_minus_serving_costs(tmp_path):
    result = market.run("quickstart", rounds=80, overrides=["mechanism.name=pay-as-bid", "market.providers=3",
                                                            "strategies.default=\"shade\""])
    assert result.log is None  # out=None: nothing written
    assert sorted(result.provider_utility) == ["provider-0", "provider-1", "provider-2"]
    for p, utility in result.provider_utility.items():
        assert utility == pytest.approx(result.metrics[f"provider_utility.{p}"], abs=1e-9)
    assert sum(result.provider_utility.values()) > 0  # shading under pay-as-bid earns a margin
    assert set(result.metrics) >= {"user_utility", "served_fraction"}


def test_bad_overrides_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="overrides: got 'market.providers=3'"):
        market.run("quickstart", overrides="market.providers=3")
    with pytest.raises(ConfigError, match=r"overrides: market.providers: got \{1\}"):
        market.run("quickstart", overrides={"market.providers": {1}})
    with pytest.raises(ConfigError, match="market.providers: got 0"):
        market.run("quickstart", overrides={"market.providers": 0})


def test_import_market_stays_light():
    code = "import sys, market; assert 'market.runtime' not in sys.modules; assert callable(market.run); " \
           "assert 'market.runtime.run' in sys.modules; print(market.RunResult.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "RunResult", out.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        market.nope  # noqa: B018


def test_the_example_script_runs_and_its_runs_verify(tmp_path, capsys):
    example = runpy.run_path(str(REPO / "scenarios" / "examples" / "scripting.py"))
    results = example["main"](tmp_path, rounds=50)
    assert set(results) == {"myerson", "pay-as-bid", "rosa-trcm-ucb"}
    for name, result in results.items():
        assert result.log == tmp_path / name / "events.msgpack" and verify_run(tmp_path / name).ok
    assert len(capsys.readouterr().out.splitlines()) == 3
