"""Verdict table: columns, plots and verdicts on a reduced table."""

import csv

from market.experiments import verdicts


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
