"""The ad market's envs (the [rl] extra): a PettingZoo ParallelEnv in which any subset of advertisers learns at
once, and its Gymnasium single-deviator view.

The engine is ``market.lab.rl.ad_engine.AdsEngine``: MOSAIC on floor 1 over the ads scenario's auctions on the
simulated LM (``deviation.play_ads``'s auctions, bit for bit); not the real runtime. A learner is an advertiser
slot, ``advertiser-k`` (brand k of every query); the other slots report the truth.

- Observation (8,) float32, ``agents.ad_reportfuncs.ad_observation``: mean, std, min, max and median of its own
  true rewards on this auction's candidates, round / horizon, the true reward of the reply shown in its last
  auction and what it paid there (0 before any).
- Action Box([-1], [1]): it reports ``4 ** a`` x its true rewards (a = 0 is truthful; factors 1/4 to 4).
- Reward: the auction's interim utility E_q[r_i] - p_i with true rewards, as the deviation experiment sums it.

An episode is one run (``rounds`` queries asked, each once per proposal). ``reset(seed=s)`` seeds the env's
generator, which picks the run's seed among ``seeds`` (``options={"market_seed": k}`` pins one).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from market.lab.rl.spaces import require_rl

require_rl("the ad market env")

import gymnasium  # noqa: E402
from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402

from agents.ad_reportfuncs import AD_OBS_DIM  # noqa: E402
from market.lab.rl.ad_engine import AdsEngine  # noqa: E402
from market.lab.rl.spaces import pick_seed  # noqa: E402


def ad_obs_space() -> spaces.Box:
    """Rewards and payments unbounded (Rochet payments can be rebates), round / horizon in [0, 1]."""
    low = np.full(AD_OBS_DIM, -np.inf, dtype=np.float32)
    high = np.full(AD_OBS_DIM, np.inf, dtype=np.float32)
    low[5], high[5] = 0.0, 1.0
    return spaces.Box(low, high, dtype=np.float32)


class AdsParallelEnv(ParallelEnv):
    """Advertiser slots ``learners`` report with the env's factors, auction by auction, all at once."""

    metadata: dict[str, Any] = {"name": "llm_market_ads_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, learners: Sequence[str] = ("advertiser-0", "advertiser-1"), *, rounds: int = 50,
                 overrides: Sequence[str] = (), seeds: Sequence[int] | None = None) -> None:
        self.engine = AdsEngine(tuple(learners), overrides=overrides, rounds=rounds)
        self.possible_agents = list(self.engine.learners)
        self.agents: list[str] = []
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else None
        self._rng = np.random.default_rng(0)
        self.market_seed: int | None = None
        self.render_mode = None

    @functools.lru_cache(maxsize=None)  # noqa: B019 - one space object per agent, as the API asks
    def observation_space(self, agent: str) -> spaces.Box:
        return ad_obs_space()

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

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


class AdsGymEnv(gymnasium.Env):
    """One deviating advertiser slot against truthful others, auction by auction."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, deviator: str = "advertiser-0", *, rounds: int = 50, overrides: Sequence[str] = (),
                 seeds: Sequence[int] | None = None) -> None:
        self.engine = AdsEngine((deviator,), overrides=overrides, rounds=rounds)
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else None
        self.observation_space = ad_obs_space()
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
