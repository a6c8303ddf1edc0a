"""bench scale: the fitted exponent is the log-log slope, a point reports what it measured or why it was skipped."""

from __future__ import annotations

import math

import pytest

from market.lab.bench_scale import growth_exponent, measure_point


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
