"""Provider bidding strategies: clipping, shading, learners, coin predictor, ring, registry and scenario use."""

import numpy as np
import pytest

from agents.strategies import (
    STRATEGIES,
    BidderFacts,
    BidFeedback,
    CoinPredictor,
    ExponentialWeights,
    GridUCB,
    History,
    Observation,
    RotationRing,
    Shade,
    Truthful,
    build_strategy,
)
from market.core.mechanisms.leaky import public_coins
from market.runtime.config import ConfigError
from market.runtime.run import run_scenario

FACTS = BidderFacts(index=1, n=3, cost_floor=0.0, cost_cap=1.0, mu=0.2)
X = np.zeros(2)


def see(cost, rng, t=0):
    """The observation of round t at ``cost``, with no history."""
    return Observation(cost, X, t, History(), rng)


def test_truthful_bids_its_cost_and_shading_is_clipped_into_the_bid_range():
    rng = np.random.default_rng(0)
    assert Truthful(FACTS).bid(see(0.4, rng)) == 0.4
    assert Shade(FACTS, 0.5).bid(see(0.4, rng)) == pytest.approx(0.6)
    assert Shade(FACTS, 0.5).bid(see(0.9, rng)) == 1.0  # 1.35 clipped to the cap
    assert build_strategy("underbid", FACTS).bid(see(0.5, rng)) == pytest.approx(0.4)


def test_every_registered_strategy_bids_inside_the_range_and_restores_its_state(strategy_params):
    for name in STRATEGIES:
        strategy = build_strategy(name, BidderFacts(0, 3, 0.0, 1.0, 0.2), **strategy_params(name, X.size))
        rng = np.random.default_rng(1)
        for t in range(30):
            cost = float(rng.random())
            b = strategy.bid(see(cost, rng, t))
            assert 0.0 <= b <= 1.0
            strategy.learn(BidFeedback(t, t % 3 == 0, b if t % 3 == 0 else 0.0, cost, b))
        state = strategy.get_state()
        twin = build_strategy(name, BidderFacts(0, 3, 0.0, 1.0, 0.2), **strategy_params(name, X.size))
        twin.set_state(state)
        assert twin.get_state().keys() == state.keys()


def test_unknown_strategy_and_bad_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="'bogus'"):
        build_strategy("bogus")
    with pytest.raises(ValueError, match="'shade'"):
        build_strategy("shade", FACTS, shading=0.3)
    with pytest.raises(ValueError, match="facts.mu"):
        build_strategy("coin-predictor", BidderFacts())


def test_randomised_strategy_leaves_the_providers_cost_stream_untouched():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    learner = ExponentialWeights(FACTS)
    for _ in range(10):
        ca, cb = a.random(), b.random()
        assert ca == cb  # the learner's coins come from a spawned child stream
        learner.bid(see(ca, a))


def test_grid_learners_find_the_profitable_multiplier_of_a_pay_as_bid_threshold():
    # pay-as-bid against a fixed threshold 0.8 with cost 0.5: profit (m - 1) 0.5 if 0.5 m <= 0.8, best m = 1.6
    grid = (1.0, 1.2, 1.4, 1.6, 1.8)
    for learner in (GridUCB(FACTS, grid, width=0.05), ExponentialWeights(FACTS, grid, eta=0.2, gamma=0.1)):
        rng = np.random.default_rng(2)
        for t in range(600):
            b = learner.bid(see(0.5, rng, t))
            won = b <= 0.8
            learner.learn(BidFeedback(t, won, b if won else 0.0, 0.5, b))
        assert learner.multiplier == pytest.approx(1.6)


def test_ucb_width_sd_scales_the_bonus_to_the_profits_seen_and_bad_widths_are_refused():
    learner = GridUCB(FACTS, (1.0, 1.5))
    rng = np.random.default_rng(3)
    profits = []
    for t in range(50):
        b = learner.bid(see(0.5, rng, t))
        won = bool(rng.random() < 0.5)
        pay = b + (4.0 if rng.random() < 0.2 else 0.0) if won else 0.0  # a heavy bonus now and then
        fb = BidFeedback(t, won, pay, 0.5, b)
        profits.append(fb.profit)
        learner.learn(fb)
    assert learner._width(learner.counts.sum()) == pytest.approx(np.std(profits))
    assert GridUCB(FACTS, (1.0,), width=0.3)._width(10) == 0.3
    for bad in ("wide", -1.0, float("nan")):
        with pytest.raises(ValueError, match="width"):
            GridUCB(FACTS, (1.0,), width=bad)


def test_coin_predictor_bids_the_floor_exactly_when_its_public_coin_of_that_round_says_resampled():
    predictor = CoinPredictor(FACTS, leak_seed=7)
    rng = np.random.default_rng(0)
    rounds = [*range(100), *range(300, 200, -1)]  # the market's round index, not the number of calls, picks the coins
    for t in rounds:
        resampled = public_coins(7, t, FACTS.n)[0, FACTS.index] < FACTS.mu
        assert predictor.bid(see(0.4, rng, t)) == (0.0 if resampled else 0.4)
    assert 0 < sum(public_coins(7, t, FACTS.n)[0, FACTS.index] < FACTS.mu for t in rounds) < len(rounds)


def test_ring_members_take_turns_and_the_other_bids_the_cap():
    rng = np.random.default_rng(0)
    first = RotationRing(BidderFacts(0, 3), members=(0, 1), s=0.5)
    second = RotationRing(BidderFacts(1, 3), members=(0, 1), s=0.5)
    bids = [(first.bid(see(0.4, rng, t)), second.bid(see(0.4, rng, t))) for t in range(4)]
    assert bids == [(pytest.approx(0.6), 1.0), (1.0, pytest.approx(0.6))] * 2
    # a round they did not see (a lost call for bids) does not put them out of step: the turn is the round's
    assert (first.bid(see(0.4, rng, 7)), second.bid(see(0.4, rng, 7))) == (1.0, pytest.approx(0.6))


def test_scenario_picks_strategies_and_params_by_name_and_refuses_bad_ones():
    sets = ["mechanism.name=pay-as-bid", "strategies.overrides.provider-0=shade", "strategies.params.shade.s=0.5"]
    _, summary, _ = run_scenario("quickstart", rounds=60, overrides=sets)
    paid = summary["received"].get("provider-0", {}).get("payment", 0) - summary["paid"].get(
        "provider-0", {}).get("serving cost", 0)
    assert paid > 0  # a shading provider under pay-as-bid earns a margin, truthful ones earn 0
    with pytest.raises(ConfigError, match="provider-0.*'bogus'"):
        run_scenario("quickstart", rounds=5, overrides=["strategies.overrides.provider-0=bogus"])


def test_every_coalition_is_a_registered_strategy():
    from agents.strategies import COALITIONS

    assert set(COALITIONS) <= set(STRATEGIES) and all(size >= 2 for size in COALITIONS.values())
