"""The ad envs' market engine (the real runtime in a thread): the fast engine's observations and rewards for the
same seed and actions, PettingZoo's API and seed tests, Gymnasium's checker, no thread left behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from market.lab.rl.ad_engine import AdsEngine  # noqa: E402
from market.lab.rl.ad_market import AdsMarketEngine, make_ad_engine  # noqa: E402
from market.lab.rl.ads import AdsGymEnv, AdsParallelEnv  # noqa: E402
from market.runtime.config import ConfigError  # noqa: E402

ROUNDS = 8
SMALL = ["market.queries=4"]
PAIR = ("advertiser-0", "advertiser-1")


def _threads() -> int:
    return sum(t.name == "ad-market-env" for t in threading.enumerate())


def _episode(engine: object, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Observations (reset's first) and rewards of one episode, action row t in auction t."""
    obs = [engine.reset(seed).copy()]  # type: ignore[attr-defined]
    rewards = []
    for t, a in enumerate(actions):
        o, r, done = engine.step(a)  # type: ignore[attr-defined]
        obs.append(o.copy())
        rewards.append(r.copy())
        assert done == (t == len(actions) - 1)
    return obs, rewards


@settings(max_examples=4, deadline=None)
@given(actions=st.lists(st.lists(st.floats(-1.5, 1.5), min_size=2, max_size=2), min_size=ROUNDS, max_size=ROUNDS),
       seed=st.integers(0, 50), mechanism=st.sampled_from(["mosaic", "mosaic-nopay"]))
def test_market_engine_gives_the_fast_engines_observations_and_rewards(actions: list[list[float]], seed: int,
                                                                      mechanism: str) -> None:
    overrides = [*SMALL, f"mechanism.name={mechanism}"]
    fast = AdsEngine(PAIR, overrides=overrides, rounds=ROUNDS)
    market = AdsMarketEngine(PAIR, overrides=overrides, rounds=ROUNDS)
    a = np.array(actions)
    want_obs, want_rewards = _episode(fast, seed, a)
    got_obs, got_rewards = _episode(market, seed, a)
    np.testing.assert_allclose(np.array(got_obs), np.array(want_obs), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.array(got_rewards), np.array(want_rewards), rtol=0, atol=1e-9)
    assert _threads() == 0


@pytest.mark.parametrize("mechanism", ["mosaic", "mosaic-nopay"])
def test_one_learner_on_both_proposals_agrees_and_exaggeration_moves_its_reward(mechanism: str) -> None:
    """advertiser-1 alone, every query asked once per proposal; an exaggerating sequence against a truthful one on
    the market engine gives different rewards (the actions reach the platform)."""
    overrides = [*SMALL, f"mechanism.name={mechanism}", "market.proposal=both"]
    fast = AdsEngine(("advertiser-1",), overrides=overrides, rounds=4)
    market = AdsMarketEngine(("advertiser-1",), overrides=overrides, rounds=4)
    assert market.horizon == fast.horizon == 8
    loud = np.ones((8, 1))
    want_obs, want_rewards = _episode(fast, 7, loud)
    got_obs, got_rewards = _episode(market, 7, loud)
    np.testing.assert_allclose(np.array(got_obs), np.array(want_obs), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.array(got_rewards), np.array(want_rewards), rtol=0, atol=1e-9)
    _, truthful = _episode(market, 7, np.zeros((8, 1)))
    assert not np.allclose(np.array(truthful), np.array(got_rewards))


def test_parallel_env_on_the_market_engine_passes_pettingzoo_api_and_seed_tests() -> None:
    def make() -> AdsParallelEnv:
        return AdsParallelEnv(PAIR, rounds=6, seeds=[0, 1, 2], overrides=SMALL, engine="market")

    env = make()
    parallel_api_test(env, num_cycles=20)
    env.close()
    parallel_seed_test(make)
    assert _threads() == 0


def test_gym_view_on_the_market_engine_passes_check_env() -> None:
    env = AdsGymEnv(rounds=5, seeds=[0, 1], overrides=[*SMALL, "mechanism.name=mosaic-nopay"], engine="market")
    check_env(env, skip_render_check=True)
    env.close()
    assert _threads() == 0


def test_reset_mid_episode_starts_over_and_close_leaves_no_thread() -> None:
    engine = AdsMarketEngine(PAIR, overrides=SMALL, rounds=ROUNDS)
    first = engine.reset(2).copy()
    engine.step(np.array([1.0, -1.0]))
    engine.step(np.array([0.5, 0.0]))
    assert _threads() == 1
    again = engine.reset(2).copy()  # the old run is ended, a new one starts from auction 0
    assert np.array_equal(again, first) and _threads() == 1
    obs, rewards, done = engine.step(np.zeros(2))
    fast = AdsEngine(PAIR, overrides=SMALL, rounds=ROUNDS)
    fast.reset(2)
    want_obs, want_rewards, _ = fast.step(np.zeros(2))
    np.testing.assert_allclose(rewards, want_rewards, rtol=0, atol=1e-9)
    np.testing.assert_allclose(obs, want_obs, rtol=0, atol=1e-9)
    engine.close()
    assert _threads() == 0
    engine.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="call reset first"):
        engine.step(np.zeros(2))


def test_refusals_name_the_field() -> None:
    with pytest.raises(ConfigError, match="market.latency"):
        AdsMarketEngine(overrides=["market.latency=0.1"], rounds=4)
    with pytest.raises(ConfigError, match="learners"):
        AdsMarketEngine(("advertiser-7",), rounds=4)
    with pytest.raises(ConfigError, match="mechanism.name"):
        AdsMarketEngine(overrides=["mechanism.name=token-auction"], rounds=4)
    with pytest.raises(ConfigError, match="engine: got 'slow'"):
        make_ad_engine("slow", ("advertiser-0",))
    with pytest.raises(ConfigError, match="engine: got 'slow'"):
        AdsGymEnv(rounds=4, engine="slow")
