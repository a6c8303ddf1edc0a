"""Stable-Baselines3's ``VecEnv`` over the vectorised market env (the [rl] extra): PPO trains on B markets at once.

``MarketSB3VecEnv`` behaves as SB3's ``DummyVecEnv`` over B ``MarketGymEnv`` copies (each optionally wrapped to
normalise its observation as ``(obs - mean) / scale``): the same seeding (``seed(s)`` seeds market b's generator
with s + b at the next reset), same-step autoreset with ``terminal_observation`` and ``TimeLimit.truncated`` in the
infos, the same observations and rewards (tests check it), with one batched step instead of B.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from market.lab.rl.spaces import require_rl

require_rl("the SB3 vectorised market env")

from gymnasium import spaces  # noqa: E402
from stable_baselines3.common.vec_env import VecEnv  # noqa: E402

from market.lab.rl.vector import DEFAULT_BATCH, VectorMarkets  # noqa: E402


class MarketSB3VecEnv(VecEnv):
    """B single-deviator markets as one SB3 ``VecEnv``. ``normalise``: (mean, scale) applied to observations."""

    def __init__(self, scenario: str = "quickstart", deviator: str = "provider-0", *, n_envs: int = DEFAULT_BATCH,
                 rounds: int = 400, overrides: Sequence[str] = (), seeds: Sequence[int] | None = None,
                 action: str = "markup", normalise: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.markets = VectorMarkets(scenario, deviator, batch=n_envs, rounds=rounds, overrides=overrides,
                                     seeds=seeds, action=action)
        self.engine = self.markets.engine
        self.normalise = normalise
        obs_space = self.markets.single_observation_space
        if normalise is not None:
            obs_space = spaces.Box(-np.inf, np.inf, obs_space.shape, dtype=np.float32)
        self.render_mode = None
        super().__init__(self.markets.B, obs_space, self.markets.single_action_space)
        self._actions: np.ndarray | None = None

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if self.normalise is None:
            return obs.copy()
        mean, scale = self.normalise
        return ((obs - mean) / scale).astype(np.float32)

    def reset(self) -> np.ndarray:
        options = self._options[0] if self._options and all(o == self._options[0] for o in self._options) else None
        obs = self.markets.reset(self._seeds, options or None)
        self.reset_infos = [{"market_seed": s} for s in self.markets.market_seeds]
        self._reset_seeds()
        self._reset_options()
        return self._obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_wait: no step_async before it")
        obs, rewards, done = self.engine.step(self._actions)
        self._actions = None
        rewards = rewards.astype(np.float32)
        dones = np.full(self.num_envs, done)
        if not done:
            return self._obs(obs), rewards, dones, [{"TimeLimit.truncated": False} for _ in range(self.num_envs)]
        final = self._obs(obs)
        infos = [{"TimeLimit.truncated": False, "terminal_observation": final[b]} for b in range(self.num_envs)]
        obs = self.markets.reset(None, None)
        self.reset_infos = [{"market_seed": s} for s in self.markets.market_seeds]
        return self._obs(obs), rewards, dones, infos

    def close(self) -> None:
        self.engine.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
