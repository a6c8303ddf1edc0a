"""The PettingZoo ParallelEnv of the market (the [rl] extra): any subset of providers learns at once.

Each learner observes ``agents.policy.observation`` (own cost, the query's context, round / horizon, own last
outcome and payment; float32) and acts with a markup a in [-1, 1]: bid = cost + a (cost_cap - cost_floor),
clipped into the bid range (a = 0 is truthful; from any cost every bid in the range is reachable, which a
multiplier of cost is not when the cost is near 0). Its reward is that round's profit. The providers that do not
learn play their scenario strategies. An episode is one run; every learner is done after its last round.
``reset(seed=s)`` seeds the env's generator, which picks the run's seed among ``seeds``
(``options={"market_seed": k}`` pins one). ``engine``: ``fast`` or ``market`` (the real runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from market.lab.rl.spaces import require_rl

require_rl("the PettingZoo market env")

from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402

from market.lab.rl.engines import make_engine  # noqa: E402
from market.lab.rl.spaces import obs_bounds, pick_seed  # noqa: E402


class EngineParallelEnv(ParallelEnv):
    """A ParallelEnv over an engine's learners (``market.lab.rl.engines.Engine``): every learner observes a point
    of ``obs_space`` and acts with a in [-1, 1], all at once; the ad market's env is one too."""

    metadata: dict[str, Any] = {"name": "llm_market_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, engine: Any, obs_space: spaces.Box, seeds: Sequence[int] | None) -> None:
        self.engine = engine
        self.possible_agents = list(self.engine.learners)
        self.agents: list[str] = []
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else None
        self._rng = np.random.default_rng(0)
        self.market_seed: int | None = None
        self.render_mode = None
        self._obs_space = obs_space  # one space object for every agent and call, as the API asks
        self._action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Box:
        return self._action_space

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.market_seed = pick_seed(self._rng, self.seeds, options)
        obs = self.engine.reset(self.market_seed)
        self.agents = list(self.possible_agents)
        return ({a: obs[j].copy() for j, a in enumerate(self.possible_agents)},
                {a: {"market_seed": self.market_seed} for a in self.possible_agents})

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step: the episode is over; call reset first")
        missing = [a for a in self.possible_agents if a not in actions]
        if missing:
            raise ValueError(f"actions: no action for {missing}; expected one per learner {self.possible_agents}")
        a = np.array([float(np.asarray(actions[p]).reshape(-1)[0]) for p in self.possible_agents])
        obs, rewards, done = self.engine.step(a)
        ids = self.possible_agents
        out = ({p: obs[j].copy() for j, p in enumerate(ids)}, {p: float(rewards[j]) for j, p in enumerate(ids)},
               {p: done for p in ids}, {p: False for p in ids}, {p: {} for p in ids})
        if done:
            self.agents = []
        return out

    def close(self) -> None:
        self.engine.close()


class MarketParallelEnv(EngineParallelEnv):
    """Providers ``learners`` bid the env's actions, round by round, all at once."""

    def __init__(self, scenario: str = "quickstart", learners: Sequence[str] = ("provider-0", "provider-1"), *,
                 engine: str = "fast", rounds: int = 400, overrides: Sequence[str] = (),
                 seeds: Sequence[int] | None = None, action: str = "markup") -> None:
        made = make_engine(engine, scenario, tuple(learners), overrides=overrides, rounds=rounds, action=action)
        low, high = obs_bounds(made.dim, made.floor, made.cap)
        super().__init__(made, spaces.Box(low, high, dtype=np.float32), seeds)
