"""EGTA view: regret of a profile from a payoff table, its bootstrap CI, and a simulated small game."""

import numpy as np

from market.lab.egta import Game, format_games, play_game


def test_regret_is_the_best_unilateral_gain():
    pay = np.zeros((3, 2, 2, 2))
    pay[:, 1, 0, 0] = 0.5  # role 0 gains 0.5 by deviating to strategy 1
    pay[:, 0, 1, 1] = 0.2  # role 1 gains 0.2
    game = Game("toy", ("truthful", "shade"), pay)
    assert game.regret() == 0.5
    assert game.regret_ci() == (0.5, 0.5)
    assert Game("toy", ("truthful", "shade"), -pay).regret() == 0.0  # staying put is always an option


def test_pay_as_bid_game_has_positive_truthful_regret_with_a_ci_above_zero():
    game = play_game("pay-as-bid", ("truthful", "shade"), seeds=4, rounds=80)
    assert game.payoffs.shape == (4, 2, 2, 2)
    low, _ = game.regret_ci()
    assert game.regret() > 0 and low > 0
    assert "regret of the truthful profile" in format_games([game])
