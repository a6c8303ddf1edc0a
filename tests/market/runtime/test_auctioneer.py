"""Auctioneer: bad bids are refused with clear errors and a log record; the round completes."""

from __future__ import annotations

import math

import numpy as np

from agents.providers import Provider
from market.core.ledger import to_minor
from market.core.mechanisms.baselines import Myerson
from market.core.mechanisms.priors import UniformCost
from market.core.wire import CallForBids, Error, Query, RoundResult, Served, encode_fields
from market.runtime.agent import Agent
from market.runtime.auctioneer import ReverseAuctioneer
from market.runtime.world import World

THETA = np.array([[1.0, 0.5], [0.8, 0.9], [0.6, 0.6]])


class Scripted(Agent):
    """Answers each call for bids with the frames its script gives for that round."""

    groups = ("providers",)

    def __init__(self, agent_id, script):
        super().__init__(agent_id)
        self.script = script
        self.errors: list[Error] = []
        self.results: list[RoundResult] = []

    async def run(self):
        while True:
            env = await self.recv()
            msg = env.msg
            if isinstance(msg, CallForBids):
                for delay, frame in self.script(msg.round):
                    if delay:
                        await self.sleep(delay)
                    self.port.send_bytes("auctioneer", frame)
            elif isinstance(msg, Error):
                self.errors.append(msg)
            elif isinstance(msg, RoundResult):
                self.results.append(msg)


class OneQueryUser(Agent):
    def __init__(self, agent_id, queries):
        super().__init__(agent_id)
        self.queries = queries
        self.served: list[Served] = []

    async def run(self):
        for q in range(self.queries):
            self.send("auctioneer", Query(q, (1.0, 0.0)))
            while True:
                env = await self.recv()
                if isinstance(env.msg, Served):
                    self.served.append(env.msg)
                    break


def bid(r, amount):
    return encode_fields("bid", r, amount)


def run_market(scripts, outsider_script=None, queries=3, tmp_path=None):
    world = World({"test": True}, seed=3, out_dir=tmp_path)
    mech = Myerson(THETA[: len(scripts)], UniformCost(0.0, 1.0))
    providers = [f"p{i}" for i in range(len(scripts))]
    world.ledger.open("user", balance=to_minor(100.0))
    world.add(ReverseAuctioneer("auctioneer", mech, providers, world.ledger, world.record, world.rng("m"),
                                bid_window=1.0))
    agents = []
    for pid, script in zip(providers, scripts):
        world.ledger.open(pid)
        agents.append(world.add(Scripted(pid, script)))
    if outsider_script is not None:
        agents.append(world.add(Scripted("outsider", outsider_script)))
    user = world.add(OneQueryUser("user", queries), principal=True)
    world.drain_seconds = 2.0
    summary = world.run()
    return summary, agents, user


def honest(amount):
    return lambda r: [(0.0, bid(r, amount))]


def test_bad_bids_are_rejected_with_clear_errors_and_every_round_completes(tmp_path):
    bad = {
        0: [(0.0, bid(0, math.nan))],                       # NaN
        1: [(0.0, bid(1, -0.2))],                           # negative
        2: [(0.0, encode_fields("bid", 2, "cheap"))],       # wrong type
    }
    late = lambda r: [(1.5, bid(r, 0.1))]                   # after the 1 s deadline
    twice = lambda r: [(0.0, bid(r, 0.3)), (0.0, bid(r, 0.2))]
    summary, (p0, p1, p2, outsider), user = run_market(
        [lambda r: bad[r], late, twice], outsider_script=honest(0.01), tmp_path=tmp_path
    )
    assert summary["rounds"] == 3
    assert [s.query_id for s in user.served] == [0, 1, 2]
    # only p2's first bid counts in every round: it wins each time
    assert summary["wins"] == {"p2": 3}
    fields = [(e.code, e.field) for e in p0.errors]
    assert fields == [("malformed", "amount"), ("malformed", "amount"), ("malformed", "amount")]
    assert "nan" in p0.errors[0].detail and "-0.2" in p0.errors[1].detail and "cheap" in p0.errors[2].detail
    assert [e.code for e in p1.errors] == ["late"] * 3
    assert [e.code for e in p2.errors] == ["duplicate"] * 3
    assert [e.code for e in outsider.errors] == ["unknown_agent"] * 3
    assert summary["rejects"] == {"duplicate": 3, "late": 3, "malformed": 3, "unknown_agent": 3}


def test_out_of_range_bid_is_refused_by_the_auctioneer():
    summary, (p0, p1), user = run_market([honest(1.5), honest(0.4)])
    assert summary["wins"] == {"p1": 3}
    assert [e.code for e in p0.errors] == ["out_of_range"] * 3
    assert "1.5" in p0.errors[0].detail and p0.errors[0].field == "amount"


def test_silence_is_an_abstention_and_nobody_bidding_leaves_the_query_unsold():
    summary, _, user = run_market([lambda r: [], lambda r: []])
    assert summary["rounds"] == 3 and summary["unsold"] == 3
    assert all(s.provider == "" for s in user.served)
    assert summary["sim_seconds"] >= 3.0  # each round waited out its 1 s window


def test_winner_is_paid_its_critical_bid_through_the_ledger():
    summary, (p0, p1, p2), _ = run_market([honest(0.2), honest(0.3), honest(0.9)], queries=1)
    mech = Myerson(THETA, UniformCost(0.0, 1.0))
    out = mech.select(np.array([1.0, 0.0]), np.array([0.2, 0.3, 0.9]), np.random.default_rng(0))
    winner = f"p{out.winner}"
    assert summary["wins"] == {winner: 1}
    assert summary["received"][winner]["payment"] == to_minor(float(out.payments[out.winner]))
    assert sum(summary["balances"].values()) == 0


def test_truthful_providers_draw_costs_and_pay_them_when_they_win():
    world = World({}, seed=5)
    mech = Myerson(THETA, UniformCost(0.0, 1.0))
    prior = UniformCost(0.0, 1.0)
    world.ledger.open("user", balance=to_minor(100.0))
    providers = ["p0", "p1", "p2"]
    world.add(ReverseAuctioneer("auctioneer", mech, providers, world.ledger, world.record, world.rng("m")))
    for pid in providers:
        world.ledger.open(pid, overdraft=None)
        world.add(Provider(pid, prior, world.wallet(pid)))
    world.add(OneQueryUser("user", 20), principal=True)
    world.drain_seconds = 2.0
    summary = world.run()
    wins = sum(summary["wins"].values())
    costs = sum(v.get("serving cost", 0) for v in summary["paid"].values())
    assert wins > 0 and costs > 0
    for p in providers:  # truthful + critical payment: never paid less than cost
        assert summary["balances"][p] >= 0
