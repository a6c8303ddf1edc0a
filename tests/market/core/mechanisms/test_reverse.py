"""Allocation rules and mechanisms of reverse.py: monotonicity, thresholds, ties, Myerson, horizon rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.mechanisms.base import MechanismError, ReverseMechanism
from market.core.mechanisms.baselines import Myerson
from market.core.mechanisms.horizon import SeparatedElimination, run_horizon
from market.core.mechanisms.priors import TruncatedExponentialCost, UniformCost
from market.core.mechanisms.reverse import MECHANISMS, build_mechanism
from market.core.mechanisms.rules import TRCMUCB, EpsilonGreedyRule, MyersonRule, UCBRule

GRID = np.linspace(0.0, 1.0, 2001)
seeds = st.integers(0, 2**32 - 1)


def _history(rule, rng, rounds=40):
    for _ in range(rounds):
        rule.update(rng.random(rule.d), int(rng.integers(rule.n)), np.zeros(rule.n), float(rng.random()))


def _wins_over_grid(rule, x, chi, i, grid=GRID):
    wins = []
    for z in grid:
        c = chi.copy()
        c[i] = z
        wins.append(rule.allocate(x, c, None) == i)
    return np.array(wins)


def _assert_threshold_rule(wins, grid, tau):
    # a 0/1 step: wins never come back once lost, and the step sits at the analytic threshold
    assert np.all(np.diff(wins.astype(int)) <= 0)
    step = grid[1] - grid[0]
    last = grid[wins].max() if wins.any() else -np.inf
    if np.isfinite(tau) and tau < 1.0:
        assert last <= tau + 1e-12 and last > tau - step - 1e-12
    elif tau >= 1.0:
        assert wins.all()
    else:
        assert not wins.any()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), seeds, st.booleans(), st.sampled_from(["constant", "oful"]))
def test_trcm_ucb_is_monotone_in_each_resampled_bid_with_analytic_threshold(n, seed, eliminate, width):
    rng = np.random.default_rng(seed)
    rule = TRCMUCB(n, 3, alpha=0.7, reserve=0.0, eliminate=eliminate, width=width)
    _history(rule, rng)
    x, chi = rng.random(3), rng.random(n)
    i = int(rng.integers(n))
    _assert_threshold_rule(_wins_over_grid(rule, x, chi, i), GRID, rule.threshold(x, chi, i))


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 5), seeds)
def test_trcm_ucb_with_exponential_prior_is_monotone(n, seed):
    rng = np.random.default_rng(seed)
    prior = TruncatedExponentialCost(3.0, 0.0, 1.0)
    rule = TRCMUCB(n, 2, priors=prior, alpha=0.5, reserve=-2.0)
    _history(rule, rng)
    x, chi = rng.random(2), rng.random(n)
    _assert_threshold_rule(_wins_over_grid(rule, x, chi, 0), GRID, rule.threshold(x, chi, 0))


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 5), seeds)
def test_baseline_rules_are_monotone_per_round(n, seed):
    rng = np.random.default_rng(seed)
    for rule in (UCBRule(n, 3, alpha=0.5), EpsilonGreedyRule(n, 3, epsilon=0.3, reserve=None)):
        _history(rule, rng, 7)
        x, chi = rng.random(3), rng.random(n)
        wins = _wins_over_grid(rule, x, chi, 0, GRID[::10])
        assert np.all(np.diff(wins.astype(int)) <= 0)


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 6), seeds)
def test_ties_go_to_the_lowest_index_whatever_the_bids(n, seed):
    rng = np.random.default_rng(seed)
    rule = TRCMUCB(n, 2, alpha=0.0, reserve=None)
    rule.learner.theta_hat[:] = rng.random(2)  # every provider has the same estimate
    x, b = rng.random(2), float(rng.random())
    tied = np.sort(rng.choice(n, size=2, replace=False))
    chi = np.full(n, 1.0)
    chi[tied] = b
    assert rule.allocate(x, chi, None) == tied[0]
    # permuting the others' (higher) bids never moves the winner
    others = np.setdiff1d(np.arange(n), tied)
    chi[others] = rng.permutation(np.linspace(b + 0.01, 1.0, others.size))
    assert rule.allocate(x, chi, None) == tied[0]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), seeds, st.sampled_from([None, 0.0, 0.2]))
def test_known_theta_and_zero_width_give_the_myerson_allocation(n, seed, reserve):
    rng = np.random.default_rng(seed)
    theta = 2 * rng.random((n, 3))
    rule = TRCMUCB(n, 3, alpha=0.0, reserve=reserve)
    rule.learner.theta_hat[:] = theta
    myerson = MyersonRule(theta, UniformCost(), reserve=reserve)
    for _ in range(20):
        x, chi = rng.random(3), rng.random(n)
        assert rule.allocate(x, chi, None) == myerson.allocate(x, chi, None)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), seeds, st.sampled_from([UniformCost(0.1, 1.0), TruncatedExponentialCost(2.0, 0.0, 1.0)]))
def test_myerson_pays_the_sup_of_winning_bids_and_truth_is_optimal(n, seed, prior):
    rng = np.random.default_rng(seed)
    mech = Myerson(2 * rng.random((n, 2)), prior)
    x = rng.random(2)
    bids = prior.sample(rng, n)
    out = mech.select(x, bids, rng)
    grid = np.linspace(prior.c_lo, prior.c_cap, 2001)
    for i in range(n):
        wins = _wins_over_grid(mech.rule, x, bids, i, grid)
        tau = mech.rule.threshold(x, bids, i)
        _assert_threshold_rule(wins, grid, tau)
        if out.winner == i:
            assert out.payments[i] == pytest.approx(min(tau, prior.c_cap))
        # deterministic utility at cost bids[i]: truthful beats every deviation on the grid
        c = bids[i]
        utility = np.where(wins, np.minimum(tau, prior.c_cap) - c, 0.0)
        truthful = (min(tau, prior.c_cap) - c) if out.winner == i else 0.0
        assert truthful >= utility.max() - 1e-12


def _horizon_instance(seed, T=400, n=3, d=4):
    rng = np.random.default_rng(seed)
    theta = rng.random((n, d))
    theta /= theta.sum(axis=1, keepdims=True)
    contexts = rng.random((T, d))
    rewards = contexts @ theta.T + 0.3 * rng.standard_normal((T, n))
    return contexts, rewards, 0.2 + 0.1 * rng.random(n)


def _served_over_grid(make, seed, grid, T=400, n=3):
    contexts, rewards, others = _horizon_instance(seed, T, n)
    served = []
    for b in grid:
        chi = others.copy()
        chi[0] = b
        served.append(run_horizon(make(), contexts, rewards, chi)[0])
    return np.array(served)


@settings(max_examples=6, deadline=None)
@given(seeds, st.integers(2, 4), st.booleans(), st.sampled_from([None, 0.0]))
def test_separated_elimination_serves_fewer_queries_at_higher_bids(seed, n, eliminate, reserve):
    # spec T9 on a fixed reward table: N_0 is non-increasing in provider 0's (resampled) bid
    grid = np.linspace(0.1, 0.4, 31)
    make = lambda: SeparatedElimination(n, 4, alpha=0.5, reserve=reserve, eliminate=eliminate, warmup=1)
    served = _served_over_grid(make, seed, grid, T=200, n=n)
    assert np.all(np.diff(served) <= 0)


def test_separated_elimination_count_responds_to_the_bid():
    grid = np.linspace(0.1, 0.4, 31)
    served = _served_over_grid(lambda: SeparatedElimination(3, 4, alpha=0.5, reserve=None), 0, grid)
    assert np.all(np.diff(served) <= 0) and served[0] > served[-1] + 100


def test_plain_argmax_linucb_violates_horizon_monotonicity():
    # negative control (spec 2.3): on these reward tables N_0 rises with the bid somewhere
    grid = np.linspace(0.1, 0.4, 61)
    rises = [np.sum(np.diff(_served_over_grid(lambda: TRCMUCB(3, 4, alpha=0.5, reserve=None), s, grid)) > 0)
             for s in (0, 1)]
    assert min(rises) > 0


def test_horizon_rosa_resamples_once_and_pays_the_settlement():
    rng = np.random.default_rng(3)
    mech = build_mechanism("horizon-rosa", n=3, d=2, mu=0.4, reserve=None)
    bids = np.array([0.2, 0.5, 0.3])
    served, paid = np.zeros(3), np.zeros(3)
    for _ in range(100):
        x = rng.random(2)
        out = mech.select(x, bids, rng)
        mech.update(x, out, float(rng.random()))
        served[out.winner] += 1
        paid += out.payments
    bonus = np.where(mech.modified, (1.0 - bids) / 0.4, 0.0)
    np.testing.assert_allclose(paid, served * (bids + bonus))
    with pytest.raises(MechanismError, match="committed"):
        mech.select(rng.random(2), np.array([0.2, 0.6, 0.3]), rng)
    clone = build_mechanism("horizon-rosa", n=3, d=2, mu=0.4, reserve=None)
    clone.set_state(mech.get_state())
    x = rng.random(2)
    assert clone.select(x, bids, rng).winner == mech.select(x, bids, rng).winner


def test_pay_as_bid_rewards_overbidding():
    # the winner is paid its own bid, so a provider below its threshold gains by bidding up to it
    rng = np.random.default_rng(4)
    mech = build_mechanism("pay-as-bid", n=2, d=2, alpha=0.0)
    mech.rule.learner.theta_hat[:] = [[1.0, 1.0], [0.2, 0.2]]
    x, cost = np.array([0.5, 0.5]), 0.2
    utility = lambda b: (lambda o: o.payments[0] - cost * (o.winner == 0))(mech.select(x, np.array([b, 0.3]), rng))
    assert utility(0.5) > utility(cost) == 0.0


def _assert_same_state(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_state(a[key], b[key])
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_every_registered_mechanism_runs_and_round_trips_its_state(name):
    rng = np.random.default_rng(5)
    n, d = 4, 3
    params = {"n": n, "d": d}
    if name == "myerson":
        params = {"theta": rng.random((n, d)), "priors": UniformCost()}
    elif "rosa" in name:
        params["mu"] = 0.2
    mech = build_mechanism(name, **params)
    assert isinstance(mech, ReverseMechanism) and mech.n == n
    active = np.array([True, True, False, True])
    bids = np.array([0.1, 0.3, np.nan, 0.2])
    for _ in range(30):
        x = rng.random(d)
        out = mech.select(x, bids, rng, active)
        assert out.winner != 2 and out.payments[2] == 0.0
        mech.update(x, out, float(rng.random()))
    before = mech.get_state()
    mech.select(rng.random(d), bids, rng, active)
    if name != "rosa-leaky":  # its public-coin round counter advances per select by design
        _assert_same_state(before, mech.get_state())  # select never changes learner state
    twin = build_mechanism(name, **params)
    twin.set_state(mech.get_state())
    x = rng.random(d)
    seed = int(rng.integers(1 << 30))
    a = mech.select(x, bids, np.random.default_rng(seed), active)
    b = twin.select(x, bids, np.random.default_rng(seed), active)
    assert a.winner == b.winner and np.array_equal(a.payments, b.payments)


def test_unknown_mechanism_lists_the_known_ones():
    with pytest.raises(MechanismError, match="rosa-trcm-ucb"):
        build_mechanism("vickrey-magic")
    with pytest.raises(MechanismError, match="bad parameters"):
        build_mechanism("rosa-trcm-ucb", n=2, d=2, mu=0.1, colour="red")


@pytest.mark.parametrize("name", ["rosa-trcm-ucb", "rosa-ucb", "pay-as-bid", "linucb-critical"])
def test_nobody_wins_when_everyone_abstains_even_without_reserve(name):
    mech = build_mechanism(name, n=3, d=2, reserve=None, **({"mu": 0.3} if "rosa" in name else {}))
    out = mech.select(np.ones(2), np.full(3, np.nan), np.random.default_rng(0), np.zeros(3, dtype=bool))
    assert out.winner is None and not out.payments.any()
