"""Advertiser and user agents of the ads market: Eq. 18 rewards from their own LLM, truthful reports,
the strategy registry, and the user's usefulness feedback log pi_ref of the shown reply."""

from __future__ import annotations

import numpy as np
import pytest

from agents.ad_strategies import AD_STRATEGIES, AdFeedback, AdObservation, Truthful, build_ad_strategy
from agents.advertisers import Advertiser
from agents.strategies import History
from market.core.lm.ads import catalogue_instance, ngram_instance
from market.core.wire import decode
from market.data import ad_queries
from market.runtime.eventlog import read_log
from market.runtime.platform import lm_reply, wire_reply
from market.runtime.records import MessageSent
from market.runtime.run import run_scenario
from scenarios.ads import instances


@pytest.mark.parametrize("make", [catalogue_instance, ngram_instance])
def test_reward_is_tau_times_log_ratio_of_own_llm_to_reference(make):
    q = ad_queries()[4]
    inst = make(q, np.random.default_rng(2), advertiser_tau=0.7)
    replies = inst.lm.replies()
    table = inst.reward_table()
    for i in range(inst.n):
        adv = Advertiser(q.advertisers[i], q.descriptions[i], 4, inst, i)
        got = adv.rewards([wire_reply(y) for y in replies])
        own = inst.lm.log_probs(inst.advertiser_prompt(i)) - inst.lm.log_probs(inst.ref_prompt)
        assert np.allclose(got, 0.7 * own, atol=1e-12)
        assert np.allclose(got, table[i], atol=1e-12)


def test_brand_out_of_range_is_refused():
    q = ad_queries()[0]
    with pytest.raises(ValueError, match=r"brand: got 2, expected a brand index in \[0, 2\)"):
        Advertiser("x", "d", 0, catalogue_instance(q, np.random.default_rng(0)), 2)


def test_truthful_strategy_reports_true_rewards_and_registry_names_it():
    true = np.array([0.5, -1.0, 2.0])
    assert np.array_equal(Truthful().report(AdObservation(true, 0, History(), np.random.default_rng(0))), true)
    assert isinstance(build_ad_strategy("truthful"), Truthful) and "truthful" in AD_STRATEGIES
    with pytest.raises(ValueError, match="advertiser strategy: unknown name 'shady'; known: ad-policy, add-constant, "):
        build_ad_strategy("shady")
    fb = AdFeedback(0, true, true, reward=1.5, payment=0.25)
    assert fb.utility == 1.25


def test_user_feedback_is_the_usefulness_of_the_shown_reply(tmp_path):
    config, summary, _ = run_scenario("ads", overrides=["market.queries=5", "run.rounds=5"], out=tmp_path)
    records = read_log(tmp_path / "events.msgpack").records
    insts = instances(config, config["run"]["seed"])
    sent = [r for r in records if isinstance(r, MessageSent)]
    shown = {decode(r.frame).round: decode(r.frame) for r in sent if r.kind == "reply_shown" and r.dst == "user"}
    feedback = [decode(r.frame) for r in sent if r.kind == "feedback"]
    assert len(feedback) == 5
    for fb in feedback:
        msg = shown[fb.round]
        inst = insts[msg.query_id]
        assert fb.reward == pytest.approx(float(inst.log_ref([lm_reply(inst, msg.reply)])[0]), abs=1e-12)
    total = sum(fb.reward for fb in feedback)
    assert summary["feedback"]["reward_sum"] == pytest.approx(total)
    assert summary["metrics"]["context"]["usefulness"] == pytest.approx(total / 5)
