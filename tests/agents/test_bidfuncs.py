"""Bidding functions: each family's formula, clipping into the bid range, determinism, history, validation."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.bidfuncs import FAMILIES, SEARCH_SPACE, BidFunction, bidfunc_overrides, check_theta
from agents.strategies import STRATEGIES, Bidder, BidderFacts, BidFeedback, History, Observation
from market.lab.deviation import play_fast
from market.runtime.config import ConfigError, parse_override

FACTS = BidderFacts(0, 5, 0.0, 1.0)


def obs(cost: float, context=(0.1, 0.9, 0.3), round: int = 0, history=()) -> Observation:
    return Observation(cost, np.asarray(context, dtype=float), round, History(list(history)),
                       np.random.default_rng(0))


def fb(won: bool, t: int = 0) -> BidFeedback:
    return BidFeedback(t, won, 0.5 if won else 0.0, 0.3, 0.5)


def test_each_family_bids_its_formula():
    assert BidFunction(FACTS, "multiplier", [1.5]).bid(obs(0.4)) == pytest.approx(0.6)
    assert BidFunction(FACTS, "affine", [0.1, 1.2]).bid(obs(0.5)) == pytest.approx(0.7)
    # cluster: argmax of context[:2] is 1 -> theta[1]; with one multiplier only context[0] counts
    assert BidFunction(FACTS, "cluster", [1.1, 1.7]).bid(obs(0.4)) == pytest.approx(0.68)
    assert BidFunction(FACTS, "cluster", [1.3]).bid(obs(0.4)) == pytest.approx(0.52)
    early = BidFunction(FACTS, "time", [2.0, 1.2, 10])
    assert early.bid(obs(0.3, round=9)) == pytest.approx(0.6)
    assert early.bid(obs(0.3, round=10)) == pytest.approx(0.36)
    thr = BidFunction(FACTS, "threshold", [0.6, 1.25])
    assert thr.bid(obs(0.7)) == 1.0 and thr.bid(obs(0.4)) == pytest.approx(0.5)
    last = BidFunction(FACTS, "lastwin", [1.5, 1.1])
    assert last.bid(obs(0.4, history=[fb(False), fb(True)])) == pytest.approx(0.6)
    assert last.bid(obs(0.4, history=[fb(True), fb(False)])) == pytest.approx(0.44)
    assert last.bid(obs(0.4)) == pytest.approx(0.44)  # no outcome yet counts as a loss
    rate = BidFunction(FACTS, "winrate", [1.1, 1.8, 0.5], window=4)
    assert rate.memory == 4
    assert rate.bid(obs(0.4, history=[fb(True), fb(False)])) == pytest.approx(0.72)
    assert rate.bid(obs(0.4, history=[fb(True), fb(False), fb(False)])) == pytest.approx(0.44)
    assert BidFunction(FACTS, "multiplier", [1.5]).memory == 0


def test_registered_and_the_bidder_gives_the_winrate_family_its_window():
    strategy = STRATEGIES.build("bidfunc", FACTS, family="winrate", theta=[1.0, 2.0, 0.5], window=2)
    bidder = Bidder(strategy)
    x = np.zeros(3)
    assert bidder.bid(0.3, x, 0, np.random.default_rng(0)) == pytest.approx(0.3)  # no history: rate 0
    bidder.learn(fb(True, 0))
    assert bidder.bid(0.3, x, 1, np.random.default_rng(0)) == pytest.approx(0.6)
    bidder.learn(fb(False, 1))
    bidder.learn(fb(False, 2))  # the last 2 outcomes are losses
    assert bidder.bid(0.3, x, 3, np.random.default_rng(0)) == pytest.approx(0.3)


def _theta(family: str) -> st.SearchStrategy:
    n = FAMILIES[family] or 3
    parts = [st.floats(-5.0, 5.0) for _ in range(n)]
    if family == "time":
        parts[2] = st.floats(0.0, 100.0)
    if family == "winrate":
        parts[2] = st.floats(0.0, 1.0)
    return st.tuples(*parts)


@given(data=st.data(), family=st.sampled_from(sorted(FAMILIES)), cost=st.floats(0.0, 1.0),
       lo=st.floats(0.0, 0.5), width=st.floats(0.01, 2.0), t=st.integers(0, 200),
       wins=st.lists(st.booleans(), max_size=30), context=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8))
def test_bids_are_clipped_into_the_range_and_deterministic(data, family, cost, lo, width, t, wins, context):
    theta = data.draw(_theta(family))
    facts = BidderFacts(0, 5, lo, lo + width)
    history = [fb(w, k) for k, w in enumerate(wins)]
    a = BidFunction(facts, family, theta).bid(obs(cost, context, t, history))
    b = BidFunction(facts, family, theta).bid(obs(cost, context, t, history))
    assert lo <= a <= lo + width
    assert a == b


@pytest.mark.parametrize(("family", "theta", "words"), [
    ("nope", [1.0], "family = 'nope'"),
    ("affine", [1.0], "expects 2 values, got 1"),
    ("multiplier", [math.nan], "finite"),
    ("multiplier", [math.inf], "finite"),
    ("multiplier", "1.0", "a list of numbers"),
    ("multiplier", [True], "numbers only"),
    ("cluster", [], "at least one"),
    ("time", [1.0, 1.0, -1.0], "switch round"),
    ("winrate", [1.0, 1.0, 1.5], "target win rate"),
])
def test_validation_names_the_value_and_what_is_allowed(family, theta, words):
    with pytest.raises(ValueError, match="theta|family") as err:
        check_theta(family, theta)
    assert words in str(err.value)


def test_a_bad_window_is_refused():
    with pytest.raises(ValueError, match="window = 0"):
        BidFunction(FACTS, "winrate", [1.0, 1.0, 0.5], window=0)


def test_overrides_round_trip_through_set_and_a_bad_theta_is_a_config_error():
    sets = bidfunc_overrides("provider-1", "affine", [0.1, 1.2345678901234567])
    assert dict(parse_override(s) for s in sets) == {
        "strategies.overrides.provider-1": "bidfunc", "strategies.params.bidfunc.family": "affine",
        "strategies.params.bidfunc.theta": [0.1, 1.2345678901234567]}
    with pytest.raises(ConfigError, match="strategies.overrides.provider-0: theta"):
        play_fast("quickstart", ["strategies.overrides.provider-0=bidfunc", "strategies.params.bidfunc.theta=[1, 2]"],
                  0, 5)


def test_the_truthful_parameters_play_exactly_the_truthful_run():
    base = play_fast("quickstart", ["mechanism.name=pay-as-bid"], 3, 60)
    for family, theta in (("multiplier", [1.0]), ("affine", [0.0, 1.0]), ("time", [1.0, 1.0, 5.0])):
        run = play_fast("quickstart", ["mechanism.name=pay-as-bid", *bidfunc_overrides("provider-0", family, theta)],
                        3, 60)
        assert run.utilities == base.utilities


def test_search_space_covers_every_family():
    assert set(SEARCH_SPACE) == set(FAMILIES)
