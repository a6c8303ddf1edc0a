"""Smoke test of the C2MAB-V / TI-UCB reproduction at tiny sizes."""

from market.experiments.selection import run


def test_selection_experiment_writes_tables_and_figures(tmp_path):
    out = run(tmp_path, quick=True, horizon=120, seeds=1)
    for name in ("c2mabv_curves.csv", "c2mabv_budget_sweep.csv", "c2mabv_summary.csv", "tiucb_curves.csv",
                 "tiucb_summary.csv", "tiucb_window_sweep.csv", "c2mabv_regret_violation.png",
                 "tiucb_regret.png", "tiucb_window_sweep.png", "c2mabv_budget_sweep.png"):
        assert (tmp_path / name).stat().st_size > 0
    cucb = [r for r in out["c2mabv_summary"] if r[1] == "cucb"]
    c2 = [r for r in out["c2mabv_summary"] if r[1] == "c2mabv"]
    assert len(cucb) == len(c2) == 3
    assert all(a[4] >= b[4] for a, b in zip(cucb, c2))  # budget-blind CUCB violates at least as much
