"""The batched mechanism and the vectorised fast engine: market b of a batch is the single-market mechanism, and a
``FastEngine`` run with seed b, on the same inputs (winners exactly, money to 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.mechanisms.reverse import build_mechanism
from market.core.mechanisms.rosa import ROSA
from market.lab.rl.batched import NO_WINNER, BatchedTRCMUCB, VectorFastEngine, batchable
from market.lab.rl.engines import FastEngine
from market.runtime.config import ConfigError

N, D = 4, 3


def _markets(name: str, batch: int, **params: float) -> list:
    return [build_mechanism(name, n=N, d=D, **params) for _ in range(batch)]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 5), name=st.sampled_from(["rosa-trcm-ucb", "pay-as-bid"]),
       mu=st.sampled_from([0.05, 0.5, 0.9]))
def test_batched_mechanism_is_each_markets_mechanism(seed: int, batch: int, name: str, mu: float) -> None:
    """Random contexts, bids (some at the ends of the range), coins and rewards for 40 rounds: every market's winner,
    payment and learner state equal its own mechanism's select and update."""
    params = {"mu": mu} if name.startswith("rosa") else {}
    singles = _markets(name, batch, **params)
    batched = BatchedTRCMUCB(_markets(name, batch, **params))
    rng = np.random.default_rng(seed)
    for _ in range(40):
        x = rng.uniform(0, 1, (batch, D))
        bids = np.clip(rng.uniform(-0.2, 1.2, (batch, N)), 0.0, 1.0)
        coins = rng.random((batch, 2, N))
        rewards = rng.normal(0.5, 0.3, batch)
        winner, pay, _ = batched.select(x, bids, coins if batched.resampling else None)
        for b, mech in enumerate(singles):
            if isinstance(mech, ROSA):
                outcome = mech.select_on_coins(x[b], bids[b], coins[b])
            else:
                outcome = mech.select(x[b], bids[b], rng=np.random.default_rng(0))
            expected = NO_WINNER if outcome.winner is None else outcome.winner
            assert winner[b] == expected
            paid = 0.0 if outcome.winner is None else outcome.payments[outcome.winner]
            assert pay[b] == pytest.approx(paid, abs=1e-9)
            if outcome.winner is not None:
                mech.update(x[b], outcome, float(rewards[b]))
        batched.update(x, winner, rewards)
    for b, mech in enumerate(singles):
        state, mine = mech.get_state()["rule"]["learner"], batched.state(b)["rule"]["learner"]
        np.testing.assert_array_equal(state["pulls"], mine["pulls"])
        np.testing.assert_allclose(state["v_inv"], mine["v_inv"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(state["theta_hat"], mine["theta_hat"], rtol=0, atol=1e-12)
    assert sum(int(batched.pulls[b].sum()) for b in range(batch)) > 0  # the learners learnt something


def test_batched_mechanism_refuses_what_it_cannot_batch() -> None:
    assert batchable(build_mechanism("rosa-trcm-ucb", n=N, d=D, mu=0.1)) is None
    assert "TRCMUCB" in batchable(build_mechanism("rosa-ucb", n=N, d=D, mu=0.1))
    assert "constant" in batchable(build_mechanism("rosa-trcm-ucb", n=N, d=D, mu=0.1, width="oful"))
    with pytest.raises(ValueError, match=r"mechanisms\[1\]: 'rosa-eps-greedy'"):
        BatchedTRCMUCB([build_mechanism("rosa-trcm-ucb", n=N, d=D, mu=0.1),
                        build_mechanism("rosa-eps-greedy", n=N, d=D, mu=0.1)])
    with pytest.raises(ValueError, match=r"mechanisms\[1\]: parameters"):
        BatchedTRCMUCB([build_mechanism("rosa-trcm-ucb", n=N, d=D, mu=0.1),
                        build_mechanism("rosa-trcm-ucb", n=N, d=D, mu=0.2)])


def _single_runs(sets: list[str], learner: str, seeds: list[int], actions: np.ndarray) -> tuple[np.ndarray, ...]:
    """FastEngine episodes market by market: observations (T + 1, B, obs) and rewards (T, B)."""
    env = FastEngine("quickstart", (learner,), overrides=sets, rounds=actions.shape[0])
    obs, rewards = [], []
    for b, seed in enumerate(seeds):
        o = [env.reset(seed)[0].copy()]
        r = []
        for a in actions[:, b]:
            ob, rw, _ = env.step(np.array([a]))
            o.append(ob[0].copy())
            r.append(rw[0])
        obs.append(o)
        rewards.append(r)
    return np.array(obs).transpose(1, 0, 2), np.array(rewards).T


def _batch_run(engine: VectorFastEngine, seeds: list[int], actions: np.ndarray) -> tuple[np.ndarray, ...]:
    obs, rewards = [engine.reset(seeds).copy()], []
    for t, a in enumerate(actions):
        o, r, done = engine.step(a)
        obs.append(o.copy())
        rewards.append(r.copy())
        assert done == (t == len(actions) - 1)
    return np.array(obs), np.array(rewards)


@settings(max_examples=6, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**16), min_size=1, max_size=4),
       mechanism=st.sampled_from(["rosa-trcm-ucb", "pay-as-bid"]), data=st.data())
