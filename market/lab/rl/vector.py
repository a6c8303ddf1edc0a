"""The vectorised single-deviator market env (the [rl] extra): B markets, one learning provider in each, stepped
at once by ``market.lab.rl.batched.VectorFastEngine``.

``MarketVectorEnv`` is a ``gymnasium.vector.VectorEnv`` with next-step autoreset (Gymnasium's default): market b
behaves as the b-th ``MarketGymEnv`` of a ``SyncVectorEnv`` (the same observations, rewards and episode seeds for
the same seeds and actions; tests check it). Observation (B, d + 4) float32, action (B, 1) in [-1, 1], reward
(B,): the single env's, market by market. ``reset(seed=s)`` seeds market b's generator with s + b (as
``SyncVectorEnv`` seeds its envs), which picks each episode's run seed among ``seeds``;
``options={"market_seed": k}`` pins every market to run k, ``{"market_seeds": [k_0, ...]}`` one run each.

Every market has the same horizon, so all markets end an episode on the same step and start the next together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from market.lab.rl.spaces import require_rl

require_rl("the vectorised market env")

from gymnasium import spaces  # noqa: E402
from gymnasium.utils import seeding  # noqa: E402
from gymnasium.vector import AutoresetMode, VectorEnv  # noqa: E402
from gymnasium.vector.utils import batch_space  # noqa: E402

from market.lab.rl.batched import VectorFastEngine  # noqa: E402
from market.lab.rl.spaces import obs_bounds, pick_seed  # noqa: E402

DEFAULT_BATCH = 64


class VectorMarkets:
    """What both vector APIs share: the engine, each market's generator of run seeds and the episode's seeds."""

    def __init__(self, scenario: str, deviator: str, *, batch: int, rounds: int, overrides: Sequence[str],
                 seeds: Sequence[int] | None, action: str) -> None:
        self.engine = VectorFastEngine(scenario, deviator, batch=batch, overrides=overrides, rounds=rounds,
                                       action=action)
        self.B = self.engine.B
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else None
        self.rngs: list[np.random.Generator | None] = [None] * self.B
        self.market_seeds: list[int] = []
        low, high = obs_bounds(self.engine.dim, self.engine.floor, self.engine.cap)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def reset(self, seeds: Sequence[int | None] | None, options: dict[str, Any] | None) -> np.ndarray:
        """Start every market's next episode: market b's generator is seeded with seeds[b] when given (else it goes
        on, made from fresh entropy the first time), and picks the run (``pick_seed``; options pin runs)."""
        if seeds is not None and len(seeds) != self.B:
            raise ValueError(f"seed: got {len(seeds)} seeds, expected one per market ({self.B})")
        pinned = None
        if options and "market_seeds" in options:
            pinned = [int(s) for s in options["market_seeds"]]
            if len(pinned) != self.B:
                raise ValueError(f"options['market_seeds']: got {len(pinned)}, expected one per market ({self.B})")
        runs = []
        for b in range(self.B):
            if seeds is not None and seeds[b] is not None or self.rngs[b] is None:
                self.rngs[b] = seeding.np_random(None if seeds is None else seeds[b])[0]
            rng = self.rngs[b]
            assert rng is not None
            runs.append(pick_seed(rng, self.seeds, options) if pinned is None else pinned[b])
        self.market_seeds = runs
        return self.engine.reset(runs)

    def infos(self) -> dict[str, Any]:
        return {"market_seed": np.array(self.market_seeds), "_market_seed": np.ones(self.B, dtype=bool)}


class MarketVectorEnv(VectorEnv):
    """B single-deviator markets as one Gymnasium vector env (next-step autoreset)."""

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, scenario: str = "quickstart", deviator: str = "provider-0", *, num_envs: int = DEFAULT_BATCH,
                 rounds: int = 400, overrides: Sequence[str] = (), seeds: Sequence[int] | None = None,
                 action: str = "markup") -> None:
        self.markets = VectorMarkets(scenario, deviator, batch=num_envs, rounds=rounds, overrides=overrides,
                                     seeds=seeds, action=action)
        self.engine = self.markets.engine
        self.num_envs = self.markets.B
        self.single_observation_space = self.markets.single_observation_space
        self.single_action_space = self.markets.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._live = False
        self._autoreset = False

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if options and "reset_mask" in options:
            raise ValueError("options['reset_mask']: partial resets are not supported; every market of the batch "
                             "plays the same round, so reset them all")
        if isinstance(seed, (int, np.integer)):
            seeds: Sequence[int | None] | None = [int(seed) + b for b in range(self.num_envs)]
        else:
            seeds = seed
        obs = self.markets.reset(seeds, options)
        self._live, self._autoreset = True, False
        return obs.copy(), self.markets.infos()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._live:
            raise RuntimeError("step: call reset first")
        B = self.num_envs
        if self._autoreset:  # next-step autoreset: the actions of this call are ignored
            obs = self.markets.reset(None, None)
            self._autoreset = False
            return obs.copy(), np.zeros(B), np.zeros(B, dtype=bool), np.zeros(B, dtype=bool), self.markets.infos()
        obs, rewards, done = self.engine.step(actions)
        self._autoreset = done
        return obs.copy(), rewards.copy(), np.full(B, done), np.zeros(B, dtype=bool), {}

    def close_extras(self, **kwargs: Any) -> None:
        self.engine.close()

