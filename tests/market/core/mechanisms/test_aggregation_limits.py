"""MOSAIC over random candidate draws (spec section 6, checks 18, 19, 21, 22, 24): rates, limits, ex-ante
truthfulness, the incentive leak when the proposal depends on reports, and revenue smooth in τ."""

from __future__ import annotations

import numpy as np

from market.core.lm.optimum import logsumexp, optimum
from market.core.mechanisms.aggregation import mosaic, mosaic_batch


def _toy(seed: int, k: int = 6, n: int = 2, scale: float = 1.5):
    """A finite reply space: pi_ref, a different proposal pi_gen (full support) and rewards (n, K)."""
    rng = np.random.default_rng(seed)
    log_ref = np.log(rng.dirichlet(np.full(k, 2.0)))
    log_gen = np.log(rng.dirichlet(np.full(k, 2.0)))
    return rng, log_ref, log_gen, rng.normal(0.0, scale, (n, k))


def _draw(log_gen: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Candidate indices by inverse CDF of common uniforms u: (S, M)."""
    cdf = np.cumsum(np.exp(log_gen))
    return np.minimum(np.searchsorted(cdf / cdf[-1], u), log_gen.shape[0] - 1)


def _run(log_ref, log_gen, rewards, tau, idx):
    return mosaic_batch(np.moveaxis(rewards[:, idx], 0, 1), log_ref[idx], log_gen[idx], tau)


def test_interim_allocation_tv_shrinks_like_one_over_sqrt_m():
    rng, log_ref, log_gen, rewards = _toy(3)
    tau = 1.0
    pi_star = np.exp(optimum(log_ref, rewards, tau).log_pi)
    scaled = {}
    for m in (16, 64, 256):
        idx = _draw(log_gen, rng.random((2000, m)))
        q = _run(log_ref, log_gen, rewards, tau, idx).q
        law = np.zeros((idx.shape[0], pi_star.size))
        np.add.at(law, (np.arange(idx.shape[0])[:, None], idx), q)  # q as a law on Y
        tv = 0.5 * np.abs(law - pi_star).sum(axis=1).mean()
        scaled[m] = np.sqrt(m) * tv
    # √M·E[TV] levels off: a 16-fold larger M divides E[TV] by about 4, not by 16 (1/M) or 2 (M^-1/4)
    assert 0.8 < scaled[256] / scaled[16] < 1.25
    assert 0.8 < scaled[64] / scaled[16] < 1.25


def test_payments_and_utilities_converge_to_their_large_m_limits():
    rng, log_ref, log_gen, rewards = _toy(11, k=8)
    rewards += 2.0  # limits of order 1, so that 1% is a statement about convergence, not about zero
    tau = 1.0
    idx = _draw(log_gen, rng.random((40, 10_000)))
    out = _run(log_ref, log_gen, rewards, tau, idx)
    star = optimum(log_ref, rewards, tau)
    for i in range(rewards.shape[0]):
        without = optimum(log_ref, np.delete(rewards, i, axis=0), tau)
        pay_limit = np.exp(star.log_pi) @ rewards[i] - tau * star.log_z + tau * without.log_z
        util_limit = tau * float(logsumexp(without.log_pi + rewards[i] / tau))
        assert abs(out.payments[:, i].mean() - pay_limit) < 0.01 * abs(pay_limit)
        assert abs(out.utilities[:, i].mean() - util_limit) < 0.01 * abs(util_limit)


def _expected_utility(report, true_row, rewards, i, log_ref, log_gen_of, tau, u):
    """Mean over candidate sets (common uniforms u) of i's true utility q·r_i − p_i when it reports ``report``."""
    profile = rewards.copy()
    profile[i] = report
    log_gen = log_gen_of(profile)
    idx = _draw(log_gen, u)
    out = _run(log_ref, log_gen, profile, tau, idx)
    util = (out.q * true_row[idx]).sum(axis=1) - out.payments[:, i]
    return util.mean(), util.std() / np.sqrt(util.size)


def test_truthful_report_maximises_ex_ante_expected_utility_with_common_random_numbers():
    rng, log_ref, log_gen, rewards = _toy(5)
    u = rng.random((4000, 4))
    fixed = lambda profile: log_gen  # noqa: E731  the proposal ignores reports
    for i in range(rewards.shape[0]):
        truthful, _ = _expected_utility(rewards[i], rewards[i], rewards, i, log_ref, fixed, 1.0, u)
        deviations = [0.0 * rewards[i], 2.0 * rewards[i], -rewards[i], rewards[i] + 5.0,
                      *(rewards[i] + rng.normal(0.0, 2.0, rewards.shape[1]) for _ in range(20))]
        gains = [_expected_utility(d, rewards[i], rewards, i, log_ref, fixed, 1.0, u)[0] - truthful
                 for d in deviations]
        assert max(gains) <= 1e-9
        assert min(gains) < -0.01  # the deviations are not all harmless


def test_proposal_built_from_reports_admits_a_profitable_misreport():
    """Boundary of Thm 5.1: if pi_gen ∝ pi_ref·exp(Σ reports), a random search finds a misreport that
    pays, confirmed on fresh candidate draws; the same search finds none when pi_gen ignores reports."""
    rng, log_ref, _, rewards = _toy(1)
    i, tau, m = 0, 1.0, 2

    def leaky(profile):
        lg = log_ref + profile.sum(axis=0)
        return lg - logsumexp(lg)

    fixed = lambda profile: log_ref  # noqa: E731
    search = [rewards[i] + rng.normal(0.0, 2.0, rewards.shape[1]) for _ in range(40)]
    u_search, u_fresh = rng.random((5000, m)), rng.random((20000, m))
    for log_gen_of, leaks in ((leaky, True), (fixed, False)):
        truthful, _ = _expected_utility(rewards[i], rewards[i], rewards, i, log_ref, log_gen_of, tau, u_search)
        gains = [_expected_utility(d, rewards[i], rewards, i, log_ref, log_gen_of, tau, u_search)[0] - truthful
                 for d in search]
        best = search[int(np.argmax(gains))]
        if leaks:
            truthful, _ = _expected_utility(rewards[i], rewards[i], rewards, i, log_ref, log_gen_of, tau, u_fresh)
            value, se = _expected_utility(best, rewards[i], rewards, i, log_ref, log_gen_of, tau, u_fresh)
            assert value - truthful > 10 * se
        else:
            assert max(gains) <= 1e-9


def test_revenue_is_a_smooth_function_of_tau():
    rng, log_ref, log_gen, rewards = _toy(8, n=3)
    idx = _draw(log_gen, rng.random(20))
    r, lr, lg = rewards[:, idx], log_ref[idx], log_gen[idx]
    revenue = lambda tau: float(mosaic(r, lr, lg, tau).revenue)  # noqa: E731
    taus = np.linspace(0.2, 5.0, 97)
    step = taus[1] - taus[0]
    for h in (1e-4,):
        slope = np.array([(revenue(t + h) - revenue(t - h)) / (2 * h) for t in taus])
        finer = np.array([(revenue(t + h / 10) - revenue(t - h / 10)) / (h / 5) for t in taus])
        assert np.allclose(slope, finer, atol=1e-5)  # the derivative exists (difference quotients agree)
        assert np.all(np.isfinite(slope))
        # continuous derivative: neighbouring slopes differ by O(step), no jumps
        assert np.max(np.abs(np.diff(slope))) < 50 * step * (1 + np.max(np.abs(slope)))
