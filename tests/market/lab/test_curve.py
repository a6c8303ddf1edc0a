"""Exact expected-profit curves: truthful bidding is the best multiplier on every drawn round under ROSA and the
critical-bid auction, shading pays under pay-as-bid, and the closed form agrees with playing the mechanism."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.mechanisms.rosa import ROSA, draw_coins, resample
from market.lab.curve import profit_curve, profit_samples, round_profits
from market.lab.deviation import FastMarket
from market.runtime.config import ConfigError

MULTIPLIERS = (0.6, 0.8, 0.95, 1.0, 1.05, 1.2, 1.5, 2.5)


@settings(max_examples=12, deadline=None)
@given(mu=st.floats(0.02, 0.95), n=st.integers(2, 6), seed=st.integers(0, 2**16),
       mechanism=st.sampled_from(["rosa-trcm-ucb", "rosa-ucb", "linucb-critical", "myerson"]))
def test_truthful_is_the_best_multiplier_on_every_drawn_round(mu, n, seed, mechanism):
    sets = [f"mechanism.name={mechanism}", f"market.providers={n}"]
    if mechanism.startswith("rosa"):
        sets.append(f"mechanism.params.mu={mu}")
    _, profits = profit_samples("quickstart", sets, seed, warmup=60, samples=150, multipliers=MULTIPLIERS)
    truthful = profits[:, MULTIPLIERS.index(1.0)]
    # exact: for each drawn round the profit is an expectation over the provider's own coins only
    assert np.all(profits <= truthful[:, None] + 1e-12)


def test_under_pay_as_bid_the_best_multiplier_is_above_one_and_under_rosa_it_is_one():
    pab = profit_curve("quickstart", ["mechanism.name=pay-as-bid"], seeds=2, warmup=300, samples=1500)
    assert pab.best >= 1.3
    k = pab.multipliers.index(pab.best)
    assert pab.ci_low[k] > 0  # shading to the best multiplier pays, beyond sampling error
    rosa = profit_curve("quickstart", ["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.1"], seeds=2,
                        warmup=300, samples=1500)
    assert rosa.best == 1.0
    assert all(high < 0 for m, high in zip(rosa.multipliers, rosa.ci_high) if m != 1.0)


def test_rosa_closed_form_matches_playing_the_mechanism_over_all_coins():
    """Round by round, the closed form over provider-0's coins (others' coins drawn) and a played ROSA round
    have the same expectation. mu = 0.8 resamples the others often: a closed form that ignored their coins
    would be off by about nine standard errors here."""
    mu = 0.8
    market = FastMarket("quickstart", ["mechanism.name=rosa-trcm-ucb", f"mechanism.params.mu={mu}",
                                       "market.providers=3"], 4, 400)
    for t in range(200):
        market.round(t)
    mech = market.mechanism
    assert isinstance(mech, ROSA)
    rng = np.random.default_rng(7)
    for m in (1.0, 1.3):
        diff = np.empty(3000)
        for k in range(diff.size):
            x, costs, bids = market.draw()
            bids[0] = min(m * costs[0], mech.cost_cap)
            out = mech.select(x, bids, rng)
            played = out.payments[0] - costs[0] if out.winner == 0 else 0.0
            seen, _ = resample(bids, mu, mech.cost_cap, draw_coins(rng, bids.size))
            tau = mech.rule.threshold(x, seen, 0)
            diff[k] = played - round_profits("rosa", bids[:1], costs[0], tau, mu, mech.cost_cap)[0]
        assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size)


def test_curves_are_deterministic_and_errors_name_the_field():
    sets = ["mechanism.name=pay-as-bid"]
    a = profit_curve("quickstart", sets, seeds=1, warmup=50, samples=100)
    b = profit_curve("quickstart", sets, seeds=1, warmup=50, samples=100)
    assert a == b
    with pytest.raises(ConfigError, match="--deviator: got 'provider-9'"):
        profit_curve("quickstart", sets, seeds=1, warmup=10, samples=10, deviator="provider-9")
    with pytest.raises(ConfigError, match="mechanism.name: 'horizon-rosa'"):
        profit_curve("quickstart", ["mechanism.name=horizon-rosa"], seeds=1, warmup=10, samples=10)
    with pytest.raises(ConfigError, match="--multipliers"):
        profit_curve("quickstart", sets, multipliers=[1.0, -2.0])
    with pytest.raises(ConfigError, match="samples = 1"):
        profit_curve("quickstart", sets, samples=1)
