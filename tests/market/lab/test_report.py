"""Reports: confidence intervals, sweep tables and figures, single-run reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import structlog
from scipy import stats

from market.lab.cli import main
from market.lab.report import mean_ci, report
from market.runtime.config import ConfigError
from market.runtime.run import run_scenario


@pytest.fixture(autouse=True)
def default_logging():
    """``main`` points structlog at this test's captured stderr; later tests must not write to it."""
    yield
    structlog.reset_defaults()


PNG = b"\x89PNG\r\n\x1a\n"


def test_mean_ci_is_the_student_t_interval():
    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2)
    means, halves = mean_ci(np.array([[1.0, 1.0], [0.0, 2.0]]))
    assert list(means) == [1.0, 1.0] and halves[0] == 0.0 and halves[1] > 0


def test_mean_ci_of_one_sample_has_no_width():
    mean, half = mean_ci([3.0])
    assert mean == 3.0 and np.isnan(half)


def test_ci_covers_the_true_mean_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    samples = rng.normal(1.0, 2.0, (4000, 5))
    mean, half = mean_ci(samples)
    coverage = np.mean(np.abs(mean - 1.0) <= half)
    assert 0.94 <= coverage <= 0.96


def write_result(out: Path, name: str, point: list, seed_index: int, metrics: dict) -> None:
    (out / "results").mkdir(parents=True, exist_ok=True)
    rec = {"scenario": "quickstart", "fixed": {}, "point": point, "seed_index": seed_index, "seed": seed_index,
           "metrics": metrics, "package_version": "0"}
    (out / "results" / f"{name}.json").write_text(json.dumps(rec))


def test_sweep_report_tables_means_with_cis_and_draws_one_figure_per_metric(tmp_path):
    values = {(2, "a"): [1.0, 2.0, 3.0], (2, "b"): [5.0, 5.0, 5.0],
              (4, "a"): [2.0, 4.0, 6.0], (4, "b"): [7.0, 8.0, 9.0]}
    for (n, mech), vs in values.items():
        for i, v in enumerate(vs):
            write_result(tmp_path, f"{n}{mech}-seed{i}", [["market.providers", n], ["mechanism.name", mech]], i,
                         {"user_utility": v, "rounds": 10.0})
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "x.json").write_text("{}")
    md = report(tmp_path).read_text()
    _, half = mean_ci([2.0, 4.0, 6.0])
    assert f"| 4 | a | 3 | 10 ± 0 | 4 ± {half:.2g} |" in md  # metrics in name order
    assert "| 2 | b | 3 | 10 ± 0 | 5 ± 0 |" in md
    assert "12 runs over 4 grid points; 1 failed" in md
    for metric in ("user_utility", "rounds"):
        assert (tmp_path / f"{metric}.png").read_bytes().startswith(PNG)


def test_sweep_report_handles_a_categorical_first_key(tmp_path):
    for mech in ("myerson", "pay-as-bid"):
        for i in range(2):
            write_result(tmp_path, f"{mech}-{i}", [["mechanism.name", mech]], i, {"user_spend": float(i)})
    md = report(tmp_path).read_text()
    assert "| myerson | 2 |" in md
    assert (tmp_path / "user_spend.png").read_bytes().startswith(PNG)


def test_run_report_lists_summary_and_scenario_metrics(tmp_path):
    run_scenario("quickstart", rounds=30, out=tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"| rounds | {summary['rounds']} |" in md
    assert "| user_utility |" in md and "| provider_utility | value |" in md
    assert (tmp_path / "wins.png").read_bytes().startswith(PNG)
    assert (tmp_path / "provider_utility.png").read_bytes().startswith(PNG)


def test_report_refuses_a_directory_that_is_neither_run_nor_sweep(tmp_path):
    with pytest.raises(ConfigError, match="neither a sweep directory"):
        report(tmp_path)


def test_sweep_report_counts_only_the_tasks_of_the_current_spec(tmp_path):
    from market.lab.sweep import run_sweep

    text = """
[sweep]
scenario = "quickstart"
seeds = 2
metrics = [{metrics}]
[fixed]
"run.rounds" = 10
[grid]
"market.providers" = [2]
"""
    spec = tmp_path / "spec.toml"
    spec.write_text(text.format(metrics='"rounds"'))
    run_sweep(spec, tmp_path / "out", workers=1)
    spec.write_text(text.format(metrics='"rounds", "user_spend"'))  # a new metric: every task runs again
    again = run_sweep(spec, tmp_path / "out", workers=1)
    assert (again.done, again.skipped) == (2, 0)
    assert len(list((tmp_path / "out" / "results").glob("*.json"))) == 4
    md = report(tmp_path / "out").read_text()
    assert "2 runs over 1 grid points" in md and "| 2 | 2 | 10 ± 0 |" in md
