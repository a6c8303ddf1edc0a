"""The Gymnasium single-deviator view of the market env (the [rl] extra): one provider learns, the others play
their scenario strategies.

Observation: ``agents.policy.observation`` as float32 (own cost, the query's context, round / horizon, own last
outcome and payment). Action: Box([-1], [1]), the markup a: bid = cost + a (cost_cap - cost_floor), clipped into
the bid range (``agents.policy.action_to_bid``; a = 0 is truthful, every bid is reachable from every cost).
Reward: that round's profit. An episode is one run of ``rounds`` rounds; ``reset(seed=s)`` seeds the env's
generator, which picks the run's seed among ``seeds`` (the training seeds; ``options={"market_seed": k}``
pins one). ``engine``: ``fast`` (a plain loop) or ``market`` (the real runtime), the same rewards for the same
seed and actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from market.lab.rl.spaces import require_rl

require_rl("the Gymnasium market env")

import gymnasium  # noqa: E402
from gymnasium import spaces  # noqa: E402

from market.lab.rl.engines import make_engine  # noqa: E402
from market.lab.rl.spaces import obs_bounds, pick_seed  # noqa: E402


class EngineGymEnv(gymnasium.Env):
    """The single-deviator view of an engine with one learner: it observes a point of ``obs_space`` and acts with
    a in [-1, 1]; the ad market's view is one too."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, engine: Any, obs_space: spaces.Box, seeds: Sequence[int] | None) -> None:
        self.engine = engine
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else None
        self.observation_space = obs_space
        self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.market_seed: int | None = None
        self._live = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.market_seed = pick_seed(self.np_random, self.seeds, options)
        obs = self.engine.reset(self.market_seed)
        self._live = True
        return obs[0].copy(), {"market_seed": self.market_seed}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._live:
            raise RuntimeError("step: the episode is over; call reset first")
        obs, rewards, done = self.engine.step(action)
        self._live = not done
        return obs[0].copy(), float(rewards[0]), done, False, {}

    def close(self) -> None:
        self.engine.close()


class MarketGymEnv(EngineGymEnv):
    """One deviating provider against the scenario's others, round by round."""

    def __init__(self, scenario: str = "quickstart", deviator: str = "provider-0", *, engine: str = "fast",
                 rounds: int = 400, overrides: Sequence[str] = (), seeds: Sequence[int] | None = None,
                 action: str = "markup") -> None:
        made = make_engine(engine, scenario, (deviator,), overrides=overrides, rounds=rounds, action=action)
        low, high = obs_bounds(made.dim, made.floor, made.cap)
        super().__init__(made, spaces.Box(low, high, dtype=np.float32), seeds)