def test_market_b_is_a_fast_engine_run_with_seed_b(seeds: list[int], mechanism: str, data: st.DataObject) -> None:
    rounds = 25
    actions = np.array(data.draw(st.lists(st.lists(st.floats(-1.5, 1.5), min_size=len(seeds), max_size=len(seeds)),
                                          min_size=rounds, max_size=rounds)))
    sets = [f"mechanism.name={mechanism}"]
    engine = VectorFastEngine("quickstart", "provider-1", batch=len(seeds), overrides=sets, rounds=rounds)
    assert engine.batched
    obs_v, rew_v = _batch_run(engine, seeds, actions)
    obs_f, rew_f = _single_runs(sets, "provider-1", seeds, actions)
    np.testing.assert_allclose(obs_v, obs_f, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(obs_v[:, :, -2], obs_f[:, :, -2])  # who won: exactly
    np.testing.assert_allclose(rew_v, rew_f, rtol=0, atol=1e-9)


def test_a_long_batch_with_wins_agrees_and_resets_to_the_same_runs() -> None:
    """200 rounds of ROSA with many wins and resampled rounds; a second reset on the same seeds replays them."""
    sets = ["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.3"]
    seeds = [4, 4, 17]
    actions = np.random.default_rng(2).uniform(-0.3, 0.3, (200, 3))
    engine = VectorFastEngine("quickstart", "provider-0", batch=3, overrides=sets, rounds=200)
    obs_v, rew_v = _batch_run(engine, seeds, actions)
    obs_f, rew_f = _single_runs(sets, "provider-0", seeds, actions)
    assert (rew_v != 0).sum(axis=0).min() > 10
    np.testing.assert_array_equal(obs_v[:, :, -2], obs_f[:, :, -2])
    np.testing.assert_allclose(rew_v, rew_f, rtol=0, atol=1e-9)
    again = _batch_run(engine, seeds, actions)
    np.testing.assert_array_equal(again[1], rew_v)


def test_unbatchable_scenarios_step_fast_engines_with_the_same_results() -> None:
    sets = ["mechanism.name=myerson", "strategies.overrides.provider-2=exp3"]
    engine = VectorFastEngine("quickstart", "provider-0", batch=2, overrides=sets, rounds=30)
    assert not engine.batched and "myerson" in engine.why_not
    actions = np.random.default_rng(5).uniform(-0.2, 0.4, (30, 2))
    obs_v, rew_v = _batch_run(engine, [1, 2], actions)
    obs_f, rew_f = _single_runs(sets, "provider-0", [1, 2], actions)
    np.testing.assert_array_equal(obs_v, obs_f)
    np.testing.assert_array_equal(rew_v, rew_f)
    exp3 = VectorFastEngine("quickstart", "provider-0", batch=2, overrides=["mechanism.name=rosa-trcm-ucb", sets[1]],
                            rounds=30)
    assert not exp3.batched and "provider-2" in exp3.why_not


def test_refusals_name_the_field() -> None:
    with pytest.raises(ConfigError, match="batch: got 0"):
        VectorFastEngine("quickstart", batch=0)
    with pytest.raises(ConfigError, match="learners"):
        VectorFastEngine("quickstart", "provider-9", batch=2)
    engine = VectorFastEngine("quickstart", batch=2, overrides=["mechanism.name=pay-as-bid"], rounds=3)
    with pytest.raises(RuntimeError, match="reset"):
        engine.step(np.zeros(2))
    with pytest.raises(ValueError, match="seeds: got 3, expected one per market"):
        engine.reset([0, 1, 2])
    engine.reset([0, 1])
    with pytest.raises(ValueError, match=r"actions: got 3 values, expected one per market \(2\)"):
        engine.step(np.zeros(3))
