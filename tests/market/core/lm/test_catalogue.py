"""Catalogue LM, exact optimum (Eqs. 1-2), shown-reply law and convergence of MOSAIC (spec checks 14-17, 20)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from market.core.lm import CatalogueLM, Prompt, missing_mass
from market.core.lm.ads import catalogue_instance, with_advertisers
from market.core.lm.optimum import entropy, importance_rho, is_variance, kl, leave_one_out, objective, optimum
from market.core.lm.shown_law import shown_reply_law, shown_reply_law_mc, total_variation
from market.data import ad_queries


def _small_catalogue(seed: int = 0, k: int = 4) -> CatalogueLM:
    rng = np.random.default_rng(seed)
    mentions = np.zeros((k, 2), dtype=bool)
    mentions[1, 0] = mentions[2, 1] = True
    mentions[3] = True
    return CatalogueLM(
        rng.normal(size=k), mentions, brand_penalty=3.0, context_gain=3.0,
        advertise_gain=np.array([4.0, 5.0]), rival_penalty=np.array([1.0, 1.0]), query="q",
    )


def test_log_probs_normalise_and_prompts_shift_mentions():
    lm = _small_catalogue()
    for prompt in (Prompt("q"), Prompt("q", (0, 1)), Prompt("q", advertise=1), Prompt("q", (1,))):
        assert np.exp(lm.log_probs(prompt)).sum() == pytest.approx(1.0, abs=1e-12)
    mention_rate = lambda p: np.exp(lm.log_probs(p)) @ lm.mentions()  # noqa: E731
    assert np.all(mention_rate(Prompt("q", (0, 1))) > mention_rate(Prompt("q")))
    without = Prompt("q", (0, 1)).without(0)
    assert without.mention == (1,)
    assert mention_rate(without)[0] < mention_rate(Prompt("q", (0, 1)))[0]
    with pytest.raises(ValueError, match="query"):
        lm.log_probs(Prompt("other"))
    with pytest.raises(ValueError, match="advertise"):
        lm.log_probs(Prompt("q", advertise=5))


def test_sampling_frequencies_match_probabilities():
    lm = _small_catalogue()
    rng = np.random.default_rng(1)
    prompt = Prompt("q", (0, 1))
    draws = lm.sample_many(prompt, 40_000, rng)
    assert all(isinstance(d, int) for d in draws[:5])
    counts = np.bincount(draws, minlength=lm.size)
    assert chisquare(counts, 40_000 * np.exp(lm.log_probs(prompt))).pvalue > 1e-3
    assert lm.logprob(draws[0], prompt) == pytest.approx(lm.log_probs(prompt)[draws[0]])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 12), st.integers(1, 3), st.floats(0.1, 5.0))
def test_closed_form_optimum_maximises_objective(seed, k, n, tau):
    rng = np.random.default_rng(seed)
    log_ref = np.log(rng.dirichlet(np.ones(k)))
    rewards = rng.normal(0, 2, size=(n, k))
    opt = optimum(log_ref, rewards, tau)
    total = rewards.sum(0)
    assert objective(opt.log_pi, log_ref, total, tau) == pytest.approx(opt.value, abs=1e-9)
    for _ in range(10):
        log_pi = np.log(rng.dirichlet(np.ones(k)))
        j = objective(log_pi, log_ref, total, tau)
        assert j == pytest.approx(opt.value - tau * kl(log_pi, opt.log_pi), abs=1e-9)
        assert j <= opt.value + 1e-12
    loo = leave_one_out(log_ref, rewards, tau)
    for i, o in enumerate(loo):
        np.testing.assert_allclose(o.log_pi, optimum(log_ref, total - rewards[i], tau).log_pi)
    assert opt.entropy == pytest.approx(entropy(opt.log_pi))


def test_exact_shown_law_sums_to_one_and_matches_rao_blackwell():
    rng = np.random.default_rng(2)
    log_target = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    log_gen = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    for m in (1, 3, 10):
        exact = shown_reply_law(log_target, log_gen, m)
        assert exact.sum() == pytest.approx(1.0, abs=1e-12)
        mc = shown_reply_law_mc(log_target, log_gen, m, rng, n_draws=50_000)
        assert total_variation(exact, mc) < 5e-3  # Rao-Blackwellised, 5e4 draws
    np.testing.assert_allclose(shown_reply_law(log_target, log_gen, 1), np.exp(log_gen))


def test_shown_law_converges_to_optimum_at_rate_one_over_m():
    log_target = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    log_gen = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    target = np.exp(log_target)
    tv = {m: total_variation(shown_reply_law(log_target, log_gen, m), target) for m in (8, 16, 32, 64)}
    assert tv[64] < tv[8]
    scaled = np.array([m * tv[m] for m in (16, 32, 64)])
    assert np.ptp(scaled) / scaled.mean() < 0.1  # M·TV levels off
    rho = importance_rho(log_target, log_gen)
    assert 64 * tv[64] <= 6 * rho  # the SNIS bias bound of Agapiou et al.
    kls = [kl(log_target, np.log(shown_reply_law(log_target, log_gen, m))) for m in (8, 16, 32, 64)]
    assert np.all(np.diff(kls) < 0)


def test_context_aware_proposal_converges_faster():
    lm = _small_catalogue(3)
    log_ref = lm.log_probs(Prompt("q"))
    rewards = np.stack([lm.log_probs(Prompt("q", advertise=i)) - log_ref for i in range(2)])
    target = optimum(log_ref, rewards, 1.0)
    log_con = lm.log_probs(Prompt("q", (0, 1)))
    assert importance_rho(target.log_pi, log_con) < importance_rho(target.log_pi, log_ref)
    for m in (2, 8, 32):
        tv_base = total_variation(shown_reply_law(target.log_pi, log_ref, m), np.exp(target.log_pi))
        tv_con = total_variation(shown_reply_law(target.log_pi, log_con, m), np.exp(target.log_pi))
        assert tv_con < tv_base


def test_context_aware_with_4_beats_baseline_with_20_on_default_instance():
    queries = ad_queries()
    inst = catalogue_instance(with_advertisers(queries, 0, 2, np.random.default_rng(0)), np.random.default_rng(0))
    log_ref = inst.lm.log_probs(inst.ref_prompt)
    target = optimum(log_ref, inst.reward_table(), inst.tau)
    log_con = inst.lm.log_probs(inst.proposal_prompt(True))
    rng = np.random.default_rng(1)
    # E[log pi*(y_out)] under the shown-reply law (Rao-Blackwellised, 4e4 draws: error << the gap)
    con4 = shown_reply_law_mc(target.log_pi, log_con, 4, rng, 40_000) @ target.log_pi
    base20 = shown_reply_law_mc(target.log_pi, log_ref, 20, rng, 40_000) @ target.log_pi
    assert con4 > base20 + 0.1
    assert con4 <= -target.entropy + 1e-9 or con4 == pytest.approx(-target.entropy, abs=0.05)


def test_lemma_4_2_variance_formula():
    rng = np.random.default_rng(4)
    p_target = np.array([0.5, 0.3, 0.15, 0.05])
    p_gen = np.array([0.25, 0.25, 0.25, 0.25])
    m, reps = 10, 100_000
    idx = rng.choice(4, size=(reps, m), p=p_gen)
    est = (p_target[idx] ** 2 / p_gen[idx]).mean(axis=1)
    var = is_variance(np.log(p_target), np.log(p_gen), m)
    se = var * np.sqrt(2 / (reps - 1)) * 2  # generous SE of a sample variance (kurtosis allowance)
    assert abs(est.var(ddof=1) - var) < 3 * se
    assert est.mean() == pytest.approx((p_target**2).sum(), abs=3 * np.sqrt(var / reps))


def test_support_failure_misses_reference_mass():
    log_ref = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    log_gen = np.array([np.log(0.5), np.log(0.5), -np.inf, -np.inf])
    assert missing_mass(log_ref, log_gen) == pytest.approx(0.3)
    assert missing_mass(log_ref, log_ref) == 0.0
    law = shown_reply_law(log_ref, log_gen, 40)
    assert law[2] == 0.0 and law[3] == 0.0
    assert total_variation(law, np.exp(log_ref)) >= 0.3 - 1e-12
    assert importance_rho(log_ref, log_gen) == float("inf")
