"""Smoke test of the MOSAIC reproduction at a tiny size: files written, columns sane, context helps at n = 2."""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from market.lab.repro.mosaic import COLUMNS, run, simulate


def test_tiny_run_writes_csv_and_png(tmp_path: pathlib.Path):
    summary = run(tmp_path, quick=True, n_values=(2,), m_values=(1, 4, 20), n_queries=3, sets=60)
    rows = list(csv.DictReader((tmp_path / "mosaic.csv").open()))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 2 * 3
    assert (tmp_path / "mosaic_convergence.png").stat().st_size > 1000
    assert set(summary["claims"]) == {2}
    for r in rows:
        assert float(r["revenue"]) >= -1e-12
        assert 0.0 <= float(r["mentioned"]) <= 1.0
        if r["M"] == "1":
            assert abs(float(r["revenue"])) < 1e-12  # one candidate: no competition, no payment
    assert summary["claims"][2]["context4_beats_baseline20"]


def test_runs_are_deterministic_and_fresh_counterfactual_works():
    kwargs = dict(n_values=(2,), m_values=(3,), n_queries=2, sets=30)
    a = simulate(**kwargs)
    b = simulate(**kwargs)
    assert a == b
    fresh = simulate(counterfactual="fresh", **kwargs)
    assert [r["revenue"] for r in fresh] == [r["revenue"] for r in a]
    assert all(np.isfinite(r["reward_gain"]) for r in fresh)
