"""Report functions of advertisers: a report factor as a parameterised function of what the advertiser sees.

MOSAIC asks each advertiser for its rewards on the round's candidates; an attacker reports ``f * r`` for its true
rewards ``r`` with a factor ``f`` it chooses. The strategy ``reportfunc`` (params ``family`` and ``theta``) is
what the search attack hands back in the ad market, as ``bidfunc`` is on the providers' side; ``ad-policy``
(param ``path``) reports with a saved policy, what the PPO attack trains on the ad env
(``market.lab.rl.ads``). Both see only an ``AdObservation`` (own true rewards on the candidates, the round index,
own past rounds), so whatever an attack finds is a strategy an advertiser can play through the real bus; both
keep their description (the candidates stay those of the truthful twin: MOSAIC's theorem holds on a fixed set).

Families (theta, in order), with the spread s = the standard deviation of the own true rewards on the candidates:

- ``constant`` [a]: f = a.
- ``affine`` [a, b]: f = a + b * s (exaggerate where the advertiser cares a lot, or a little).
- ``time`` [a_early, a_late, switch]: f = a_early in rounds before ``switch``, a_late from it on.
- ``threshold`` [t, a_low, a_high]: f = a_high when s >= t, else a_low.

f is clipped into [0, FACTOR_MAX]: a negative factor would report the reverse of the advertiser's preferences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .ad_strategies import AdObservation, Truthful

FACTOR_MAX = 16.0

# theta length per family
FAMILIES: dict[str, int] = {"constant": 1, "affine": 2, "time": 3, "threshold": 3}

FACTORS = (0.25, 4.0)
# The box a search draws each theta component from: (low, high); "rounds" as the high end is the run's auctions.
SEARCH_SPACE: dict[str, tuple[tuple[float, float | str], ...]] = {
    "constant": (FACTORS,),
    "affine": (FACTORS, (-1.0, 1.0)),
    "time": (FACTORS, FACTORS, (0.0, "rounds")),
    "threshold": ((0.0, 5.0), FACTORS, FACTORS),
}
# The parameters with which each family reports the truth.
TRUTHFUL: dict[str, tuple[float, ...]] = {"constant": (1.0,), "affine": (1.0, 0.0), "time": (1.0, 1.0, 0.0),
                                          "threshold": (0.0, 1.0, 1.0)}


def check_theta(family: str, theta: Any) -> tuple[float, ...]:
    """``theta`` as a tuple of floats for ``family``; a ValueError naming the family, the value and what is
    allowed if the family is unknown, theta is not a list of finite numbers of the family's length."""
    if family not in FAMILIES:
        raise ValueError(f"family = {family!r}: expected one of {sorted(FAMILIES)}")
    if isinstance(theta, (str, bytes)) or not isinstance(theta, Sequence):
        raise ValueError(f"theta = {theta!r}: expected a list of numbers for family {family!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in theta):
        raise ValueError(f"theta = {list(theta)!r}: expected numbers only (family {family!r})")
    values = tuple(float(v) for v in theta)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"theta = {list(values)!r}: expected finite numbers (no NaN or infinity)")
    if len(values) != FAMILIES[family]:
        raise ValueError(f"theta = {list(values)!r}: family {family!r} expects {FAMILIES[family]} values, "
                         f"got {len(values)}")
    if family == "time" and values[2] < 0:
        raise ValueError(f"theta = {list(values)!r}: family 'time' expects a switch round theta[2] >= 0")
    return values


def clip_factor(f: float) -> float:
    return min(max(float(f), 0.0), FACTOR_MAX)


class _Factored(Truthful):
    """An advertiser reporting its true rewards times a factor; the last factor is its state (1 before any)."""

    last_factor: float = 1.0

    @property
    def alpha(self) -> float:
        """The factor of the last report (1 before any), for traces (as ``AlphaLearner.alpha``)."""
        return float(self.last_factor)

    def get_state(self) -> dict[str, Any]:
        return {"last_factor": self.last_factor}

    def set_state(self, state: dict[str, Any]) -> None:
        self.last_factor = float(state.get("last_factor", 1.0))


