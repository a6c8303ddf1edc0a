"""The PettingZoo ParallelEnv and the Gymnasium view pass their libraries' checkers on both engines."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from market.lab.rl.gym import MarketGymEnv  # noqa: E402
from market.lab.rl.pz import MarketParallelEnv  # noqa: E402


@pytest.mark.parametrize("engine", ["fast", "market"])
def test_parallel_env_passes_pettingzoo_api_and_seed_tests(engine: str) -> None:
    def make() -> MarketParallelEnv:
        return MarketParallelEnv("quickstart", ["provider-0", "provider-3"], engine=engine, rounds=20,
                                 seeds=[0, 1, 2], overrides=["mechanism.name=pay-as-bid"])

    env = make()
    parallel_api_test(env, num_cycles=60)
    env.close()
    parallel_seed_test(make)


@pytest.mark.parametrize("engine", ["fast", "market"])
def test_gym_view_passes_check_env(engine: str) -> None:
    env = MarketGymEnv("quickstart", engine=engine, rounds=20, seeds=[0, 1])
    check_env(env, skip_render_check=True)
    env.close()


def test_gym_episode_is_one_run_and_the_seed_pins_it() -> None:
    env = MarketGymEnv("quickstart", rounds=15, seeds=[3, 4])
    obs, info = env.reset(options={"market_seed": 7})
    assert info["market_seed"] == 7 and obs.shape == (12,) and obs.dtype == np.float32
    assert obs[9] == 0.0  # round 0 of 15
    steps, done, rewards = 0, False, []
    while not done:
        obs, r, done, truncated, _ = env.step(np.array([0.2], dtype=np.float32))
        rewards.append(r)
        steps += 1
    assert steps == 15 and not truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))
    env.reset(options={"market_seed": 7})
    again = [env.step(np.array([0.2], dtype=np.float32))[1] for _ in range(15)]
    assert again == rewards
