"""A saved policy replayed through the real bus (``deviate --engine market``) gains what the env measured for it on
the same seeds; a Stable-Baselines3 zip bids as the model predicts."""

from __future__ import annotations

import numpy as np
import pytest

from agents.policy import OBS_EXTRA, NumpyPolicy, action_to_bid, default_normalisation, observation
from agents.strategies import BidderFacts, History, Observation, build_strategy
from market.lab.deviation import deviate
from market.lab.rl.engines import policy_gains

SETS = ["mechanism.name=pay-as-bid"]
ROUNDS = 80


def test_policy_through_deviate_market_gains_what_the_env_measured(tmp_path) -> None:
    rng = np.random.default_rng(4)
    mean, scale = default_normalisation(0.0, 1.0, 8)
    policy = NumpyPolicy([rng.normal(0, 0.5, (6, 8 + OBS_EXTRA)), rng.normal(0, 0.1, (1, 6))],
                         [rng.normal(0, 0.1, 6), np.array([0.1])], "tanh", mean, scale, "markup", ROUNDS)
    path = NumpyPolicy.load(policy.save(tmp_path / "policy.npz"))  # what the strategy will read
    env_fast = policy_gains(path.act, "quickstart", range(3), overrides=SETS, rounds=ROUNDS)
    env_market = policy_gains(path.act, "quickstart", range(3), overrides=SETS, rounds=ROUNDS, engine="market")
    verdict = deviate("quickstart", "policy", seeds=3, rounds=ROUNDS, engine="market",
                      overrides=[*SETS, f"strategies.params.policy.path={tmp_path / 'policy.npz'}"])
    np.testing.assert_allclose(env_fast, env_market, rtol=0, atol=1e-9)
    # the ledger settles each payment to the micro-credit: per-round gains within 1e-6 (two runs' roundings)
    np.testing.assert_allclose(verdict.gains, env_fast, rtol=0, atol=2e-6)
    assert np.all(env_fast != 0)


def test_an_sb3_zip_bids_as_the_model_predicts(tmp_path) -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from market.lab.rl.gym import MarketGymEnv

    env = MarketGymEnv("quickstart", rounds=20, seeds=[0], overrides=SETS)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    model.learn(64)
    model.save(tmp_path / "ppo.zip")
    strategy = build_strategy("policy", BidderFacts(0, 5, 0.0, 1.0), path=str(tmp_path / "ppo.zip"), horizon=20)
    rng = np.random.default_rng(1)
    for t in range(10):
        cost, x = float(rng.uniform()), rng.uniform(0, 1, 8)
        action, _ = model.predict(observation(cost, x, t, 20, False, 0.0), deterministic=True)
        bid = strategy.bid(Observation(cost, x, t, History(), rng))
        assert bid == pytest.approx(action_to_bid(float(action[0]), cost, 0.0, 1.0), abs=1e-5)
