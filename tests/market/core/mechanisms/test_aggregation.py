"""Properties of MOSAIC's allocation and payments on fixed candidate sets (spec section 6, checks 1-13, 20, 23)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.mechanisms.aggregation import (
    AGGREGATIONS,
    SupportFailure,
    build_aggregation,
    ess,
    leave_one_out,
    mosaic,
    mosaic_batch,
    sample_shown,
)
from market.core.mechanisms.base import MechanismError

TOL = 1e-9


def _instance(seed: int, n: int, m: int, scale: float = 2.0):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(0.0, scale, size=(n, m))
    log_ref = rng.normal(-3.0, 1.0, size=m)
    log_gen = rng.normal(-3.0, 1.0, size=m)
    tau = float(rng.uniform(0.2, 5.0))
    return rng, rewards, log_ref, log_gen, tau


instances = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 8))


def _utility_of_report(true_row, report, rewards, i, log_ref, log_gen, tau, payment="offset"):
    profile = rewards.copy()
    profile[i] = report
    out = mosaic(profile, log_ref, log_gen, tau, payment)
    return out.q @ true_row - out.payments[i]


def _lse(x):
    top = np.max(x)
    return top + np.log(np.sum(np.exp(x - top)))


def _softmax(x):
    return np.exp(x - _lse(x))


def _kl(p, q):
    live = p > 0
    return float(np.sum(p[live] * np.log(p[live] / q[live])))


@settings(max_examples=60, deadline=None)
@given(instances)
def test_truthful_report_maximises_expected_utility(inst):
    seed, n, m = inst
    rng, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    i = int(rng.integers(n))
    truth = rewards[i]
    honest = _utility_of_report(truth, truth, rewards, i, log_ref, log_gen, tau)
    misreports = [rng.normal(0, 3, size=m) for _ in range(5)]
    misreports += [truth * k for k in (-1.0, 0.0, 0.5, 2.0, 10.0)]
    misreports += [truth + rng.normal(0, 1, size=m) * 0.1, truth + 7.0]
    for report in misreports:
        assert _utility_of_report(truth, report, rewards, i, log_ref, log_gen, tau) <= honest + TOL
    # gradient ascent on i's utility: ∇_{r'} u = (diag q − q qᵀ)(r_i − r')/τ
    report = rng.normal(0, 3, size=m)
    for _ in range(50):
        profile = rewards.copy()
        profile[i] = report
        q = mosaic(profile, log_ref, log_gen, tau).q
        grad = (q * (truth - report) - q * (q @ (truth - report))) / tau
        report = report + 2.0 * tau * grad
        assert _utility_of_report(truth, report, rewards, i, log_ref, log_gen, tau) <= honest + TOL


@settings(max_examples=40, deadline=None)
@given(instances)
def test_rochet_variant_is_also_truthful(inst):
    seed, n, m = inst
    rng, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    i = int(rng.integers(n))
    truth = rewards[i]
    honest = _utility_of_report(truth, truth, rewards, i, log_ref, log_gen, tau, "rochet")
    for report in [rng.normal(0, 3, size=m), 3 * truth, truth + 1.0]:
        assert _utility_of_report(truth, report, rewards, i, log_ref, log_gen, tau, "rochet") <= honest + TOL


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(2, 8))
def test_without_payments_exaggerating_is_profitable(seed, n, m):
    rng, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    i = int(rng.integers(n))
    truth = rewards[i]
    honest = _utility_of_report(truth, truth, rewards, i, log_ref, log_gen, tau, "none")
    exaggerated = _utility_of_report(truth, 5.0 * truth, rewards, i, log_ref, log_gen, tau, "none")
    q = mosaic(rewards, log_ref, log_gen, tau).q
    spread = q @ truth**2 - (q @ truth) ** 2  # zero only if r_i is constant where q has mass
    if spread > 1e-6:
        assert exaggerated > honest + 1e-12


@settings(max_examples=60, deadline=None)
@given(instances, st.booleans())
def test_payments_nonnegative_and_utility_above_absent_reward(inst, all_negative):
    seed, n, m = inst
    _, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    if all_negative:
        rewards = -np.abs(rewards) - 1.0
    out = mosaic(rewards, log_ref, log_gen, tau)
    assert np.all(out.payments >= -TOL)
    s = rewards.sum(0) / tau + log_ref - log_gen
    for i in range(n):
        absent = _softmax(s - rewards[i] / tau)
        assert out.utilities[i] >= absent @ rewards[i] - TOL


@settings(max_examples=40, deadline=None)
@given(instances, st.floats(-5, 5))
def test_zero_reward_pays_nothing_and_constant_reward_gets_constant(inst, c):
    seed, n, m = inst
    _, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    rewards[0] = 0.0
    out = mosaic(rewards, log_ref, log_gen, tau)
    assert abs(out.payments[0]) < TOL and abs(out.utilities[0]) < TOL
    rewards[0] = c
    out = mosaic(rewards, log_ref, log_gen, tau)
    assert abs(out.payments[0]) < TOL and abs(out.utilities[0] - c) < TOL


@settings(max_examples=40, deadline=None)
@given(instances, st.floats(-50, 50), st.floats(-30, 30))
def test_shifts_leave_allocation_and_payments_unchanged(inst, c, log_scale):
    seed, n, m = inst
    rng, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    base = mosaic(rewards, log_ref, log_gen, tau)
    i = int(rng.integers(n))
    shifted = rewards.copy()
    shifted[i] += c
    out = mosaic(shifted, log_ref, log_gen, tau)
    np.testing.assert_allclose(out.q, base.q, atol=1e-12)
    np.testing.assert_allclose(out.payments, base.payments, atol=1e-8)
    assert out.utilities[i] == pytest.approx(base.utilities[i] + c, abs=1e-8)
    rescaled = mosaic(rewards, log_ref + log_scale, log_gen, tau)
    np.testing.assert_allclose(rescaled.q, base.q, atol=1e-12)
    np.testing.assert_allclose(rescaled.payments, base.payments, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 6))
def test_single_or_identical_candidates_raise_no_revenue(seed, n, m):
    rng = np.random.default_rng(seed)
    column = rng.normal(0, 3, size=(n, 1))
    out = mosaic(np.repeat(column, m, axis=1), np.full(m, -2.0), np.full(m, -1.0), 1.3)
    np.testing.assert_allclose(out.payments, 0.0, atol=TOL)
    one = mosaic(column, np.array([-2.0]), np.array([-1.0]), 0.7)
    np.testing.assert_allclose(one.payments, 0.0, atol=TOL)
    np.testing.assert_allclose(one.utilities, column[:, 0], atol=TOL)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_single_advertiser_pays_tau_kl_to_reference_weights(seed, m):
    _, rewards, log_ref, log_gen, tau = _instance(seed, 1, m)
    out = mosaic(rewards, log_ref, log_gen, tau)
    w_bar = _softmax(log_ref - log_gen)
    assert out.payments[0] == pytest.approx(tau * _kl(out.q, w_bar), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(instances)
def test_payment_is_vcg_on_the_candidate_set(inst):
    seed, n, m = inst
    rng, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    out = mosaic(rewards, log_ref, log_gen, tau)
    w_bar = _softmax(log_ref - log_gen)

    def welfare(q, total):
        return q @ total - tau * _kl(q, w_bar)

    def g(v):
        return tau * _lse(np.log(w_bar) + v / tau)

    total = rewards.sum(0)
    for i in range(n):
        others = total - rewards[i]
        assert out.payments[i] == pytest.approx(g(others) - welfare(out.q, others), abs=1e-9)
        assert out.utilities[i] == pytest.approx(g(total) - g(others), abs=1e-9)
    for _ in range(20):  # q is the exact maximiser of the regularised welfare on the candidates
        other = rng.dirichlet(np.ones(m))
        assert welfare(other, total) <= welfare(out.q, total) + 1e-9


@settings(max_examples=40, deadline=None)
@given(instances)
def test_leave_one_out_is_the_auction_without_that_advertiser(inst):
    seed, n, m = inst
    _, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    q_without = leave_one_out(rewards, log_ref - log_gen, tau)
    assert q_without.shape == (n, m)
    for i in range(n):
        others = np.delete(rewards, i, axis=0)
        expected = mosaic(others, log_ref, log_gen, tau).q if n > 1 else _softmax(log_ref - log_gen)
        np.testing.assert_allclose(q_without[i], expected, atol=TOL)
    batch = leave_one_out(rewards[None], (log_ref - log_gen)[None], tau)
    np.testing.assert_array_equal(batch[0], q_without)
    # u_i = g(total) - g(others) with g convex and grad g = q, so E_{q_-i}[r_i] <= u_i <= E_q[r_i]
    out = mosaic(rewards, log_ref, log_gen, tau)
    absent = np.einsum("im,im->i", q_without, rewards)
    assert np.all(absent <= out.utilities + TOL) and np.all(out.utilities <= rewards @ out.q + TOL)


@settings(max_examples=40, deadline=None)
@given(instances)
def test_utility_matches_lemma_5_2(inst):
    seed, n, m = inst
    _, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    out = mosaic(rewards, log_ref, log_gen, tau)
    s = rewards.sum(0) / tau + log_ref - log_gen
    for i in range(n):
        absent = _softmax(s - rewards[i] / tau)
        assert out.utilities[i] == pytest.approx(tau * np.log(absent @ np.exp(rewards[i] / tau)), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(instances)
def test_anonymity_over_advertisers_and_candidates(inst):
    seed, n, m = inst
    rng, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    out = mosaic(rewards, log_ref, log_gen, tau)
    adv = rng.permutation(n)
    cand = rng.permutation(m)
    permuted = mosaic(rewards[adv][:, cand], log_ref[cand], log_gen[cand], tau)
    np.testing.assert_allclose(permuted.payments, out.payments[adv], atol=1e-10)
    np.testing.assert_allclose(permuted.q, out.q[cand], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(instances)
def test_matches_naive_implementation_and_stays_finite_at_extremes(inst):
    seed, n, m = inst
    _, rewards, log_ref, log_gen, tau = _instance(seed, n, m)
    w = np.exp(log_ref - log_gen)
    e = w * np.exp(rewards.sum(0) / tau)
    q_naive = e / e.sum()
    out = mosaic(rewards, log_ref, log_gen, tau)
    np.testing.assert_allclose(out.q, q_naive, rtol=1e-10)
    for i in range(n):
        e_i = w * np.exp((rewards.sum(0) - rewards[i]) / tau)
        pay = q_naive @ rewards[i] - tau * np.log(e.sum()) + tau * np.log(e_i.sum())
        assert out.payments[i] == pytest.approx(pay, abs=1e-8)
    big = np.sign(rewards) * 1e3 * tau
    extreme = mosaic(big, log_ref, log_gen, tau)
    assert np.all(np.isfinite(extreme.q)) and np.all(np.isfinite(extreme.payments))
    assert np.all(extreme.payments >= -1e-9 * 1e3 * tau) and extreme.q.sum() == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(instances)
def test_reference_proposal_gives_softmax_of_rewards(inst):
    seed, n, m = inst
    _, rewards, log_ref, _, tau = _instance(seed, n, m)
    out = mosaic(rewards, log_ref, log_ref, tau)
    np.testing.assert_allclose(out.q, _softmax(rewards.sum(0) / tau), atol=1e-12)


def test_tau_limits_reach_reference_weights_and_clarke_pivot():
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=(3, 6))
    log_ref, log_gen = rng.normal(size=6), rng.normal(size=6)
    large = mosaic(rewards, log_ref, log_gen, 1e3)
    np.testing.assert_allclose(large.q, _softmax(log_ref - log_gen), atol=1e-2)
    np.testing.assert_allclose(large.payments, 0.0, atol=1e-2)
    small = mosaic(rewards, log_ref, log_gen, 1e-3)
    total = rewards.sum(0)
    best = int(np.argmax(total))
    assert small.q[best] == pytest.approx(1.0, abs=1e-6)
    for i in range(3):
        others = total - rewards[i]
        assert small.payments[i] == pytest.approx(others.max() - others[best], abs=1e-2)


def test_support_failure_is_reported():
    rewards = np.zeros((2, 3))
    log_ref = np.array([-1.0, -2.0, -3.0])
    with pytest.raises(SupportFailure, match=r"log_gen\[1\]"):
        mosaic(rewards, log_ref, np.array([-1.0, -np.inf, -1.0]), 1.0)
    # zero reference mass is fine: the candidate simply gets weight 0
    out = mosaic(rewards, np.array([-1.0, -np.inf, -3.0]), np.array([-1.0, -1.0, -1.0]), 1.0)
    assert out.q[1] == 0.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(rewards=np.full((2, 3), np.nan)), "rewards"),
        (dict(rewards=np.array([[1.0, np.inf, 0.0]])), "rewards"),
        (dict(log_ref=np.zeros(4)), "log_ref"),
        (dict(log_gen=np.array([0.0, np.nan, 0.0])), "log_gen"),
        (dict(tau=0.0), "tau"),
        (dict(tau=-1.0), "tau"),
        (dict(tau=float("nan")), "tau"),
        (dict(payment="vcg"), "payment"),
        (dict(rewards=np.zeros(3)), "rewards"),
    ],
)
def test_invalid_inputs_name_the_field(kwargs, field):
    args = dict(rewards=np.zeros((2, 3)), log_ref=np.zeros(3), log_gen=np.zeros(3), tau=1.0, payment="offset")
    args.update(kwargs)
    with pytest.raises(MechanismError, match=field):
        mosaic(**args)


def test_batch_matches_single_auctions():
    rng = np.random.default_rng(5)
    rewards = rng.normal(size=(7, 3, 5))
    log_ref, log_gen = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    for payment in ("offset", "rochet", "none"):
        batch = mosaic_batch(rewards, log_ref, log_gen, 0.9, payment)
        for s in range(7):
            one = mosaic(rewards[s], log_ref[s], log_gen[s], 0.9, payment)
            np.testing.assert_allclose(batch.q[s], one.q, atol=1e-14)
            np.testing.assert_allclose(batch.payments[s], one.payments, atol=1e-12)
            np.testing.assert_allclose(batch.utilities[s], one.utilities, atol=1e-12)


def test_no_payment_variant_charges_nothing_and_utility_is_expected_reward():
    rng = np.random.default_rng(6)
    rewards = rng.normal(size=(3, 4))
    out = mosaic(rewards, np.zeros(4), np.zeros(4), 1.0, "none")
    np.testing.assert_array_equal(out.payments, 0.0)
    np.testing.assert_allclose(out.utilities, rewards @ out.q)


def test_shown_reply_frequencies_match_allocation():
    rng = np.random.default_rng(7)
    q = mosaic(rng.normal(size=(2, 5)), np.zeros(5), np.zeros(5), 1.0).q
    draws = np.array([sample_shown(q, rng) for _ in range(20_000)])
    freq = np.bincount(draws, minlength=5) / 20_000
    # 5 standard errors of a binomial proportion
    assert np.all(np.abs(freq - q) <= 5 * np.sqrt(q * (1 - q) / 20_000))


def test_ess_of_weights():
    assert ess(np.zeros(7)) == pytest.approx(7.0)
    assert ess(np.array([0.0, -np.inf, -np.inf])) == pytest.approx(1.0)
    lw = np.log(np.array([1.0, 2.0, 3.0]))
    assert ess(lw) == pytest.approx(36.0 / 14.0)
    out = mosaic(np.zeros((1, 3)), lw, np.zeros(3), 1.0)
    assert out.ess == pytest.approx(36.0 / 14.0)
    with pytest.raises(MechanismError, match="log_weights"):
        ess(np.array([np.nan]))


def test_registry_builds_known_mechanisms_and_rejects_unknown():
    assert set(AGGREGATIONS) == {"mosaic", "mosaic-rochet", "mosaic-nopay", "token-auction"}
    rewards = np.array([[1.0, -1.0]])
    out = build_aggregation("mosaic", tau=1.0)(rewards, np.zeros(2), np.zeros(2))
    assert out.payment == "offset" and out.payments[0] > 0
    assert build_aggregation("mosaic-rochet", tau=1.0)(rewards, np.zeros(2), np.zeros(2)).payment == "rochet"
    assert build_aggregation("mosaic-nopay", tau=1.0)(rewards, np.zeros(2), np.zeros(2)).payment == "none"
    step = build_aggregation("token-auction")(np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(step.q, [0.75, 0.25])
    with pytest.raises(MechanismError, match="mosaic-rochet"):
        build_aggregation("vcg")
