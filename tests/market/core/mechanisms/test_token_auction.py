"""Linear token auction of Dütting et al. (WWW 2024): aggregation and stable-sampling payments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from market.core.lm import NGramLM, Prompt
from market.core.mechanisms.base import MechanismError
from market.core.mechanisms.token_auction import linear_payment, run_token_auction, token_auction


def _agents(seed: int, n: int, v: int):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(v), size=n), rng.uniform(0.1, 3.0, size=n)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 4), st.integers(2, 6))
def test_linear_payment_equals_integral_of_distance_gap(seed, n, v):
    probs, bids = _agents(seed, n, v)
    z = linear_payment(probs, bids)
    for i in range(n):
        def dist(b):
            trial = bids.copy()
            trial[i] = b
            return np.abs(token_auction(probs, trial, payment="none").q - probs[i]).sum()

        integral = quad(lambda b: dist(b) - dist(bids[i]), 0.0, bids[i], epsabs=1e-12)[0]
        assert z[i] == pytest.approx(0.5 * integral, abs=1e-8)
        assert z[i] >= 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 4), st.integers(2, 6))
def test_linear_aggregation_is_monotone_in_own_bid(seed, n, v):
    probs, bids = _agents(seed, n, v)
    distances = []
    for b in np.linspace(0.01, 5.0, 12):
        trial = bids.copy()
        trial[0] = b
        distances.append(np.abs(token_auction(probs, trial).q - probs[0]).sum())
    assert np.all(np.diff(distances) <= 1e-12)


def test_linear_mix_and_single_agent_pays_nothing():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    step = token_auction(probs, np.array([1.0, 3.0]))
    np.testing.assert_allclose(step.q, [0.5, 0.5])
    alone = token_auction(probs[:1], np.array([2.0]))
    np.testing.assert_allclose(alone.q, probs[0])
    assert alone.payments[0] == 0.0
    same = token_auction(np.array([[0.3, 0.7], [0.3, 0.7]]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(same.payments, 0.0, atol=1e-15)


def test_log_linear_aggregation_has_no_payment_rule():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    step = token_auction(probs, np.array([1.0, 1.0]), aggregation="log-linear", payment="none")
    expected = np.sqrt(probs[0] * probs[1])
    np.testing.assert_allclose(step.q, expected / expected.sum())
    with pytest.raises(MechanismError, match="log-linear"):
        token_auction(probs, np.array([1.0, 1.0]), aggregation="log-linear")


@pytest.mark.parametrize(
    "probs, bids, field",
    [
        (np.array([[0.5, 0.5]]), np.array([-1.0]), "bids"),
        (np.array([[0.5, 0.5]]), np.array([0.0]), "bids"),
        (np.array([[0.5, 0.6]]), np.array([1.0]), "token_probs"),
        (np.array([[0.5, 0.5]]), np.array([1.0, 2.0]), "bids"),
    ],
)
def test_invalid_inputs_name_the_field(probs, bids, field):
    with pytest.raises(MechanismError, match=field):
        token_auction(probs, bids)


def test_decoding_a_reply_charges_every_token():
    rng = np.random.default_rng(2)
    lm = NGramLM.random(3, 2, 4, rng, advertise_gain=np.array([3.0, 3.0]))
    prompts = [Prompt("q", advertise=0), Prompt("q", advertise=1)]
    bids = np.array([1.0, 2.0])
    out = run_token_auction(lm, prompts, bids, np.random.default_rng(9))
    again = run_token_auction(lm, prompts, bids, np.random.default_rng(9))
    assert out.reply == again.reply and len(out.reply) <= 4
    assert np.all(out.payments >= 0)
    # the payment is the sum of per-step payments along the decoded prefix
    expected = np.zeros(2)
    prefix: list[int] = []
    for token in list(out.reply) + [lm.eos]:
        if len(prefix) == lm.max_len:
            break
        probs = np.stack([lm.next_token_probs(prefix, p) for p in prompts])
        expected += linear_payment(probs, bids)
        prefix.append(token)
    np.testing.assert_allclose(out.payments, expected)
