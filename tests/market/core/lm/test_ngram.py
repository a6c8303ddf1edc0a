"""Bigram LM: exact sequence log-probs under raw, tempered and top-p decoding (spec section 5.2, ambiguity 8.1)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from scipy.stats import chisquare

from market.core.lm import NGramLM, Prompt, missing_mass
from market.core.lm.ads import ngram_instance
from market.core.lm.optimum import optimum
from market.core.lm.shown_law import shown_reply_law_mc, total_variation
from market.core.mechanisms.aggregation import SupportFailure, mosaic
from market.data import ad_queries

P = Prompt("q")


def _lm(seed: int = 0, **kwargs) -> NGramLM:
    return NGramLM.random(2, 1, 3, np.random.default_rng(seed), brand_penalty=1.0, query="q", **kwargs)


@pytest.mark.parametrize("decoding", [(1.0, 1.0), (0.7, 1.0), (1.5, 1.0), (0.8, 0.9), (1.0, 0.5)])
def test_sequence_log_probs_sum_to_one(decoding):
    lm = _lm().with_decoding(*decoding)
    for prompt in (P, Prompt("q", (0,)), Prompt("q", advertise=0)):
        assert np.exp(lm.log_probs(prompt)).sum() == pytest.approx(1.0, abs=1e-12)
    assert len(lm.replies()) == 1 + 3 + 9 + 27


@pytest.mark.parametrize("decoding", [(1.0, 1.0), (0.6, 1.0), (0.8, 0.8)])
def test_sampling_frequencies_match_sequence_probabilities(decoding):
    lm = _lm(1).with_decoding(*decoding)
    rng = np.random.default_rng(2)
    replies = lm.replies()
    index = {r: k for k, r in enumerate(replies)}
    draws = lm.sample_many(P, 30_000, rng)
    counts = np.bincount([index[d] for d in draws], minlength=len(replies))
    expected = 30_000 * np.exp(lm.log_probs(P))
    assert np.all(counts[expected == 0] == 0)  # nothing outside the top-p nucleus
    live = expected > 0
    assert chisquare(counts[live], expected[live] * counts[live].sum() / expected[live].sum()).pvalue > 1e-3


def test_logprob_matches_enumeration_and_replies_are_msgpack_values():
    lm = _lm(3)
    rng = np.random.default_rng(4)
    reply = lm.sample(P, rng)
    assert msgpack.unpackb(msgpack.packb(reply)) == list(reply)
    table = dict(zip(lm.replies(), lm.log_probs(P)))
    assert lm.logprob(reply, P) == pytest.approx(table[reply])
    np.testing.assert_allclose(lm.logprob_many(lm.replies(), P), lm.log_probs(P))
    with pytest.raises(ValueError, match="reply"):
        lm.logprob((0, 0, 0, 0), P)
    with pytest.raises(ValueError, match="reply"):
        lm.logprob((7,), P)


def test_context_prefix_raises_brand_mentions_and_counterfactual_drops_it():
    lm = NGramLM.random(
        3, 2, 3, np.random.default_rng(5), query="q", advertise_gain=np.array([2.0, 2.0]),
        rival_penalty=np.array([1.0, 1.0]),
    )
    rate = lambda prompt: np.exp(lm.log_probs(prompt)) @ lm.mentions()  # noqa: E731
    con = Prompt("q", (0, 1))
    assert np.all(rate(con) > rate(P))
    assert rate(con.without(1))[1] < rate(con)[1]
    assert rate(Prompt("q", advertise=0))[0] > rate(P)[0]
    assert rate(Prompt("q", advertise=0))[1] < rate(P)[1]


def test_raw_scored_weights_converge_to_the_wrong_target():
    lm = _lm(6)
    log_ref = lm.log_probs(P)
    rewards = np.stack([lm.log_probs(Prompt("q", advertise=0)) - log_ref])
    target = optimum(log_ref, rewards, 1.0)
    tempered = lm.with_decoding(0.6, 1.0, "sampled")
    log_sampled = tempered.log_probs(P)
    log_raw = lm.with_decoding(0.6, 1.0, "raw").log_probs(P)
    np.testing.assert_allclose(log_raw, log_ref)
    rng = np.random.default_rng(7)
    m = 400
    right = shown_reply_law_mc(target.log_pi, log_sampled, m, rng, 4_000)
    wrong = shown_reply_law_mc(target.log_pi, log_sampled, m, rng, 4_000, log_score=log_raw)
    pi_star = np.exp(target.log_pi)
    assert total_variation(right, pi_star) < 0.02
    assert total_variation(wrong, pi_star) > 0.1
    # the raw-scored limit is pi* tilted by pi_sampled / pi_raw
    biased = pi_star * np.exp(log_sampled - log_raw)
    assert total_variation(wrong, biased / biased.sum()) < 0.02


def test_top_p_breaks_absolute_continuity_and_mosaic_reports_it():
    lm = _lm(8)
    nucleus = lm.with_decoding(1.0, 0.6, "sampled")
    assert missing_mass(lm.log_probs(P), nucleus.log_probs(P)) > 0.05
    outside = [r for r, lp in zip(lm.replies(), nucleus.log_probs(P)) if np.isneginf(lp)][:2]
    with pytest.raises(SupportFailure):
        mosaic(np.zeros((1, 2)), lm.logprob_many(outside, P), nucleus.logprob_many(outside, P), 1.0)


def test_ad_instance_runs_mosaic_on_sampled_replies():
    queries = ad_queries()
    inst = ngram_instance(queries[1], np.random.default_rng(9), temperature=0.8)
    rng = np.random.default_rng(10)
    cands = inst.sample_candidates(6, rng, context_aware=True)
    rewards = inst.rewards(cands)
    assert rewards.shape == (2, 6)
    out = mosaic(rewards, inst.log_ref(cands), inst.log_gen(cands, True), inst.tau)
    assert out.q.sum() == pytest.approx(1.0) and np.all(out.payments >= -1e-12)
    table = inst.reward_table()
    index = {r: k for k, r in enumerate(inst.lm.replies())}
    np.testing.assert_allclose(rewards, table[:, [index[c] for c in cands]])
