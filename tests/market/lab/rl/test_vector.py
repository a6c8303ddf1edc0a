"""The vectorised market env behaves as the single env copied B times: as Gymnasium's ``SyncVectorEnv`` of
``MarketGymEnv`` (next-step autoreset) and as SB3's ``DummyVecEnv`` of them (same-step autoreset, normalised
observations), step for step across episode ends."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")

import gymnasium  # noqa: E402
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402

from agents.policy import default_normalisation  # noqa: E402
from market.lab.rl.gym import MarketGymEnv  # noqa: E402
from market.lab.rl.vector import MarketVectorEnv  # noqa: E402

B, ROUNDS = 3, 12
KW = {"rounds": ROUNDS, "seeds": [3, 4, 5, 6], "overrides": ["mechanism.name=rosa-trcm-ucb", "mechanism.params.mu=0.3"]}


def _actions(steps: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.4, 0.6, (steps, B, 1)).astype(np.float32)


def test_vector_env_is_a_sync_vector_env_of_gym_envs() -> None:
    env = MarketVectorEnv("quickstart", num_envs=B, **KW)
    ref = SyncVectorEnv([lambda: MarketGymEnv("quickstart", **KW)] * B)
    assert env.metadata["autoreset_mode"] == ref.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.observation_space == ref.observation_space and env.action_space == ref.action_space
    obs, info = env.reset(seed=9)
    obs_r, info_r = ref.reset(seed=9)
    np.testing.assert_array_equal(obs, obs_r)
    np.testing.assert_array_equal(info["market_seed"], info_r["market_seed"])
    ends = 0
    for a in _actions(3 * ROUNDS + 4):  # three episodes and their autoreset steps
        got, want = env.step(a), ref.step(a)
        for x, y in zip(got[:4], want[:4]):
            np.testing.assert_array_equal(x, y)
        assert env.observation_space.contains(got[0])
        if "market_seed" in want[4]:
            np.testing.assert_array_equal(got[4]["market_seed"], want[4]["market_seed"])
        ends += int(got[2].all())
    assert ends == 3
    obs, info = env.reset(options={"market_seeds": [7, 8, 9]})
    assert info["market_seed"].tolist() == [7, 8, 9]
    env.close()
    ref.close()


def test_vector_env_refuses_what_it_cannot_do() -> None:
    env = MarketVectorEnv("quickstart", num_envs=B, **KW)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((B, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.ones(B, dtype=bool)})
    with pytest.raises(ValueError, match=r"market_seeds'\]: got 2, expected one per market \(3\)"):
        env.reset(options={"market_seeds": [1, 2]})


def test_sb3_vec_env_is_a_dummy_vec_env_of_gym_envs() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from market.lab.rl.sb3vec import MarketSB3VecEnv

    mean, scale = default_normalisation(0.0, 1.0, 8)
    box = gymnasium.spaces.Box(-np.inf, np.inf, mean.shape, dtype=np.float32)

    def make() -> gymnasium.Env:
        return gymnasium.wrappers.TransformObservation(MarketGymEnv("quickstart", **KW),
                                                       lambda o: ((o - mean) / scale).astype(np.float32), box)

    check_env(MarketGymEnv("quickstart", **KW))
    ref = DummyVecEnv([make] * B)
    env = MarketSB3VecEnv("quickstart", n_envs=B, normalise=(mean, scale), **KW)
    ref.seed(11)
    env.seed(11)
    np.testing.assert_array_equal(env.reset(), ref.reset())
    assert env.reset_infos == ref.reset_infos
    ends = 0
    for a in _actions(3 * ROUNDS + 1):
        env.step_async(a)
        ref.step_async(a)
        got, want = env.step_wait(), ref.step_wait()
        for x, y in zip(got[:3], want[:3]):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        for mine, theirs in zip(got[3], want[3]):
            assert mine.keys() == theirs.keys()
            if "terminal_observation" in theirs:
                np.testing.assert_array_equal(mine["terminal_observation"], theirs["terminal_observation"])
        ends += int(got[2].all())
        assert env.reset_infos == ref.reset_infos
    assert ends == 3
    env.close()
