"""Overlapping auctions: every open auction in flight at once, each settled exactly as the mechanism settles
that auction's bids alone (ROSA's per-round guarantees unchanged), invitations within capacity and the cap K,
and the learner updated in the order feedback arrives."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from market.core.ledger import to_minor
from market.core.mechanisms.base import MechanismError
from market.runtime.auctioneer import ReverseAuctioneer
from market.runtime.config import resolve
from market.runtime.records import FeedbackAccepted, Rejected, RoundClosed
from market.runtime.world import World

SETS = ["market.users=60", "market.providers=8", "run.rounds=400", "market.latency=0.05", "market.jitter=0.05",
        "market.capacity=1", "market.max_bidders=4", "market.coverage=0.75", "run.checkpoint_every=0",
        'mechanism.name="rosa-trcm-ucb"', "mechanism.params.mu=0.3"]


class Recording:
    """The auctioneer's mechanism, recording each select's inputs and the state it ran from, and each update."""

    def __init__(self, inner, auctioneer):
        self.inner, self.auctioneer = inner, auctioneer
        self.n, self.name = inner.n, inner.name
        self.cost_floor, self.cost_cap, self.mu = inner.cost_floor, inner.cost_cap, inner.mu
        self.selects, self.updates = [], []
        self.max_open = 0

    def select(self, context, bids, rng, active=None):
        a = self.auctioneer
        self.max_open = max(self.max_open, len(a._open_rounds) + 1)  # the one closing has just left the book
        assert a.capacity == 0 or (a._load <= a.capacity).all()
        before = (copy.deepcopy(self.inner.get_state()), copy.deepcopy(rng.bit_generator.state))
        out = self.inner.select(context, bids, rng, active)
        self.selects.append((np.array(context), np.array(bids), np.array(active), before, out))
        return out

    def update(self, context, outcome, reward):
        self.updates.append(reward)
        self.inner.update(context, outcome, reward)

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)


@pytest.fixture(scope="module")
def run():
    config, market = resolve("crowd", SETS)
    world = World(config, 3, None)
    records = []
    world.metrics.append(type("Keep", (), {"observe": lambda self, r: records.append(r), "result": lambda self: {}})())
    market.build(world, config)
    auctioneer = next(a for a in world.agents if isinstance(a, ReverseAuctioneer))
    rec = Recording(auctioneer.mechanism, auctioneer)
    auctioneer.mechanism = rec
    summary = world.run()
    return config, market, world, rec, records, summary


def test_auctions_overlap_and_every_query_is_an_auction(run):
    config, _, _, rec, records, summary = run
    assert rec.max_open >= 3  # several auctions were open at once
    closed = [r for r in records if isinstance(r, RoundClosed)]
    assert len(closed) == summary["rounds"] == config["run"]["rounds"]
    assert sorted(r.round for r in closed) == list(range(len(closed)))
    assert [r.round for r in closed] != sorted(r.round for r in closed)  # they closed out of opening order


def test_each_auction_is_the_mechanism_on_its_own_bids(run):
    config, market, world, rec, records, _ = run
    closed = {r.round: r for r in records if isinstance(r, RoundClosed)}
    from scenarios.procurement import instance
    mech = instance(config, world.seed).mechanism.build()
    rng = np.random.default_rng(0)
    settled = [r for r in sorted(closed.values(), key=lambda r: r.t) if sum(r.extra["present"])]
    assert len(settled) == len(rec.selects)
    for r, (x, bids, active, (state, coins), out) in zip(settled, rec.selects):
        mech.set_state(copy.deepcopy(state))
        rng.bit_generator.state = coins
        again = mech.select(x, bids, rng, active)
        assert again.winner == out.winner
        assert np.array_equal(again.payments, out.payments) and np.array_equal(again.modified, out.modified)
        # the record is that outcome: winner, payments to the micro-credit, whose bids counted
        assert r.extra["present"] == active.tolist()
        assert r.winner == (f"provider-{out.winner}" if out.winner is not None else "")
        assert r.payments_minor == tuple(to_minor(float(p)) for p in out.payments)
        # ROSA per round: only the winner is paid, never less than its bid; only invited providers bid
        invited = set(r.extra["invited"])
        assert set(np.flatnonzero(active).tolist()) <= invited and len(invited) <= 4
        if out.winner is not None:
            assert out.payments[out.winner] >= bids[out.winner]
            assert np.count_nonzero(out.payments) <= 1


def test_capacity_left_providers_out_and_no_bid_was_refused(run):
    _, _, _, _, records, summary = run
    closed = [r for r in records if isinstance(r, RoundClosed)]
    assert sum(r.extra["full"] for r in closed) > 0
    assert not [r for r in records if isinstance(r, Rejected)], summary["rejects"]


def test_the_learner_updates_in_the_order_feedback_arrives(run):
    _, _, _, rec, records, _ = run
    assert rec.updates == [r.reward for r in records if isinstance(r, FeedbackAccepted)]
    assert len(rec.updates) > 300


def test_limits_need_overlap():
    config, _ = resolve("crowd", [])
    from scenarios.procurement import instance
    mech = instance(config, 0).mechanism.build()
    with pytest.raises(MechanismError, match="need overlap"):
        ReverseAuctioneer("a", mech, [f"provider-{i}" for i in range(mech.n)], None, print,
                          np.random.default_rng(0), capacity=2)
    with pytest.raises(MechanismError, match="invite_rng"):
        ReverseAuctioneer("a", mech, [f"provider-{i}" for i in range(mech.n)], None, print,
                          np.random.default_rng(0), overlap=True, max_bidders=2)
