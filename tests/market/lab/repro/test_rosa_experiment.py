"""ROSA reproduction at tiny sizes: files written, sublinear regret, truthful bid best, resampling bound."""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from market.lab.repro.rosa import Setup, fit_slope, run, simulate


def test_regret_grows_sublinearly_with_mu_one_over_root_t():
    # spec T22: log-log slope <= 0.6 for Gaussian rewards, mean over 2 seeds
    setup = Setup(n=3, d=3)
    horizons = np.array([200, 600, 2000])
    regret = np.mean([[simulate(setup, int(T), T ** -0.5, "gaussian", s).regret.sum() for T in horizons]
                      for s in range(2)], axis=0)
    assert fit_slope(horizons, regret) <= 0.6


def test_welfare_benchmark_regret_is_sublinear_too():
    setup = Setup(n=3, d=3, surplus="welfare")
    horizons = np.array([200, 600, 2000])
    regret = np.mean([[simulate(setup, int(T), T ** -0.5, "exponential", s).regret.sum() for T in horizons]
                      for s in range(2)], axis=0)
    assert fit_slope(horizons, regret) <= 0.6


def test_runs_are_deterministic():
    a = simulate(Setup(n=3, d=2), 200, 0.1, "exponential", 4)
    b = simulate(Setup(n=3, d=2), 200, 0.1, "exponential", 4)
    assert np.array_equal(a.regret, b.regret) and np.array_equal(a.paid, b.paid)


def test_quick_run_writes_tables_and_figures(tmp_path: pathlib.Path):
    summary = run(tmp_path, quick=True)
    for name in ("rosa_regret_vs_T", "rosa_mu_sweep", "rosa_utility_vs_bid"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert len(list(csv.DictReader((tmp_path / f"{name}.csv").open()))) > 0
    assert summary["slopes"]["gaussian"]["mu=T^-1/2"] <= 0.6
    for cost, best in summary["best_bid_by_cost"].items():
        assert abs(best - cost) < 1e-9  # truthful bid maximises expected utility under ROSA
        assert summary["pay_as_bid_best_bid_by_cost"][cost] > cost  # but not under pay-as-bid
    for changed, modified, bound in summary["changed_by_mu"].values():
        assert changed <= modified <= 1.0
        assert abs(modified - bound) < 4 * np.sqrt(bound * (1 - bound) / 3000)  # 2 seeds x 1500 rounds
