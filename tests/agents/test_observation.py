"""Strategies see an Observation (cost, context, the market's round, their own history): round- and
history-dependent strategies written without counters bid alike through the real bus and the fast engine;
the deprecated bid(cost, context, rng) still works; the history is bounded, fixed once handed out and
checkpointed with the provider."""

from __future__ import annotations

import numpy as np
import pytest

from agents.providers import Provider
from agents.strategies import (
    Bidder,
    BidderFacts,
    BiddingStrategy,
    BidFeedback,
    History,
    Observation,
    Strategy,
    Truthful,
    bid_style,
)
from market.core.mechanisms.priors import UniformCost
from market.lab.deviation import FastMarket, build_world

SETS = ["mechanism.name=pay-as-bid"]
ROUNDS = 240


class LateShade(Strategy):
    """Bids its cost until round 100, then 1.3 x cost: depends on the round, keeps no counter."""

    name = "late-shade"

    def __init__(self, facts: BidderFacts = BidderFacts()) -> None:
        super().__init__(facts)
        self.seen: list[tuple[int, float]] = []  # (round, bid), for the test to compare

    def bid(self, obs: Observation) -> float:
        b = self.clip(obs.cost * (1.3 if obs.round >= 100 else 1.0))
        self.seen.append((obs.round, b))
        return b


class Streak(Strategy):
    """Shades by 0.15 per win among its last 4 rounds: depends on its history, keeps no counter."""

    name = "streak"
    memory = 4

    def __init__(self, facts: BidderFacts = BidderFacts()) -> None:
        super().__init__(facts)
        self.seen: list[tuple[int, float]] = []
        self.lengths: list[int] = []

    def bid(self, obs: Observation) -> float:
        wins = sum(f.won for f in obs.history)
        b = self.clip(obs.cost * (1.0 + 0.15 * wins))
        self.seen.append((obs.round, b))
        self.lengths.append(len(obs.history))
        if obs.history:  # without faults the last outcome it learnt is the previous round's
            assert obs.history[-1].round == obs.round - 1
        return b


class OldStyleLateShade(Strategy):
    """LateShade written against the deprecated bid(cost, context, rng): it must count its own calls."""

    name = "old-late-shade"

    def __init__(self, facts: BidderFacts = BidderFacts()) -> None:
        super().__init__(facts)
        self.calls = 0
        self.seen: list[tuple[int, float]] = []

    def bid(self, cost, context, rng):
        b = self.clip(cost * (1.3 if self.calls >= 100 else 1.0))
        self.seen.append((self.calls, b))
        self.calls += 1
        return b

    def get_state(self):
        return {"calls": self.calls}

    def set_state(self, state):
        self.calls = int(state["calls"])


class Tally(Strategy):
    """Shades by 0.02 per round it ever won (at most 20): its whole history (memory None) decides its bid."""

    name = "tally"
    memory = None

    def bid(self, obs: Observation) -> float:
        return self.clip(obs.cost * (1.0 + 0.02 * min(sum(f.won for f in obs.history), 20)))


PLANTED = {"provider-0": LateShade, "provider-1": Streak, "provider-3": OldStyleLateShade}


def market_bids() -> dict[str, list[tuple[int, float]]]:
    world = build_world("quickstart", SETS, 0, ROUNDS)
    providers = {a.id: a for a in world.agents if isinstance(a, Provider)}
    planted = {}
    with pytest.warns(DeprecationWarning, match="bid\\(cost, context, rng\\) is deprecated"):
        for pid, cls in PLANTED.items():
            planted[pid] = providers[pid].strategy = cls(providers[pid].strategy.facts)
    world.run()
    return {pid: s.seen for pid, s in planted.items()}


def fast_bids() -> dict[str, list[tuple[int, float]]]:
    market = FastMarket("quickstart", SETS, 0, ROUNDS)
    planted = {}
    with pytest.warns(DeprecationWarning):
        for pid, cls in PLANTED.items():
            i = market.ids.index(pid)
            planted[pid] = cls(market.strategies[i].facts)
            market.bidders[i] = Bidder(planted[pid])
    for t in range(ROUNDS):
        market.round(t)
    return {pid: s.seen for pid, s in planted.items()}


def test_round_and_history_dependent_strategies_bid_alike_through_the_bus_and_the_fast_engine():
    market, fast = market_bids(), fast_bids()
    for pid in PLANTED:
        assert len(market[pid]) == ROUNDS
        assert market[pid] == fast[pid], pid
    assert [r for r, _ in market["provider-0"]] == list(range(ROUNDS))  # the market's round index
    late = np.array([b for _, b in market["provider-0"]])
    assert late[100:].mean() > 1.15 * late[:100].mean()  # it shades from round 100 on
    # the old-style strategy, counting its own calls, still runs: here (no faults) its count is the round
    assert [r for r, _ in market["provider-3"]] == list(range(ROUNDS))
    # the history-dependent one really depends on its wins: several multipliers occur
    assert len({round(b, 9) for _, b in market["provider-1"]}) > 10


