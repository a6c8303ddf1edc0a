"""The ad market's envs (the [rl] extra): a PettingZoo ParallelEnv in which any subset of advertisers learns at
once, and its Gymnasium single-deviator view.

``engine="fast"`` (the default) is ``market.lab.rl.ad_engine.AdsEngine``: MOSAIC on floor 1 over the ads
scenario's auctions on the simulated LM (``deviation.play_ads``'s auctions, bit for bit). ``engine="market"`` is
``market.lab.rl.ad_market.AdsMarketEngine``: the same scenario through the real runtime (platform, bus, ledger)
in a thread, handing off at each learner's report; the same seed and actions give the same observations and
rewards. A learner is an advertiser
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

from collections.abc import Sequence
from typing import Any

import numpy as np

from market.lab.rl.spaces import require_rl

require_rl("the ad market env")

from gymnasium import spaces  # noqa: E402

from agents.ad_reportfuncs import AD_OBS_DIM  # noqa: E402
from market.lab.rl.ad_market import make_ad_engine  # noqa: E402
from market.lab.rl.gym import EngineGymEnv  # noqa: E402
from market.lab.rl.pz import EngineParallelEnv  # noqa: E402


def ad_obs_space() -> spaces.Box:
    """Rewards and payments unbounded (Rochet payments can be rebates), round / horizon in [0, 1]."""
    low = np.full(AD_OBS_DIM, -np.inf, dtype=np.float32)
    high = np.full(AD_OBS_DIM, np.inf, dtype=np.float32)
    low[5], high[5] = 0.0, 1.0
    return spaces.Box(low, high, dtype=np.float32)


class AdsParallelEnv(EngineParallelEnv):
    """Advertiser slots ``learners`` report with the env's factors, auction by auction, all at once."""

    metadata: dict[str, Any] = {"name": "llm_market_ads_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, learners: Sequence[str] = ("advertiser-0", "advertiser-1"), *, rounds: int = 50,
                 overrides: Sequence[str] = (), seeds: Sequence[int] | None = None, engine: str = "fast") -> None:
        super().__init__(make_ad_engine(engine, tuple(learners), overrides=overrides, rounds=rounds), ad_obs_space(),
                         seeds)


class AdsGymEnv(EngineGymEnv):
    """One deviating advertiser slot against truthful others, auction by auction."""

    def __init__(self, deviator: str = "advertiser-0", *, rounds: int = 50, overrides: Sequence[str] = (),
                 seeds: Sequence[int] | None = None, engine: str = "fast") -> None:
        super().__init__(make_ad_engine(engine, (deviator,), overrides=overrides, rounds=rounds), ad_obs_space(),
                         seeds)
