"""What the PettingZoo and Gymnasium envs share: the extra check, spaces' bounds and the choice of a run's seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.policy import OBS_EXTRA


def require_rl(what: str) -> None:
    """Raise an ImportError naming the [rl] extra when pettingzoo, gymnasium or stable-baselines3 is missing."""
    import importlib.util

    missing = [m for m in ("gymnasium", "pettingzoo") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{what} needs the [rl] extra ({', '.join(missing)} missing): "
                          "pip install 'llm-market-sim[rl]'")


def obs_bounds(dim: int, floor: float, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the observation (``agents.policy.observation``): cost in [floor, cap], the context
    unbounded (a scenario's contexts may be embeddings), round / horizon and the last outcome in [0, 1], the last
    payment >= 0 (a reverse auction pays providers, never charges them)."""
    low = np.concatenate([[floor], np.full(dim, -np.inf), [0.0, 0.0, 0.0]]).astype(np.float32)
    high = np.concatenate([[cap], np.full(dim, np.inf), [1.0, 1.0, np.inf]]).astype(np.float32)
    assert low.shape == (dim + OBS_EXTRA,)
    return low, high


def pick_seed(rng: np.random.Generator, seeds: Sequence[int] | None, options: dict[str, Any] | None) -> int:
    """The run's seed of an episode: ``options["market_seed"]`` if given, else one of ``seeds`` (the training
    seeds) drawn by the env's generator, else a seed drawn by it."""
    if options and "market_seed" in options:
        return int(options["market_seed"])
    if seeds:
        return int(seeds[int(rng.integers(len(seeds)))])
    return int(rng.integers(2**31 - 1))