def test_the_round_dependent_strategy_shades_exactly_from_round_100():
    market = FastMarket("quickstart", SETS, 0, 150)
    i = market.ids.index("provider-0")
    late = LateShade(market.strategies[i].facts)
    market.bidders[i] = Bidder(late)
    costs = []
    for t in range(150):
        costs.append(market.round(t)[3][i])
    bids = [b for _, b in late.seen]
    expected = [min(c * (1.3 if t >= 100 else 1.0), 1.0) for t, c in enumerate(costs)]
    assert bids == pytest.approx(expected, abs=0)


def test_the_history_is_bounded_by_memory_and_a_view_handed_out_never_changes():
    streak = Streak(BidderFacts(0, 3, 0.0, 1.0))
    bidder = Bidder(streak)
    rng = np.random.default_rng(0)
    views = []
    for t in range(300):
        bidder.bid(0.5, np.zeros(2), t, rng)
        views.append(bidder.history())
        bidder.learn(BidFeedback(t, t % 2 == 0, 0.6 if t % 2 == 0 else 0.0, 0.5, 0.5))
    assert streak.lengths[:6] == [0, 1, 2, 3, 4, 4] and max(streak.lengths) == 4
    assert len(bidder._memory.items) <= 2 * 4 + 64  # trimmed as it goes: memory stays bounded over a long run
    early = views[3]
    assert [f.round for f in early] == [0, 1, 2] and early[-1].round == 2 and early[0:2][1].round == 1
    with pytest.raises(IndexError, match="history index 3 out of range for 3 rounds"):
        early[3]
    assert [f.round for f in bidder.history()] == [296, 297, 298, 299]
    assert len(Bidder(Truthful()).history()) == 0  # memory 0: nothing is kept


def test_a_provider_checkpoints_the_history_only_when_its_strategy_keeps_one():
    facts = BidderFacts(0, 3, 0.0, 1.0)
    plain = Provider("provider-0", UniformCost(), wallet=None, strategy=Truthful(facts))
    plain.rng = np.random.default_rng(0)
    assert "history" not in plain.get_state()  # checkpoints of built-in strategies keep their bytes
    keeper = Provider("provider-0", UniformCost(), wallet=None, strategy=Streak(facts))
    keeper.rng = np.random.default_rng(0)
    for t in range(6):
        keeper.bidder.learn(BidFeedback(t, t < 3, 0.7 if t < 3 else 0.0, 0.5, 0.6))
    state = keeper.get_state()
    assert state["history"] == [[t, t < 3, 0.7 if t < 3 else 0.0, 0.5, 0.6] for t in range(2, 6)]
    twin = Provider("provider-0", UniformCost(), wallet=None, strategy=Streak(facts))
    twin.rng = np.random.default_rng(1)
    twin.set_state(state)
    assert list(twin.bidder.history()) == list(keeper.bidder.history())


def test_the_bid_signature_is_read_once_and_a_wrong_one_is_refused_by_name():
    class Obs:
        name = "obs"

        def bid(self, obs):
            return obs.cost

    class Old:
        name = "old"

        def bid(self, cost, context, rng=None):
            return cost

    class Two:
        name = "two"

        def bid(self, cost, context):
            return cost

    assert bid_style(Obs()) == "observation" and bid_style(Old()) == "legacy"
    assert bid_style(Truthful()) == "observation"
    with pytest.raises(TypeError, match=r"strategy 'two': bid\(cost, context\) takes 2 arguments; expected bid\(obs\)"):
        Bidder(Two())
    with pytest.raises(TypeError, match=r"strategy 'nothing' lacks method `bid\(obs\)`"):
        bid_style(type("Nothing", (), {"name": "nothing"})())
    with pytest.raises(TypeError, match="memory = -1"):
        Bidder(type("Neg", (Truthful,), {"memory": -1})())


def test_built_in_strategies_satisfy_the_protocol(strategy_params):
    from agents.strategies import STRATEGIES, build_strategy

    for name in STRATEGIES:
        strategy = build_strategy(name, BidderFacts(0, 3, 0.0, 1.0, 0.2), **strategy_params(name, 3))
        assert isinstance(strategy, BiddingStrategy), name
    assert isinstance(History(), History) and len(History()) == 0


def test_a_run_with_a_history_dependent_strategy_resumes_to_the_same_log(tmp_path, monkeypatch):
    from agents.strategies import STRATEGIES
    from market.runtime.run import resume_scenario, run_scenario

    monkeypatch.setitem(STRATEGIES._entries, "test-streak", Streak)
    monkeypatch.setitem(STRATEGIES._entries, "test-tally", Tally)
    sets = ["mechanism.name=pay-as-bid", "strategies.overrides.provider-1=test-streak",
            "strategies.overrides.provider-2=test-tally", "run.rounds=200",
            "run.checkpoint_every=25"]
    run_scenario("quickstart", overrides=sets, out=tmp_path / "whole")
    whole = (tmp_path / "whole" / "events.msgpack").read_bytes()
    cut = int(len(whole) * 0.6)

    def resumed(name: str) -> bytes:
        d = tmp_path / name
        d.mkdir()
        (d / "events.msgpack").write_bytes(whole[:cut])
        resume_scenario(d)
        return (d / "events.msgpack").read_bytes()

    assert resumed("cut") == whole
    # the history in the checkpoint is what makes it so: resumed without it, the strategy bids otherwise
    monkeypatch.setattr(Bidder, "set_state", lambda self, rows: None)
    assert resumed("forgetful") != whole
