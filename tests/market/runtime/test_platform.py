"""The ad platform: refuses bad reward reports and finishes the round, abstention, sealed candidates,
candidates independent of reports, payments settled in the ledger, utilities equal MOSAIC's."""

from __future__ import annotations

import numpy as np
import pytest

from agents.ad_users import AdUser
from agents.advertisers import Advertiser
from market.conformance.truthfulness import RecordKeeper
from market.core.lm.ads import catalogue_instance, ngram_instance
from market.core.mechanisms.aggregation import mosaic
from market.core.mechanisms.base import MechanismError
from market.core.wire import Candidates, Error, RewardReport, encode_fields, pack_vector
from market.data import ad_queries
from market.runtime.agent import Agent
from market.runtime.config import resolve
from market.runtime.platform import AdPlatform, lm_reply, reply_mentions, wire_reply
from market.runtime.records import MessageSent, Rejected, RoundClosed
from market.runtime.world import World
from scenarios.ads import instances

M = 8


class Scripted(Agent):
    """Sends, for each candidate set, the reports ``script(candidates)`` returns (raw frames or messages)."""

    def __init__(self, agent_id, script):
        super().__init__(agent_id)
        self.script = script
        self.errors: list[Error] = []

    async def run(self):
        while True:
            env = await self.recv()
            if type(env.msg) is Candidates:
                for item in self.script(env.msg):
                    if isinstance(item, bytes):
                        self.port.send_bytes("auctioneer", item)
                    else:
                        self.send("auctioneer", item)
            elif type(env.msg) is Error:
                self.errors.append(env.msg)


class Scaled:
    """Reports c times its true rewards (a misreport, to show candidates do not depend on reports)."""

    name = "scaled"

    def __init__(self, c):
        self.c = c

    def report(self, true_rewards, rng):
        return self.c * np.asarray(true_rewards)

    def learn(self, feedback):
        pass

    def get_state(self):
        return {}


def _market(replace=None, queries=2, rounds=2, strategy=None, mechanism="mosaic"):
    config, _ = resolve("ads", [f"market.queries={queries}", f"run.rounds={rounds}"])
    world = World(config, 3)
    collector = RecordKeeper()
    world.metrics.append(collector)
    records, record = collector.records, world.record

    insts = instances(config, 3)
    qs = ad_queries()[:queries]
    world.ledger.open("platform", overdraft=None)
    platform = AdPlatform("auctioneer", mechanism, insts, [q.advertisers for q in qs], world.ledger, record,
                          world.rng("mechanism"), candidates=M, report_window=0.5)
    world.add(platform)
    agents = {}
    for k, (q, inst) in enumerate(zip(qs, insts)):
        for i, name in enumerate(q.advertisers):
            world.ledger.open(name, balance=10**9)
            if k == 0 and i in (replace or {}):
                agents[name] = world.add(replace[i](name))
            else:
                agents[name] = world.add(Advertiser(name, q.descriptions[i], k, inst, i, strategy))
    user = world.add(AdUser("user", [k % queries for k in range(rounds)], insts), principal=True)
    world.drain_seconds = 1.0
    world.run()
    return world, records, insts, agents, user


def _rounds(records):
    return [r for r in records if isinstance(r, RoundClosed)]


def test_bad_reports_are_refused_with_clear_errors_and_the_round_completes():
    def script(c):
        good = tuple(0.1 * j for j in range(M))
        return [
            RewardReport(c.round, good[:-1]),                                    # wrong length
            RewardReport(c.round, (1e9,) + good[1:]),                            # out of range
            encode_fields("reward_report", c.round, pack_vector([float("nan")] * M)),  # NaN: the bus refuses
            RewardReport(c.round + 99, good),                                    # not the open round
            RewardReport(c.round, good),
            RewardReport(c.round, good),                                         # duplicate
        ]

    name = ad_queries()[0].advertisers[1]
    world, records, _, agents, user = _market(
        {0: lambda n: Scripted(n, lambda c: []), 1: lambda n: Scripted(n, script)}, queries=1, rounds=1
    )
    rejects = [r for r in records if isinstance(r, Rejected)]
    # the bus refuses the NaN frame as it is sent; the platform refuses the rest as they arrive
    assert [(r.offender, r.code, r.field) for r in rejects] == [
        (name, "malformed", "rewards[0]"), (name, "wrong_length", "rewards"),
        (name, "out_of_range", "rewards[0]"), (name, "late", "round"), (name, "duplicate", "round"),
    ]
    assert "expected one per candidate (8)" in rejects[1].detail and "1000000000.0" in rejects[2].detail
    assert sorted(e.code for e in agents[name].errors) == sorted(
        ["malformed", "wrong_length", "out_of_range", "late", "duplicate"])
    (rnd,) = _rounds(records)
    silent = ad_queries()[0].advertisers[0]
    assert rnd.extra["abstained"] == [silent]  # the valid report counted, the silent advertiser abstained
    assert user.shown == 1 and world.summary.feedback_count == 1


