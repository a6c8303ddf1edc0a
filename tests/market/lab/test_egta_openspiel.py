"""EGTA payoff table exported to OpenSpiel: NashConv and the role gains agree with egta's own regret;
alpha-rank puts its mass where the dominant profile is; the CLI writes openspiel.json."""

import json

import numpy as np
import pytest

from market.lab.cli import main
from market.lab.egta import Game, openspiel_view, play_game

pytest.importorskip("pyspiel")


def own_gains(game: Game) -> tuple[float, float]:
    pay = game.mean_payoffs()
    return float(max((pay[:, 0, 0] - pay[0, 0, 0]).max(), 0)), float(max((pay[0, :, 1] - pay[0, 0, 1]).max(), 0))


def test_nash_conv_matches_egta_regret_on_a_toy_game():
    pay = np.zeros((3, 2, 2, 2))
    pay[:, 1, 0, 0] = 0.5
    pay[:, 0, 1, 1] = 0.2
    view = openspiel_view(Game("toy", ("truthful", "shade"), pay))
    assert view.improvements == pytest.approx((0.5, 0.2), abs=1e-12)
    assert view.nash_conv == pytest.approx(0.7, abs=1e-12)
    assert max(view.improvements) == pytest.approx(Game("toy", ("truthful", "shade"), pay).regret(), abs=1e-12)
    # shading dominates for both roles here except at shade/shade, where nobody moves
    assert view.alpha_rank["truthful/truthful"] < 0.01 and sum(view.alpha_rank.values()) == pytest.approx(1.0)


def test_nash_conv_matches_egta_regret_on_a_simulated_pay_as_bid_game():
    game = play_game("pay-as-bid", ("truthful", "shade", "underbid"), seeds=3, rounds=60)
    view = openspiel_view(game)
    assert view.improvements == pytest.approx(own_gains(game), abs=1e-12)
    assert view.nash_conv == pytest.approx(sum(own_gains(game)), abs=1e-12)
    assert max(view.improvements) == pytest.approx(game.regret(), abs=1e-12) and game.regret() > 0
    assert max(view.alpha_rank, key=view.alpha_rank.get) == "shade/shade"


def test_egta_cli_writes_openspiel_json(tmp_path, capsys):
    code = main(["egta", "--mechanism", "pay-as-bid", "--strategy", "truthful", "--strategy", "shade", "--seeds", "2",
                 "--rounds", "40", "--workers", "1", "--openspiel", "--out", str(tmp_path)])
    assert code == 0 and "NashConv of truthful/truthful" in capsys.readouterr().out
    views = json.loads((tmp_path / "openspiel.json").read_text())
    assert views[0]["mechanism"] == "pay-as-bid" and set(views[0]["alpha_rank"]) == {
        "truthful/truthful", "truthful/shade", "shade/truthful", "shade/shade"}
    assert (tmp_path / "egta.csv").exists()
