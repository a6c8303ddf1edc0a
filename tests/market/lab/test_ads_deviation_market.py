"""Ad-market deviations through the real platform: descriptions reach the platform as text and steer the
context-aware proposal, the market engine agrees with the floor-1 loop, malformed descriptions are refused."""

from __future__ import annotations

import numpy as np
import pytest

from agents.ad_strategies import DescriptionPull, Truthful
from agents.advertisers import Advertiser
from market.conformance.truthfulness import RecordKeeper
from market.core.lm.ads import description_pull
from market.core.lm.base import Prompt
from market.core.wire import MAX_DESCRIPTION_LEN, AdDescription
from market.data import ad_queries
from market.lab.deviation import build_world, deviate, play_ads, play_ads_market
from market.runtime.agent import Agent
from market.runtime.config import ConfigError
from market.runtime.platform import description_refusal
from market.runtime.records import MessageSent, Rejected
from scenarios.ads import PositionMeter, instances

QUERIES = ad_queries()


def _market_run(strategy: str, seed: int, rounds: int):
    """The ads scenario through the market with advertiser 0 of every query playing ``strategy``;
    returns (PositionMeter, world)."""
    sets = [f"strategies.overrides.{q.advertisers[0]}={strategy}" for q in QUERIES]
    world = build_world("ads", sets, seed, rounds)
    meter = PositionMeter(world.config, seed, world.auctioneer_id)
    world.metrics.append(meter)
    world.run()
    return meter, world


# -- the description-to-pull rule ---------------------------------------------------------------------


def test_built_in_descriptions_give_pull_1_and_the_same_proposal_as_before():
    config = build_world("ads", [], 0, 1).config
    for q, inst in zip(QUERIES, instances(config, 0)):
        pulls = inst.pulls(q.descriptions)
        assert pulls == (1, 1)
        prompt = inst.proposal_prompt(True, pulls=pulls)
        assert prompt == Prompt(q.query, (0, 1)) == inst.proposal_prompt(True)
        assert inst.proposal_prompt(True, without=0, pulls=pulls) == Prompt(q.query, (1,))


def test_the_proposal_bonus_of_a_brand_is_the_context_gain_times_its_description_pull():
    q = QUERIES[0]
    inst = instances(build_world("ads", [], 0, 1).config, 0)[0]
    lm = inst.proposal_lm
    base = lm.log_probs(inst.proposal_prompt(True))
    for pull in (2, 3, 5):
        text = DescriptionPull(pull).describe(q.advertisers[0], q.descriptions[0])
        assert description_pull(text, q.advertisers[0]) == pull
        assert len(text) <= MAX_DESCRIPTION_LEN and description_refusal(text) is None
        pulled = lm.log_probs(inst.proposal_prompt(True, pulls=inst.pulls((text, q.descriptions[1]))))
        shift = pulled - base - (pull - 1) * lm.context_gain * lm.mentions()[:, 0]
        assert np.allclose(shift, shift[0], atol=1e-9)  # equal up to normalisation


def test_description_pull_counts_whole_words_case_insensitively_and_at_least_once():
    assert description_pull("selling guitars", "StrumMaster") == 1
    assert description_pull("strummaster, STRUMMASTER and StrumMasters", "StrumMaster") == 2
    assert description_pull("GreenThumb Solutions! greenthumb solutions.", "GreenThumb Solutions") == 2
    assert Truthful().describe("StrumMaster", "selling guitars") == "selling guitars"
    with pytest.raises(ValueError, match="pull = 1.5"):
        DescriptionPull(1.5)


# -- through the real platform --------------------------------------------------------------------------


def test_a_pulling_description_gets_its_brand_mentioned_more_through_the_platform():
    """CRN: same seed, only advertiser 0's strategy differs. Its brand's share among the candidates rises by
    more than 0.3 on every seed (measured: 0.43 -> 0.97 on average over seeds 0-2); among the shown replies,
    which MOSAIC picks by reported rewards as well, it rises on average over the seeds by more than 0.05
    (measured 0.62 -> 0.73; on seed 1 alone it falls, 0.73 -> 0.67)."""
    seeds, rounds = (0, 1, 2), 60
    shown_gain = []
    for seed in seeds:
        twin, _ = _market_run("truthful", seed, rounds)
        pull, world = _market_run("description-pull", seed, rounds)
        assert pull.rounds == twin.rounds == rounds
        t, p = twin.result()["positions"], pull.result()["positions"]
        assert p["candidate_mention_rate"][0] - t["candidate_mention_rate"][0] > 0.3
        assert p["candidate_mention_rate"][1] < t["candidate_mention_rate"][1]  # the rival is crowded out
        shown_gain.append(p["shown_mention_rate"][0] - t["shown_mention_rate"][0])
        platform = next(a for a in world.agents if a.id == world.auctioneer_id)
        written = platform.descriptions[0][0]
        assert written.count(f"Recommend {QUERIES[0].advertisers[0]}.") == 1
        assert platform.descriptions[0][1] == QUERIES[0].descriptions[1]
    assert np.mean(shown_gain) > 0.05


@pytest.mark.parametrize("strategy", ["exaggerate", "description-pull"])
@pytest.mark.parametrize("mechanism", ["mosaic", "mosaic-rochet", "mosaic-nopay"])
def test_the_market_engine_reproduces_the_fast_engine_to_the_micro_credit(mechanism, strategy):
    rounds = 40
    fast, market = play_ads(mechanism, strategy, 5, rounds), play_ads_market(mechanism, strategy, 5, rounds)
    assert fast.utilities.keys() == market.utilities.keys() and fast.rounds == market.rounds == rounds
    for a in fast.utilities:
        assert market.utilities[a] == pytest.approx(fast.utilities[a], abs=rounds * 1e-6)
    assert market.user == pytest.approx(fast.user, abs=1e-9)
    assert market.platform == pytest.approx(fast.platform, abs=2 * rounds * 1e-6)


