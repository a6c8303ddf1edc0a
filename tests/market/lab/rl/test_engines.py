"""The market env's two engines: same seed and actions give the same observations and rewards on the fast loop
and on the real runtime (to the micro-credit), and the fast engine draws what a run draws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.lab.deviation import play_fast
from market.lab.rl.engines import FastEngine, MarketEngine, make_engine, policy_gains
from market.runtime.config import ConfigError

ROUNDS = 12


def _episode(engine, seed: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observations (rounds + 1, learners, dim), rewards (rounds, learners)) of one episode."""
    obs = [engine.reset(seed).copy()]
    rewards = []
    for t, a in enumerate(actions):
        o, r, done = engine.step(a)
        obs.append(o.copy())
        rewards.append(r.copy())
        assert done == (t == len(actions) - 1)
    return np.array(obs), np.array(rewards)


@settings(max_examples=6, deadline=None)
@given(actions=st.lists(st.lists(st.floats(-1.5, 1.5), min_size=2, max_size=2), min_size=ROUNDS, max_size=ROUNDS),
       seed=st.integers(0, 2**16), mechanism=st.sampled_from(["pay-as-bid", "rosa-trcm-ucb", "myerson"]))
def test_fast_and_market_engines_agree(actions: list[list[float]], seed: int, mechanism: str) -> None:
    # two learners and a learning provider (exp3) among the others: every stream and every learner must line up
    sets = [f"mechanism.name={mechanism}", "strategies.overrides.provider-1=exp3"]
    a = np.array(actions)
    fast = FastEngine("quickstart", ("provider-0", "provider-3"), overrides=sets, rounds=ROUNDS)
    market = MarketEngine("quickstart", ("provider-0", "provider-3"), overrides=sets, rounds=ROUNDS)
    obs_f, rew_f = _episode(fast, seed, a)
    obs_m, rew_m = _episode(market, seed, a)
    np.testing.assert_array_equal(obs_f, obs_m)
    np.testing.assert_allclose(rew_f, rew_m, rtol=0, atol=1e-6)


def test_engines_agree_on_a_run_with_wins() -> None:
    """A longer run where both learners win rounds: the comparison is not one of zeros."""
    sets = ["mechanism.name=rosa-trcm-ucb", "strategies.overrides.provider-1=exp3"]
    a = np.random.default_rng(3).uniform(-0.4, 0.4, (60, 2))
    learners = ("provider-0", "provider-3")
    obs_f, rew_f = _episode(FastEngine("quickstart", learners, overrides=sets, rounds=60), 11, a)
    obs_m, rew_m = _episode(MarketEngine("quickstart", learners, overrides=sets, rounds=60), 11, a)
    assert (rew_f != 0).any(axis=0).all()
    np.testing.assert_array_equal(obs_f, obs_m)
    np.testing.assert_allclose(rew_f, rew_m, rtol=0, atol=1e-6)


def test_truthful_actions_give_the_deviation_engines_utility() -> None:
    """Action 0 is truthful: the learner's rewards sum to its utility in the fast deviation engine's run."""
    sets = ["mechanism.name=pay-as-bid"]
    env = FastEngine("quickstart", ("provider-2",), overrides=sets, rounds=60)
    _, rewards = _episode(env, 5, np.zeros((60, 1)))
    run = play_fast("quickstart", sets, 5, 60)
    assert rewards.sum() == pytest.approx(run.utilities["provider-2"], abs=1e-9)


def test_reset_mid_episode_starts_over() -> None:
    """A market run dropped half-way (reset, close) ends its world; the next episode is the same as a fresh one."""
    env = MarketEngine("quickstart", ("provider-0",), overrides=["mechanism.name=pay-as-bid"], rounds=8)
    env.reset(1)
    env.step(np.array([0.3]))
    first = _episode(env, 2, np.full((8, 1), 0.1))
    env.reset(1)
    env.close()
    again = _episode(MarketEngine("quickstart", ("provider-0",), overrides=["mechanism.name=pay-as-bid"], rounds=8),
                     2, np.full((8, 1), 0.1))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_policy_gains_is_zero_for_truthful_and_positive_for_a_markup_under_pay_as_bid() -> None:
    sets = ["mechanism.name=pay-as-bid"]
    zero = policy_gains(lambda obs: 0.0, "quickstart", [0, 1], overrides=sets, rounds=50)
    np.testing.assert_array_equal(zero, [0.0, 0.0])
    markup = policy_gains(lambda obs: 0.1, "quickstart", [0, 1, 2], overrides=sets, rounds=200)
    assert (markup > 0).all()


@pytest.mark.parametrize("kind", ["fast", "market"])
def test_refusals_name_the_field(kind: str) -> None:
    with pytest.raises(ConfigError, match="learners"):
        make_engine(kind, "quickstart", ("provider-9",))
    with pytest.raises(ConfigError, match="market.latency"):
        make_engine(kind, "quickstart", ("provider-0",), overrides=["market.latency=0.01"])
    with pytest.raises(ConfigError, match="engine"):
        make_engine("slow", "quickstart")
    env = make_engine(kind, "quickstart", ("provider-0",), rounds=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1))