class ReportFunction(_Factored):
    """Reports f_theta(own rewards, round) x its true rewards; deterministic (no coins), keeps its description."""

    name = "reportfunc"

    def __init__(self, family: str = "constant", theta: Sequence[float] = (1.0,)) -> None:
        self.family = family
        self.theta = check_theta(family, theta)
        self.last_factor = 1.0

    def factor(self, true_rewards: np.ndarray, round_index: int) -> float:
        """The factor for these true rewards in round ``round_index``, clipped into [0, FACTOR_MAX]."""
        th, f = self.theta, self.family
        if f == "constant":
            a = th[0]
        elif f == "affine":
            a = th[0] + th[1] * float(np.std(true_rewards))
        elif f == "time":
            a = th[0] if round_index < th[2] else th[1]
        else:  # threshold
            a = th[2] if float(np.std(true_rewards)) >= th[0] else th[1]
        return clip_factor(a)

    def report(self, obs: AdObservation) -> np.ndarray:
        r = np.asarray(obs.true_rewards, dtype=float)
        self.last_factor = self.factor(r, obs.round)
        return self.last_factor * r


def reportfunc_overrides(family: str, theta: Sequence[float]) -> tuple[str, ...]:
    """The --set items giving ``reportfunc`` its family and theta (checked here, before any run). The ad market's
    deviator (advertiser 0 of every query) is chosen by the deviation experiment, not by these items."""
    values = check_theta(family, theta)
    return ("strategies.params.reportfunc.family=" + family,
            f"strategies.params.reportfunc.theta=[{', '.join(repr(v) for v in values)}]")


# -- the learned policy's view: a fixed-size observation and the action's factor ----------------------------------

AD_OBS_DIM = 8  # mean, std, min, max, median of own rewards; round / horizon; last shown reward; last payment
FACTOR_BASE = 4.0  # action a in [-1, 1] -> factor FACTOR_BASE ** a, in [1/4, 4]; a = 0 is truthful


def ad_observation(true_rewards: np.ndarray, round_index: int, horizon: int, last_reward: float,
                   last_payment: float, out: np.ndarray | None = None) -> np.ndarray:
    """The advertiser's observation (AD_OBS_DIM,) float32: a summary of its own true rewards on this auction's
    candidates (what it sees of the query and the candidate set), round / horizon, and the true reward of the
    reply shown and its payment in its last round (0 before any)."""
    r = np.asarray(true_rewards, dtype=float)
    if out is None:
        out = np.empty(AD_OBS_DIM, dtype=np.float32)
    out[0], out[1], out[2], out[3], out[4] = r.mean(), r.std(), r.min(), r.max(), np.median(r)
    out[5] = round_index / horizon
    out[6] = last_reward
    out[7] = last_payment
    return out


def ad_normalisation() -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) taking each observation entry to about [-1, 1]: rewards and payments in units of 3 (the
    catalogue LM's rewards spread over about [-4, 4] at tau = 1), the round fraction from [0, 1]."""
    mean = np.array([0, 0, 0, 0, 0, 0.5, 0, 0], dtype=np.float32)
    scale = np.array([3, 3, 3, 3, 3, 0.5, 3, 3], dtype=np.float32)
    return mean, scale


def action_to_factor(action: float) -> float:
    """The report factor of an action in [-1, 1] (clipped): FACTOR_BASE ** a."""
    return float(FACTOR_BASE ** min(max(float(action), -1.0), 1.0))


class AdPolicy(_Factored):
    """Reports ``action_to_factor(policy(obs))`` x its true rewards, with a saved policy (``agents.policy``'s
    NumPy MLP, action ``factor``) on ``ad_observation``: its own rewards' summary, round / horizon, its last
    round's shown reward and payment (from its history). Deterministic; keeps its description."""

    name = "ad-policy"
    memory: int | None = 1  # the last round's outcome, for the observation

    def __init__(self, path: str = "", horizon: int | None = None) -> None:
        from .policy import AD_ACTION, load_policy

        if not path:
            raise ValueError("path = '': expected a policy file (strategies.params.ad-policy.path = FILE.npz)")
        self.policy = load_policy(path, horizon=horizon)
        if self.policy.action != AD_ACTION or self.policy.obs_dim != AD_OBS_DIM:
            raise ValueError(f"policy {str(path)!r}: action {self.policy.action!r} over {self.policy.obs_dim} inputs; "
                             f"expected action {AD_ACTION!r} over {AD_OBS_DIM} (a policy trained on the ad env)")
        self.path = str(path)
        self.last_factor = 1.0
        self._obs = np.zeros(AD_OBS_DIM, dtype=np.float32)

    def report(self, obs: AdObservation) -> np.ndarray:
        r = np.asarray(obs.true_rewards, dtype=float)
        last = obs.history[-1] if obs.history else None
        ad_observation(r, obs.round, self.policy.horizon, last.reward if last else 0.0, last.payment if last else 0.0,
                       self._obs)
        self.last_factor = action_to_factor(self.policy.act(self._obs))
        return self.last_factor * r
