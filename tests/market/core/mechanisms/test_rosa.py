"""ROSA sampler, payments and truthfulness in expectation (ROSA spec section 7, checks T1-T6, T11-T19)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from market.core.mechanisms.base import MechanismError
from market.core.mechanisms.rosa import ROSA, draw_coins, payments, resample, threshold_expectations, winner_payment
from market.core.mechanisms.rules import TRCMUCB

CAP = 1.0
mus = st.floats(0.01, 0.9)
unit = st.floats(0.0, 1.0)


class FixedThreshold:
    """Provider 0 wins iff its resampled bid is <= tau (the single-threshold benchmark of spec 3.6)."""

    name, n = "fixed-threshold", 1

    def __init__(self, tau):
        self.tau = tau

    def allocate(self, context, resampled, active):
        return 0 if resampled[0] <= self.tau else None

    def update(self, context, winner, resampled, reward):
        pass

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


def _z(mean, expected, draws):
    return abs(mean - expected) / (draws.std(ddof=1) / np.sqrt(draws.size))


def test_atom_at_the_bid_has_mass_one_minus_mu():
    rng = np.random.default_rng(1)
    mu, b, m = 0.3, 0.2, 200_000
    chi, modified = resample(np.full(m, b), mu, CAP, draw_coins(rng, m))
    kept = (chi == b).mean()
    sd = np.sqrt(mu * (1 - mu) / m)
    assert abs(kept - (1 - mu)) < 4 * sd
    assert np.array_equal(chi == b, ~modified)


@settings(max_examples=50, deadline=None)
@given(mus, st.lists(unit, min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_modified_bids_move_up_into_b_cap(mu, bids, seed):
    bids = np.array(bids) * 0.999
    chi, modified = resample(bids, mu, CAP, draw_coins(np.random.default_rng(seed), bids.size))
    assert np.all(chi[~modified] == bids[~modified])
    assert np.all(chi[modified] > bids[modified]) and np.all(chi <= CAP)


@pytest.mark.parametrize("mu,b", [(0.3, 0.2), (0.05, 0.6), (0.7, 0.0)])
def test_modified_law_matches_closed_form_and_recursion(mu, b):
    rng = np.random.default_rng(2)
    chi, modified = resample(np.full(60_000, b), mu, CAP, draw_coins(rng, 60_000))
    raised = chi[modified]
    cdf = lambda a: 1.0 - ((CAP - np.clip(a, b, CAP)) / (CAP - b)) ** (1.0 - mu)
    assert stats.kstest(raised, cdf).pvalue > 1e-3
    # the recursive procedure of spec 3.2: psi ~ U(b, cap], then restart at psi with probability mu
    z = b + (CAP - b) * rng.random(raised.size)
    moving = rng.random(z.size) < mu
    while moving.any():
        z[moving] += (CAP - z[moving]) * rng.random(moving.sum())
        moving[moving] = rng.random(moving.sum()) < mu
    assert stats.ks_2samp(raised, z).pvalue > 1e-3


@settings(max_examples=50, deadline=None)
@given(mus, unit, unit, unit, unit)
def test_coupling_is_monotone_in_the_bid_for_fixed_coins(mu, b1, b2, coin, u):
    lo, hi = sorted((b1, b2))
    coins = np.array([[coin, coin], [u, u]])
    chi, _ = resample(np.array([lo, hi]), mu, CAP, coins)
    assert chi[0] <= chi[1]


def test_bid_at_cap_stays_and_earns_no_bonus():
    chi, modified = resample(np.array([CAP]), 0.5, CAP, np.array([[0.0], [0.3]]))
    assert modified[0] and chi[0] == CAP
    assert payments(np.array([CAP]), np.array([1]), modified, 0.5, CAP)[0] == CAP


@pytest.mark.parametrize("mu", [0.0, 1.0, -0.1, 1.5])
def test_mu_outside_open_unit_interval_is_refused(mu):
    with pytest.raises(MechanismError, match="mu"):
        ROSA(FixedThreshold(0.5), mu, CAP)


@pytest.mark.parametrize("bad", [1.2, -0.1, np.nan])
def test_bid_outside_support_is_refused_naming_provider_and_value(bad):
    mech = ROSA(TRCMUCB(3, 2), 0.1, CAP)
    with pytest.raises(MechanismError, match=rf"bids\[1\] = {bad}"):
        mech.select(np.ones(2), np.array([0.2, bad, 0.3]), np.random.default_rng(0))


def test_abstainers_are_ignored_cannot_win_and_get_nothing():
    mech = ROSA(TRCMUCB(3, 2, alpha=0.0), 0.5, CAP)
    mech.rule.learner.theta_hat[:] = [[1.0, 1.0], [5.0, 5.0], [0.1, 0.1]]
    active = np.array([True, False, True])
    rng = np.random.default_rng(3)
    for _ in range(200):
        out = mech.select(np.ones(2), np.array([0.2, np.nan, 0.3]), rng, active)
        assert out.winner != 1 and out.payments[1] == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), mus, st.integers(0, 2**32 - 1))
def test_losers_get_nothing_and_winner_never_loses(n, mu, seed):
    rng = np.random.default_rng(seed)
    mech = ROSA(TRCMUCB(n, 3, reserve=-1.0), mu, CAP)
    mech.rule.learner.theta_hat[:] = rng.random((n, 3))
    for _ in range(20):
        bids = rng.random(n)
        out = mech.select(rng.random(3), bids, rng)
        alloc = np.zeros(n)
        if out.winner is not None:
            alloc[out.winner] = 1
        assert np.all(out.payments >= bids * alloc) and np.all(out.payments >= 0)
        assert np.all(out.payments[alloc == 0] == 0)
        np.testing.assert_allclose(out.payments, payments(bids, alloc, out.modified, mu, CAP))


def test_payments_are_the_bks_payments_mirrored():
    # spec T13: with v = cap - b, chi = cap - x_BKS and P = cap A - P_BKS on the same coins
    rng = np.random.default_rng(4)
    mu, n = 0.2, 1000
    bids, coins = rng.random(n), rng.random((2, n))
    chi, modified = resample(bids, mu, CAP, coins)
    v = CAP - bids
    x_bks = np.where(coins[0] < mu, v * coins[1] ** (1 / (1 - mu)), v)
    np.testing.assert_allclose(chi, CAP - x_bks, atol=1e-14)
    alloc = (chi <= 0.7).astype(float)
    p_bks = v * alloc - (v / mu) * alloc * modified
    np.testing.assert_allclose(payments(bids, alloc, modified, mu, CAP), CAP * alloc - p_bks, atol=1e-12)


@pytest.mark.parametrize(
    "z,tau,mu", [(0.1, 0.7, 0.3), (0.4, 0.7, 0.3), (0.69, 0.7, 0.3), (0.3, 0.6, 0.05), (0.5, 0.9, 0.5)]
)
def test_single_threshold_closed_forms_hold_by_monte_carlo(z, tau, mu):
    # 400k draws, common coins; tolerance: |z-score| < 4 for E[A], E[P] and Var(P)
    m = 400_000
    chi, modified = resample(np.full(m, z), mu, CAP, draw_coins(np.random.default_rng(5), m))
    alloc = (chi <= tau).astype(float)
    pay = payments(np.full(m, z), alloc, modified, mu, CAP)
    abar, ep = threshold_expectations(z, tau, mu, CAP)
    assert _z(alloc.mean(), abar, alloc) < 4
    assert _z(pay.mean(), ep, pay) < 4
    integral = ep - z * abar
    var = z**2 * abar * (1 - abar) + (CAP - z) * integral / mu - integral**2 + 2 * z * integral * (1 - abar)
    dev = (pay - pay.mean()) ** 2
    assert _z(dev.mean(), var, dev) < 4


def test_rosa_mechanism_matches_the_closed_form_in_expectation():
    mu, tau, z, m = 0.3, 0.7, 0.4, 100_000
    mech = ROSA(FixedThreshold(tau), mu, CAP)
    rng = np.random.default_rng(6)
    pay = np.array([mech.select(np.zeros(1), np.array([z]), rng).payments[0] for _ in range(m)])
    assert _z(pay.mean(), threshold_expectations(z, tau, mu, CAP)[1], pay) < 4


def test_expected_payment_tends_to_the_critical_bid_as_mu_vanishes():
    tau, c = 0.63, 0.2
    gaps = [abs(float(threshold_expectations(c, tau, mu, CAP)[1]) - tau) for mu in (0.1, 0.01, 0.001, 1e-5)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-4
    abar, ep = threshold_expectations(c, tau, 1e-5, CAP)
    assert float(ep - c * abar) == pytest.approx(tau - c, abs=1e-4)


def _random_history(rule, rng, rounds=30):
    for _ in range(rounds):
        rule.update(rng.random(rule.d), int(rng.integers(rule.n)), None, float(rng.random()))


@settings(max_examples=8, deadline=None)
@given(st.integers(2, 5), st.floats(0.05, 0.4), st.integers(0, 2**32 - 1))
def test_truthful_bid_maximises_expected_utility(n, mu, seed):
    # spec T17: others' coins sampled (shared across bids), own coins integrated in closed form
    rng = np.random.default_rng(seed)
    rule = TRCMUCB(n, 3, alpha=0.5, reserve=-0.5)
    _random_history(rule, rng)
    x, others = rng.random(3), rng.random(n)
    m = 4000
    chi, _ = resample(np.tile(others, (m, 1)).ravel(), mu, CAP, draw_coins(rng, m * n))
    chi = chi.reshape(m, n)
    taus = np.array([rule.threshold(x, row, 0) for row in chi])
    grid = np.linspace(0.0, 1.0, 201)
    for c in (0.1, 0.3, 0.55):
        abar, pay = threshold_expectations(grid[:, None], taus[None, :], mu, CAP)
        utility = (pay - c * abar).mean(axis=1)
        truthful_a, truthful_p = threshold_expectations(c, taus, mu, CAP)
        truthful = (truthful_p - c * truthful_a).mean()
        assert np.all(truthful >= utility - 1e-12)
        r = np.where(taus >= c, (CAP - np.minimum(taus, CAP)) / (CAP - c), 1.0)
        closed = np.where(taus >= c, (CAP - c) * (1 - r ** (1 - mu)), 0.0)
        np.testing.assert_allclose(truthful_p - c * truthful_a, closed, atol=1e-12)


def test_per_coin_truthfulness_fails_by_design():
    # with no modification the winner is paid its bid: overbidding below the threshold strictly gains
    mech = ROSA(FixedThreshold(0.7), 0.2, CAP)
    coins = np.array([[0.9], [0.5]])  # modification coin above mu: bid kept
    c = 0.3
    chi_true, mod_true = resample(np.array([c]), 0.2, CAP, coins)
    chi_over, mod_over = resample(np.array([0.6]), 0.2, CAP, coins)
    gain_true = payments(np.array([c]), np.array([1.0]), mod_true, 0.2, CAP)[0] - c
    gain_over = payments(np.array([0.6]), np.array([1.0 * (chi_over[0] <= 0.7)]), mod_over, 0.2, CAP)[0] - c
    assert gain_over > gain_true and mech.rule.allocate(None, chi_over, None) == 0


def test_fraction_of_rounds_changed_is_at_most_one_minus_one_minus_mu_to_the_n():
    rng = np.random.default_rng(8)
    n, mu, rounds = 5, 0.1, 20_000
    rule = TRCMUCB(n, 3, alpha=0.3)
    _random_history(rule, rng, 50)
    changed = 0
    for _ in range(rounds):
        x, bids = rng.random(3), rng.random(n)
        chi, _ = resample(bids, mu, CAP, draw_coins(rng, bids.size))
        changed += rule.allocate(x, chi, None) != rule.allocate(x, bids, None)
    bound = 1 - (1 - mu) ** n
    assert changed / rounds <= bound + 4 * np.sqrt(bound * (1 - bound) / rounds)


def test_same_seed_gives_identical_outcomes_and_state_round_trips():
    def run(mech, seed, rounds=200):
        rng = np.random.default_rng(seed)
        outs = []
        for _ in range(rounds):
            x = rng.random(3)
            out = mech.select(x, rng.random(4), rng)
            mech.update(x, out, float(rng.random()))
            outs.append((out.winner, out.payments.sum()))
        return outs

    a, b = ROSA(TRCMUCB(4, 3), 0.1, CAP), ROSA(TRCMUCB(4, 3), 0.1, CAP)
    assert run(a, 9) == run(b, 9)
    c = ROSA(TRCMUCB(4, 3), 0.1, CAP)
    c.set_state(a.get_state())
    assert run(a, 10) == run(c, 10)


def test_truthful_payments_equal_virtual_costs_in_expectation():
    # spec T20: with c_cap the top of the U[0,1] support, E[sum_i P_i] = E[phi(c_w)] (u(c_cap) = 0)
    rng = np.random.default_rng(11)
    n, mu, rounds = 3, 0.3, 20_000
    rule = TRCMUCB(n, 2, alpha=0.0, reserve=0.0)
    rule.learner.theta_hat[:] = [[1.0, 0.5], [0.4, 0.9], [0.7, 0.7]]
    mech = ROSA(rule, mu, CAP)
    x = np.array([0.6, 0.8])
    diff = np.empty(rounds)
    for t in range(rounds):
        costs = rng.random(n)
        out = mech.select(x, costs, rng)
        phi = 2 * costs[out.winner] if out.winner is not None else 0.0
        diff[t] = out.payments.sum() - phi
    assert _z(diff.mean(), 0.0, diff) < 4


def test_clip_option_clips_out_of_range_bids_but_still_refuses_nan():
    mech = ROSA(FixedThreshold(0.5), 0.1, CAP, clip_bids=True)
    rng = np.random.default_rng(12)
    out = mech.select(np.zeros(1), np.array([-0.3]), rng)
    assert out.winner == 0 and out.payments[0] >= 0.0 and out.resampled[0] >= 0.0
    with pytest.raises(MechanismError, match="nan"):
        mech.select(np.zeros(1), np.array([np.nan]), rng)


# One payment formula and one sampler: every caller goes through winner_payment and resample.
@pytest.mark.parametrize("mu", [0.05, 0.3, 0.7])
@pytest.mark.parametrize("tau", [0.3, 0.7, 1.0])
def test_winner_payment_in_expectation_is_myersons_threshold_payment(mu, tau):
    # A provider wins iff chi <= tau. Over a midpoint grid of the U coin, E[1{chi <= tau} winner_payment] must
    # equal the reverse Myerson payment z abar(z) + int_z^cap abar(t) dt, where abar(t) = 1 - mu r^(1-mu),
    # r = (cap - tau)/(cap - t), is the winning probability under the sampler's law (spec 3.2); abar is
    # checked against the sampler on the same grid.
    from scipy.integrate import quad

    k = 400_000
    coins = np.vstack([np.zeros(k), (np.arange(k) + 0.5) / k])  # every bid modified, U on a grid

    def abar(t):
        return 1.0 - mu * ((CAP - tau) / (CAP - t)) ** (1.0 - mu) if t <= tau else 0.0

    for z in np.linspace(0.0, 0.95, 12):
        chi, modified = resample(np.full(k, z), mu, CAP, coins)
        won = chi <= tau
        assert (1 - mu) * (z <= tau) + mu * won.mean() == pytest.approx(abar(z), abs=1e-5)
        expected = (1 - mu) * (z <= tau) * winner_payment(z, False, mu, CAP) + mu * np.mean(
            won * winner_payment(np.full(k, z), modified, mu, CAP))
        myerson = z * abar(z) + (quad(abar, z, tau)[0] if z < tau else 0.0)
        assert expected == pytest.approx(myerson, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), mus, st.integers(0, 2**32 - 1))
def test_select_resamples_and_pays_exactly_as_resample_and_winner_payment(n, mu, seed):
    rng = np.random.default_rng(seed)
    mech = ROSA(TRCMUCB(n, 3, reserve=-1.0), mu, CAP)
    mech.rule.learner.theta_hat[:] = rng.random((n, 3))
    for _ in range(20):
        x, bids = rng.random(3), rng.random(n)
        twin = np.random.default_rng()
        twin.bit_generator.state = rng.bit_generator.state
        out = mech.select(x, bids, rng)
        chi, modified = resample(bids, mu, CAP, draw_coins(twin, n))
        assert np.array_equal(out.resampled, chi) and np.array_equal(out.modified, modified)
        assert out.winner == mech.rule.allocate(x, chi, None)
        if out.winner is not None:
            w = out.winner
            assert out.payments[w] == winner_payment(bids[w], modified[w], mu, CAP)
            alloc = np.zeros(n)
            alloc[w] = 1.0
            assert np.array_equal(out.payments, payments(bids, alloc, modified, mu, CAP))


def test_winner_payment_pays_a_kept_bid_exactly_and_a_modified_one_its_bonus():
    assert winner_payment(0.3, False, 0.2, CAP) == 0.3
    assert winner_payment(0.3, True, 0.2, CAP) == 0.3 + 0.7 / 0.2
    np.testing.assert_array_equal(winner_payment(np.array([0.3, 0.3]), np.array([False, True]), 0.2, CAP),
                                  [0.3, 0.3 + 0.7 / 0.2])


def test_no_modified_bid_leaves_the_bids_as_they_are():
    bids = np.array([0.1, 0.5, 0.9])
    chi, modified = resample(bids, 0.1, CAP, np.array([[0.5, 0.2, 0.9], [0.3, 0.3, 0.3]]))
    assert not modified.any() and np.array_equal(chi, bids)
