"""The ad market's envs: PettingZoo's API and seed tests, Gymnasium's checker, and truthful play that gives
``play_ads``'s utilities exactly on the same seeds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from agents.ad_reportfuncs import AD_OBS_DIM  # noqa: E402
from market.lab.deviation import play_ads  # noqa: E402
from market.lab.rl.ads import AdsGymEnv, AdsParallelEnv  # noqa: E402
from market.runtime.config import ConfigError  # noqa: E402


def test_parallel_env_passes_pettingzoo_api_and_seed_tests() -> None:
    def make() -> AdsParallelEnv:
        return AdsParallelEnv(["advertiser-0", "advertiser-1"], rounds=12, seeds=[0, 1, 2],
                              overrides=["market.queries=6"])

    env = make()
    parallel_api_test(env, num_cycles=30)
    env.close()
    parallel_seed_test(make)


def test_gym_view_passes_check_env() -> None:
    env = AdsGymEnv(rounds=10, seeds=[0, 1], overrides=["market.queries=5", "mechanism.name=mosaic-nopay"])
    check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("mechanism", ["mosaic", "mosaic-rochet", "mosaic-nopay"])
def test_truthful_play_gives_play_ads_utilities_exactly(mechanism: str) -> None:
    """Both advertiser slots learning and playing a = 0 (factor 1) sum to play_ads's truthful utilities, bit for bit,
    on several seeds; one slot learning gives the same for it."""
    env = AdsParallelEnv(["advertiser-0", "advertiser-1"], rounds=20, overrides=[f"mechanism.name={mechanism}"])
    solo = AdsGymEnv("advertiser-1", rounds=20, overrides=[f"mechanism.name={mechanism}"])
    for seed in (0, 5, 11):
        obs, _ = env.reset(options={"market_seed": seed})
        totals = {a: 0.0 for a in env.possible_agents}
        while env.agents:
            obs, rewards, done, _, _ = env.step({a: np.zeros(1, np.float32) for a in env.agents})
            for a, r in rewards.items():
                totals[a] += r
        want = play_ads(mechanism, "truthful", seed, 20).utilities
        assert totals == {a: want[a] for a in totals}
        solo.reset(options={"market_seed": seed})
        total, done = 0.0, False
        while not done:
            _, r, done, _, _ = solo.step(np.zeros(1, np.float32))
            total += r
        assert total == want["advertiser-1"]


def test_observation_is_own_rewards_summary_round_and_last_outcome() -> None:
    env = AdsGymEnv(rounds=8, seeds=[3], overrides=["market.queries=4"])
    obs, info = env.reset()
    assert info["market_seed"] == 3 and obs.shape == (AD_OBS_DIM,) and obs.dtype == np.float32
    r = env.engine.draws(3).rewards[0, 0]
    np.testing.assert_allclose(obs[:5], [r.mean(), r.std(), r.min(), r.max(), np.median(r)], rtol=1e-6)
    assert obs[5] == 0.0 and obs[6] == 0.0 and obs[7] == 0.0
    obs, reward, done, truncated, _ = env.step(np.array([1.0], np.float32))  # factor 4 in auction 0
    assert obs[5] == pytest.approx(1 / 8) and not done and not truncated
    assert obs[7] != 0.0  # MOSAIC's offset payment of an exaggerating advertiser


def test_exaggeration_pays_without_payments_and_not_with_them() -> None:
    """Factor 4 on every auction against the truthful twin: MOSAIC's offset payment makes it lose on every seed
    here (DSIC on a fixed candidate set), no payments make it gain."""
    for mechanism, sign in (("mosaic", -1.0), ("mosaic-nopay", 1.0)):
        env = AdsGymEnv(rounds=20, overrides=[f"mechanism.name={mechanism}"])
        for seed in (0, 1):
            gains = []
            for a in (0.0, 1.0):
                env.reset(options={"market_seed": seed})
                total, done = 0.0, False
                while not done:
                    _, r, done, _, _ = env.step(np.array([a], np.float32))
                    total += r
                gains.append(total)
            assert sign * (gains[1] - gains[0]) > 0


def test_bad_learners_and_mechanisms_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"learners: got \['advertiser-2'\]"):
        AdsParallelEnv(["advertiser-2"], rounds=5)
    with pytest.raises(ConfigError, match="mechanism.name: got 'token-auction'"):
        AdsGymEnv(rounds=5, overrides=["mechanism.name=token-auction"])