def test_a_missing_report_is_an_abstention_with_zero_payment():
    world, records, insts, _, _ = _market({1: lambda n: Scripted(n, lambda c: [])}, queries=1, rounds=1)
    (rnd,) = _rounds(records)
    silent = ad_queries()[0].advertisers[1]
    assert rnd.extra["abstained"] == [silent]
    assert rnd.payments_minor[1] == 0
    cands = [r for r in records if isinstance(r, MessageSent) and r.kind == "candidates"]
    from market.core.wire import decode
    ys = [lm_reply(insts[0], y) for y in decode(cands[0].frame).replies]
    rewards = insts[0].rewards(ys)
    rewards[1] = 0.0
    expected = mosaic(rewards, insts[0].log_ref(ys), insts[0].log_gen(ys, True), insts[0].tau)
    assert np.allclose(rnd.extra["q"], expected.q, atol=1e-12)
    assert rnd.payments_minor[0] == round(expected.payments[0] * 1e6)


def test_candidates_are_sealed_to_the_query_advertisers_and_independent_of_reports():
    _, truthful, *_ = _market(rounds=4)
    _, scaled, *_ = _market(rounds=4, strategy=Scaled(3.0))
    qs = ad_queries()[:2]
    cands = [r for r in truthful if isinstance(r, MessageSent) and r.kind == "candidates"]
    assert [r.dst for r in cands] == [",".join(qs[k % 2].advertisers) for k in range(4)]
    assert cands == [r for r in scaled if isinstance(r, MessageSent) and r.kind == "candidates"]
    assert [r.extra["q"] for r in _rounds(truthful)] != [r.extra["q"] for r in _rounds(scaled)]


def test_truthful_advertisers_expected_utility_equals_mosaic_utilities_on_the_candidates():
    from market.core.wire import decode

    world, records, insts, agents, _ = _market(rounds=6)
    cands = {decode(r.frame).round: decode(r.frame) for r in records
             if isinstance(r, MessageSent) and r.kind == "candidates"}
    for rnd in _rounds(records):
        r, qid, pay_minor, extra = rnd.round, rnd.query_id, rnd.payments_minor, rnd.extra
        inst = insts[qid]
        ys = [lm_reply(inst, y) for y in cands[r].replies]
        names = ad_queries()[qid].advertisers
        true = np.stack([agents[a].rewards(cands[r].replies) for a in names])  # each advertiser's own LLM
        ref = mosaic(inst.rewards(ys), inst.log_ref(ys), inst.log_gen(ys, True), inst.tau)
        realised = np.asarray(extra["q"]) @ true.T - np.asarray(pay_minor) / 1e6
        assert np.allclose(realised, ref.utilities, atol=1e-6)  # payments are rounded to micro-credits


def test_money_is_conserved_and_payments_go_from_advertisers_to_the_platform():
    world, records, *_ = _market(rounds=6)
    assert world.ledger.total() == 0
    revenue = sum(sum(r.payments_minor) for r in _rounds(records))
    assert revenue > 0
    assert world.summary.received["platform"]["payment"] == revenue
    paid = sum(c.get("payment", 0) for a, c in world.summary.paid.items() if a != "platform")
    assert paid == revenue


def test_token_auction_and_bad_arguments_are_refused_by_name():
    insts = [catalogue_instance(ad_queries()[0], np.random.default_rng(0))]
    args = (insts, [("a", "b")], None, print, np.random.default_rng(0))
    with pytest.raises(MechanismError, match="token-auction"):
        AdPlatform("auctioneer", "token-auction", *args)
    with pytest.raises(MechanismError, match="proposals"):
        AdPlatform("auctioneer", "mosaic", *args, proposals=("fancy",))
    with pytest.raises(MechanismError, match=r"advertisers\[0\]: 1 ids for 2 brands"):
        AdPlatform("auctioneer", "mosaic", insts, [("a",)], None, print, np.random.default_rng(0))


def test_replies_travel_as_int_tuples_and_mentions_are_read_from_them():
    q = ad_queries()[0]
    cat = catalogue_instance(q, np.random.default_rng(0))
    for y in cat.lm.replies():
        assert lm_reply(cat, wire_reply(y)) == y
        assert (reply_mentions(cat, wire_reply(y)) == cat.lm.mentions()[y]).all()
    ngram = ngram_instance(q, np.random.default_rng(0))
    for y, row in zip(ngram.lm.replies(), ngram.lm.mentions()):
        assert lm_reply(ngram, wire_reply(y)) == y
        assert (reply_mentions(ngram, wire_reply(y)) == row).all()
    with pytest.raises(ValueError, match="1-tuple"):
        lm_reply(cat, (1, 2))
