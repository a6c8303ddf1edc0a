"""bench scale: the fitted exponent is the log-log slope, a point reports what it measured or why it was skipped,
both log formats of one run are set side by side, and a small grid writes its JSON and PNG."""

from __future__ import annotations

import json
import math

import pytest

from market.lab.bench_scale import bench_scale, growth_exponent, log_size, measure_point


@pytest.mark.parametrize("k", [0.5, 1.0, 1.7])
def test_growth_exponent_is_the_power_of_an_exact_power_law(k: float) -> None:
    xs = [10.0, 100.0, 1000.0]
    assert growth_exponent(xs, [3.0 * x ** k for x in xs]) == pytest.approx(k, abs=1e-12)


def test_growth_exponent_needs_two_distinct_sizes() -> None:
    assert growth_exponent([10.0], [5.0]) is None
    assert growth_exponent([10.0, 10.0], [5.0, 6.0]) is None
    # least squares through three points off a line: the slope of the fit, not of any two points
    xs, ys = [1.0, math.e, math.e ** 2], [1.0, math.e ** 2, math.e ** 2]
    assert growth_exponent(xs, ys) == pytest.approx(1.0)


def test_a_point_reports_its_figures_next_to_the_plain_round() -> None:
    p = measure_point(1, 3, 20)
    assert p["rounds_closed"] == 20 and p["providers"] == 3
    assert p["log_bytes_per_round"] > 0 and p["peak_rss_mb"] > 0
    assert p["ratio_market_to_plain"] == pytest.approx(p["plain_asyncio_us_per_round"] / p["us_per_round"], rel=0.05)


def test_a_point_the_scenario_refuses_is_skipped_with_the_refusal() -> None:
    p = measure_point(1, 3, 20, mechanism="no-such-mechanism")
    assert "skipped" in p and "no-such-mechanism" in p["skipped"] and "rounds_closed" not in p


def test_log_size_puts_both_formats_of_one_run_side_by_side() -> None:
    row = log_size(4, 60)
    assert row["plain_bytes_per_round"] > 3 * row["compact_bytes_per_round"] > 0
    assert row["compact_mb_per_million_rounds"] == pytest.approx(row["compact_bytes_per_round"], rel=1e-3)
    assert row["ratio_compact_to_plain"] == pytest.approx(row["compact_bytes_per_round"] / row["plain_bytes_per_round"],
                                                          abs=1e-4)


@pytest.mark.slow  # four child processes: about 8 s of CPU, 30 s on a loaded machine
def test_a_small_grid_writes_json_and_png_with_both_exponents(tmp_path) -> None:
    result = bench_scale(out=tmp_path, users=(1, 20), providers=(3, 6), log_sizes=(3,), rounds=30)
    saved = json.loads((tmp_path / "scale.json").read_text())
    assert (tmp_path / "scale.png").stat().st_size > 0
    assert saved["scenario"] == "crowd" and saved["log"] == "compact" and not saved["skipped"]
    assert [p["users"] for p in saved["users_axis"]] == [1, 20]
    assert [p["providers"] for p in saved["providers_axis"]] == [3, 6]
    assert all(p["rounds_closed"] == 30 and p["log_bytes_per_round"] > 0 for p in saved["users_axis"])
    assert set(saved["growth_exponent"]) == {"providers", "users"}
    assert all(isinstance(e, float) for e in saved["growth_exponent"].values())
    exp = growth_exponent([p["providers"] for p in saved["providers_axis"]],
                          [p["us_per_round"] for p in saved["providers_axis"]])
    assert saved["growth_exponent"]["providers"] == pytest.approx(exp, abs=1e-3)
    assert result["files"] == [str(tmp_path / "scale.json"), str(tmp_path / "scale.png")]
