"""Choosing users and posted-price / curve providers in a small world: what the learner is told about
answers that come, never come, come late or overcharge, and what the ledger charges for them."""

from __future__ import annotations

import numpy as np

from agents.finetuned import CurveModel
from agents.posted import PostedPriceProvider
from agents.selectors import FINE_TUNING_COST, POSTED_PRICE, ModelChooser, SubsetBuyer, net_reward
from market.core.ledger import to_minor
from market.core.wire import AnswerRequest, PostedAnswer
from market.runtime.agent import Agent
from market.runtime.world import World


class FixedSubsets:
    """Always asks the same arms; records every update."""

    def __init__(self, arms):
        self.arms = np.array(arms)
        self.updates = []

    def select(self, rng):
        return self.arms

    def update(self, arms, x, y):
        self.updates.append((arms.tolist(), x.tolist(), y.tolist()))


class FixedArm:
    def __init__(self, arm):
        self.arm = arm
        self.updates = []

    def select(self, rng):
        return self.arm

    def update(self, arm, reward):
        self.updates.append((arm, reward))


class Silent(Agent):
    async def run(self):
        while True:
            await self.recv()


class Overcharging(Agent):
    async def run(self):
        while True:
            env = await self.recv()
            self.send(env.src, PostedAnswer(env.msg.round, env.msg.query_id, True, 5.0))


class Late(Agent):
    """Answers after the user's deadline, and also sends a stray answer for a round never asked."""

    async def run(self):
        while True:
            env = await self.recv()
            self.send(env.src, PostedAnswer(env.msg.round + 7, env.msg.query_id, True, 0.1))
            await self.sleep(10.0)
            self.send(env.src, PostedAnswer(env.msg.round, env.msg.query_id, True, 0.1))


def _posted_world(providers, learner, rounds=3, price_unit=1.0):
    world = World({}, seed=0)
    world.ledger.open("user", balance=to_minor(100.0))
    for p in providers:
        world.ledger.open(p.id)
        world.add(p)
    ids = [p.id for p in providers]
    user = SubsetBuyer("user", rounds, ids, learner, world.wallet("user"), lambda rng: 7,
                       np.random.default_rng(0), price_caps=[price_unit] * len(ids), price_unit=price_unit,
                       answer_timeout=2.0, interarrival=5.0)
    world.add(user, principal=True)
    world.run()
    return world, user


def test_missing_refused_and_late_answers_count_as_incorrect_at_zero_cost():
    honest = PostedPriceProvider("honest", lambda qid, rng: (True, 0.25), price_unit=1.0)
    learner = FixedSubsets([0, 1, 2, 3])
    world, user = _posted_world([honest, Silent("silent"), Overcharging("greedy"), Late("late")], learner)
    assert learner.updates == [([0, 1, 2, 3], [1.0, 0.0, 0.0, 0.0], [0.25, 0.0, 0.0, 0.0])] * 3
    assert user.missing == 2 * 3 and user.refused == 3
    balances = world.ledger.balances()
    assert balances["honest"] == to_minor(0.75) and balances["greedy"] == balances["late"] == balances["silent"] == 0
    assert world.summary.paid["user"] == {POSTED_PRICE: to_minor(0.75)}


def test_posted_provider_bills_normalised_cost_times_price_unit_and_uses_its_own_stream():
    draws = []

    def answer(qid, rng):
        draws.append((qid, rng.random()))
        return False, 0.5

    provider = PostedPriceProvider("p", answer, price_unit=4.0)
    learner = FixedSubsets([0])
    world, _ = _posted_world([provider], learner, rounds=2, price_unit=4.0)
    assert learner.updates == [([0], [0.0], [0.5])] * 2  # the learner sees bill / price unit
    assert world.ledger.balance("p") == to_minor(2 * 2.0)
    assert [q for q, _ in draws] == [7, 7]
    assert draws[0][1] == World({}, seed=0).rng("p").random()


def test_curve_model_is_rested_and_the_chooser_learns_the_net_reward():
    world = World({}, seed=0)
    world.ledger.open("user", balance=to_minor(100.0))
    world.ledger.open("tuned")
    world.add(CurveModel("tuned", lambda n: 0.1 * n, cost=0.5, noise=0.0))
    learner = FixedArm(0)
    world.add(ModelChooser("user", 4, ["tuned"], learner, world.wallet("user"), lambda rng: 0,
                           np.random.default_rng(0), price_caps=[0.5], price_unit=2.0, cost_weight=1.0,
                           memos=[FINE_TUNING_COST]), principal=True)
    world.run()
    # n-th answer scores 0.1 n; the bill 0.5 is 0.25 in normalised units
    assert [a for a, _ in learner.updates] == [0] * 4
    assert np.allclose([r for _, r in learner.updates], [0.1 * n - 0.25 for n in range(1, 5)])
    assert world.ledger.balance("tuned") == to_minor(2.0)
    assert world.summary.paid["user"] == {FINE_TUNING_COST: to_minor(2.0)}
    assert net_reward(0.9, 0.5, 2.0, 2.0) == 0.9 - 0.5


def test_a_user_that_cannot_pay_refuses_the_answer_instead_of_failing():
    provider = PostedPriceProvider("p", lambda qid, rng: (True, 1.0))
    world = World({}, seed=0)
    world.ledger.open("user", balance=to_minor(1.5))
    world.ledger.open("p")
    world.add(provider)
    learner = FixedSubsets([0])
    user = SubsetBuyer("user", 3, ["p"], learner, world.wallet("user"), lambda rng: 0, np.random.default_rng(0),
                       price_caps=[1.0])
    world.add(user, principal=True)
    world.run()
    assert world.ledger.balance("p") == to_minor(1.0) and user.refused == 2
    assert learner.updates[1:] == [([0], [0.0], [0.0])] * 2


def test_answer_requests_round_trip_through_the_bus_codec():
    from market.core.wire import decode, encode

    assert decode(encode(AnswerRequest(3, 9))) == AnswerRequest(3, 9)
    assert decode(encode(PostedAnswer(3, 9, True, 0.25))) == PostedAnswer(3, 9, True, 0.25)