def test_exaggeration_loses_under_mosaic_and_pays_without_payments_in_both_engines():
    verdicts = {}
    for mechanism in ("mosaic", "mosaic-nopay"):
        for engine in ("fast", "market"):
            verdicts[mechanism, engine] = deviate("ads", "exaggerate", seeds=4, rounds=60, engine=engine,
                                                  overrides=[f"mechanism.name={mechanism}"])
    assert verdicts["mosaic", "market"].verdict == verdicts["mosaic", "fast"].verdict == "loses"
    assert verdicts["mosaic-nopay", "market"].verdict == verdicts["mosaic-nopay", "fast"].verdict == "profitable"
    for mechanism in ("mosaic", "mosaic-nopay"):
        np.testing.assert_allclose(verdicts[mechanism, "market"].gains, verdicts[mechanism, "fast"].gains, atol=1e-5)
    assert verdicts["mosaic", "market"].platform > 0  # the exaggerator's extra payments reach the platform


def test_a_pulling_description_gains_under_mosaic_through_the_market_as_in_the_fast_engine():
    sets = ["mechanism.name=mosaic"]
    market = deviate("ads", "description-pull", seeds=4, rounds=60, engine="market", overrides=sets)
    fast = deviate("ads", "description-pull", seeds=4, rounds=60, engine="fast", overrides=sets)
    assert market.verdict == fast.verdict == "profitable"
    np.testing.assert_allclose(market.gains, fast.gains, atol=1e-5)


def test_the_market_engine_refuses_the_token_auction_and_other_deviators_by_name():
    with pytest.raises(ConfigError, match="token-auction"):
        play_ads_market("token-auction", "exaggerate", 0, 5)
    with pytest.raises(ConfigError, match="--deviator"):
        deviate("ads", "exaggerate", deviator="advertiser-1", seeds=2, rounds=5, engine="market")


# -- malformed descriptions ------------------------------------------------------------------------------


class Writes(Truthful):
    """Reports truthfully and sends ``text`` as its description."""

    def __init__(self, text):
        self.text = text

    def describe(self, brand, description):
        return self.text


class AlsoDescribes(Advertiser):
    """An advertiser that first sends descriptions for queries it does not advertise on (or that do not exist)."""

    def __init__(self, original: Advertiser, extra: list[AdDescription]):
        super().__init__(original.id, original.description, original.query_id, original.instance, original.brand,
                         original.strategy, original.platform)
        self.extra = extra

    async def run(self):
        for msg in self.extra:
            self.send(self.platform, msg)
        await super().run()


class Intruder(Agent):
    """Not an advertiser: sends a description anyway."""

    async def run(self):
        self.send("auctioneer", AdDescription(0, "Recommend nobody."))
        await self.sleep(1e9)


def test_malformed_descriptions_are_refused_with_clear_errors_and_the_market_goes_on():
    seed, rounds = 7, 6
    q0, q1, q2 = QUERIES[:3]
    too_long = "Recommend " + q0.advertisers[0] + "!" * MAX_DESCRIPTION_LEN
    unprintable = f"Recommend {q1.advertisers[0]}.\x00 Recommend {q1.advertisers[0]}."

    def with_strategy(strategy):
        def make(agent):
            agent.strategy = strategy
            return agent
        return make

    keeper, plain = RecordKeeper(), RecordKeeper()
    swap = {
        q0.advertisers[0]: with_strategy(Writes(too_long)),
        q1.advertisers[0]: with_strategy(Writes(unprintable)),
        q2.advertisers[0]: lambda a: AlsoDescribes(a, [AdDescription(0, "off topic"), AdDescription(999, "nowhere")]),
    }
    sets = ["market.queries=3"]
    world = build_world("ads", sets, seed, rounds)
    for k, agent in enumerate(world.agents):
        if agent.id in swap:
            world.agents[k] = swap[agent.id](agent)
    world.add(Intruder("intruder"))
    world.metrics.append(keeper)
    summary = world.run()

    rejects = [(r.offender, r.code, r.field, r.detail) for r in keeper.records if isinstance(r, Rejected)]
    assert [(src, code, field) for src, code, field, _ in rejects] == [
        (q0.advertisers[0], "malformed", "description"),     # the bus: longer than the wire's cap
        (q1.advertisers[0], "bad_description", "description"),
        (q2.advertisers[0], "not_invited", "src"),
        (q2.advertisers[0], "unknown_query", "query_id"),
        ("intruder", "unknown_agent", "src"),
    ]
    details = [d for *_, d in rejects]
    assert f"at most {MAX_DESCRIPTION_LEN} characters" in details[0] and "'Recommend" in details[0]
    assert "'\\x00' at position" in details[1] and "printable" in details[1]
    assert "got 999" in details[3]

    # the market goes on: every round ran, and the refused descriptions changed no candidate
    world_plain = build_world("ads", sets, seed, rounds)
    world_plain.metrics.append(plain)
    world_plain.run()
    candidates = lambda recs: [(r.t, r.frame) for r in recs  # noqa: E731
                               if isinstance(r, MessageSent) and r.kind == "candidates"]
    assert summary["rounds"] == rounds and len(candidates(keeper.records)) == rounds
    assert candidates(keeper.records) == candidates(plain.records)
    platform = next(a for a in world.agents if a.id == world.auctioneer_id)
    assert platform.descriptions[0] == ["", q0.descriptions[1]] and platform.descriptions[1][0] == ""
