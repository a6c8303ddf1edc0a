"""The ``policy`` strategy: a NumPy MLP saved and reloaded bids as before, its observation and action mapping are
the market env's, and bad files or parameters are refused naming what is wrong."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from agents.policy import (
    OBS_EXTRA,
    NumpyPolicy,
    PolicyStrategy,
    action_to_bid,
    default_normalisation,
    load_policy,
    observation,
)
from agents.strategies import BidderFacts, BidFeedback, History, Observation, build_strategy

DIM = 8


def hand_policy(seed: int = 0, horizon: int = 100, activation: str = "tanh") -> NumpyPolicy:
    rng = np.random.default_rng(seed)
    mean, scale = default_normalisation(0.0, 1.0, DIM)
    return NumpyPolicy([rng.normal(0, 0.5, (4, DIM + OBS_EXTRA)), rng.normal(0, 0.1, (1, 4))],
                       [rng.normal(0, 0.1, 4), np.array([0.08])], activation, mean, scale, "markup", horizon)


def test_observation_layout() -> None:
    x = np.linspace(0, 1, DIM)
    obs = observation(0.25, x, 30, 120, True, 0.5)
    assert obs.dtype == np.float32 and obs.shape == (DIM + OBS_EXTRA,)
    np.testing.assert_array_equal(obs, np.float32([0.25, *x, 0.25, 1.0, 0.5]))


@pytest.mark.parametrize("a, cost, mode, bid", [
    (0.0, 0.3, "markup", 0.3), (0.2, 0.3, "markup", 0.5), (1.0, 0.3, "markup", 1.0), (-1.0, 0.3, "markup", 0.0),
    (5.0, 0.3, "markup", 1.0), (-1.0, 0.3, "bid", 0.0), (0.0, 0.9, "bid", 0.5), (1.0, 0.1, "bid", 1.0),
])
def test_action_to_bid(a: float, cost: float, mode: str, bid: float) -> None:
    assert action_to_bid(a, cost, 0.0, 1.0, mode) == pytest.approx(bid)


def test_act_is_the_mlp_by_hand_and_survives_save_and_load(tmp_path) -> None:
    p = hand_policy(activation="relu")
    obs = observation(0.4, np.full(DIM, 0.3), 10, 100, False, 0.0)
    z = (obs - p.obs_mean) / p.obs_scale
    by_hand = float(np.clip(p.weights[1] @ np.maximum(p.weights[0] @ z + p.biases[0], 0) + p.biases[1], -1, 1)[0])
    assert p.act(obs) == pytest.approx(by_hand, abs=1e-6)
    q = NumpyPolicy.load(p.save(tmp_path / "p.npz"))
    assert (q.activation, q.action, q.horizon) == ("relu", "markup", 100)
    for k in range(20):
        o = observation(k / 20, np.random.default_rng(k).uniform(0, 1, DIM), k, 100, k % 2 == 1, k / 40)
        assert q.act(o) == p.act(o)


def test_strategy_bids_with_the_policy_and_remembers_its_last_outcome(tmp_path) -> None:
    p = hand_policy()
    path = p.save(tmp_path / "p.npz")
    s = build_strategy("policy", BidderFacts(0, 5, 0.0, 1.0), path=str(path))
    assert isinstance(s, PolicyStrategy)
    x = np.full(DIM, 0.5)
    rng = np.random.default_rng(0)
    first = s.bid(Observation(0.3, x, 0, History(), rng))
    assert first == pytest.approx(action_to_bid(p.act(observation(0.3, x, 0, 100, False, 0.0)), 0.3, 0.0, 1.0))
    s.learn(BidFeedback(0, True, 0.7, 0.3, first))
    second = s.bid(Observation(0.3, x, 1, History(), rng))
    assert second == pytest.approx(action_to_bid(p.act(observation(0.3, x, 1, 100, True, 0.7)), 0.3, 0.0, 1.0))
    state = s.get_state()
    fresh = build_strategy("policy", BidderFacts(0, 5, 0.0, 1.0), path=str(path))
    fresh.set_state(state)
    assert fresh.bid(Observation(0.3, x, 1, History(), rng)) == second


def test_refusals_name_the_problem(tmp_path) -> None:
    with pytest.raises(ValueError, match="path"):
        build_strategy("policy", BidderFacts(), path="")
    with pytest.raises(ValueError, match="no such file"):
        load_policy(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", layers=np.array(1))
    with pytest.raises(ValueError, match="missing array"):
        load_policy(tmp_path / "bad.npz")
    path = hand_policy().save(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="action"):
        load_policy(path, action="multiplier")
    s = build_strategy("policy", BidderFacts(0, 5, 0.0, 1.0), path=str(path))
    with pytest.raises(ValueError, match="inputs"):
        s.bid(Observation(0.3, np.zeros(3), 0, History(), np.random.default_rng(0)))
    with pytest.raises(ValueError, match="activation"):
        NumpyPolicy(hand_policy().weights, hand_policy().biases, "gelu", *default_normalisation(0, 1, DIM))


def test_a_zip_without_the_rl_extra_names_it(tmp_path, monkeypatch) -> None:
    (tmp_path / "p.zip").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(ValueError, match=r"\[rl\] extra"):
        load_policy(tmp_path / "p.zip")
