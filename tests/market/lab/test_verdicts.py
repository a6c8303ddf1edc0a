"""Verdict table: columns, plots and verdicts on a reduced table."""

import csv

from market.lab import verdicts


def test_reduced_table_writes_csv_and_heat_map_with_the_expected_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "ROWS", (
        ("pay-as-bid", "fast", "pay-as-bid", ("shade", "underbid")),
        ("MOSAIC (offset)", "ads", "mosaic", ("exaggerate",)),
        ("no payments", "ads", "mosaic-nopay", ("exaggerate",)),
    ))
    size = {"seeds": 4, "rounds": 80, "ad_seeds": 3, "ad_rounds": 40}
    cells = verdicts.table(size, workers=2)
    verdicts.write_csv(cells, tmp_path / "verdicts.csv")
    verdicts.plot_heat_map(cells, tmp_path / "verdicts.png")
    rows = list(csv.DictReader(open(tmp_path / "verdicts.csv")))
    assert set(["mechanism", "strategy", "gain", "ci_low", "ci_high", "verdict", "seeds", "rounds"]) <= set(rows[0])
    got = {(r["mechanism"], r["strategy"]): r["verdict"] for r in rows}
    assert got == {
        ("pay-as-bid", "shade"): "profitable",
        ("pay-as-bid", "underbid"): "loses",
        ("MOSAIC (offset)", "exaggerate"): "loses",
        ("no payments", "exaggerate"): "profitable",
    }
    assert rows[0]["seeds"] == "4" and rows[2]["rounds"] == "40"
    assert (tmp_path / "verdicts.png").stat().st_size > 0


def test_users_view_learners_raise_payments_and_rosa_pays_critical_prices(tmp_path):
    """Every provider a learner vs every provider truthful, same seeds: learners raise the user's payment per
    served query under every mechanism; ROSA pays critical prices, above what pay-as-bid learners charge."""
    rows = verdicts.user_view({"seeds": 8, "rounds": 300}, workers=2)
    assert [r.mechanism for r in rows] == [label for label, _ in verdicts.MARKET_MECHANISMS]
    for r in rows:
        assert r.pay_diff[1] > 0  # CI of learners minus truthful above 0
        assert r.pay_learners > r.pay_truthful
    assert rows[0].pay_minus_rosa is None
    for r in rows[1:]:
        assert r.pay_minus_rosa[2] < 0, r.mechanism  # CI of (this mechanism minus ROSA) below 0
    verdicts.write_user_csv(rows, tmp_path / "users.csv")
    got = list(csv.DictReader(open(tmp_path / "users.csv")))
    assert len(got) == 3 and got[0]["pay_minus_rosa"] == "" and float(got[1]["pay_minus_rosa_high"]) < 0


def test_profit_curves_put_the_best_multiplier_at_one_only_under_rosa(tmp_path):
    curves = verdicts.curves({"curve_seeds": 1, "curve_samples": 600})
    best = {c.mechanism: c.best for c in curves}
    assert best["rosa-trcm-ucb"] == 1.0
    assert best["pay-as-bid"] > 1.0 and best["first-price-ucb"] > 1.0
    from market.lab.curve import write_curves

    write_curves(curves, tmp_path)
    assert len(list(csv.DictReader(open(tmp_path / "curve.csv")))) == 3 * len(curves[0].multipliers)
    assert (tmp_path / "curve.png").stat().st_size > 0
