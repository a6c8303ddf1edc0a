"""B independent markets stepped at once: the batched TRCM-UCB mechanism and the vectorised fast engine.

A single market's round is a few dozen NumPy calls on arrays of 5 to 45 numbers, so its cost is the calls, not
the arithmetic. Here the same calls act on B markets at once: the rule's per-arm ridge blocks of all markets are
one (B, n, d + 1, d) array (``TRCMUCB``'s LinUCB keeps theta_hat on row 0 above V^-1, one block per arm), ROSA's
resampling is one expression over (B, n) bids and coins, and the Sherman-Morrison step updates every market's
winner at once. Each market keeps its own random streams (``FastMarket``'s: contexts, costs, rewards, coins), so
market b of a batch reset with seeds s_0 .. s_{B-1} is a ``FastEngine`` run with seed s_b on the same actions
(tests check it to the micro-credit, round by round).

``BatchedTRCMUCB`` takes B built mechanisms of one kind: ROSA or pay-as-bid around ``TRCMUCB`` with one uniform
prior, constant width and no elimination (``rosa-trcm-ucb``, ``pay-as-bid``; the mechanisms the envs train on).
``VectorFastEngine`` runs it when the scenario allows (one learner, every other provider truthful with a uniform
prior); otherwise it steps B ``FastEngine`` markets one after the other, with the same results and no speed-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.policy import OBS_EXTRA
from agents.strategies import Truthful
from market.core.mechanisms.baselines import PayAsBid
from market.core.mechanisms.priors import UniformCost
from market.core.mechanisms.rosa import ROSA
from market.core.mechanisms.rules import TRCMUCB
from market.core.quality import LinearQuality
from market.lab.rl.engines import FastEngine, _spec
from market.runtime.config import ConfigError

NO_WINNER = -1


def batchable(mechanism: Any) -> str | None:
    """Why ``mechanism`` has no batched form (None if it has one): ROSA or pay-as-bid around a ``TRCMUCB`` rule
    with one shared uniform prior (phi = 2 chi - c_lo), constant width and no elimination."""
    if type(mechanism) not in (ROSA, PayAsBid):
        return f"{type(mechanism).__name__} is neither ROSA nor pay-as-bid"
    rule = mechanism.rule
    if type(rule) is not TRCMUCB:
        return f"its rule is {type(rule).__name__}, not TRCMUCB"
    if rule._shared_lo is None:
        return "its rule has no single uniform prior, or elimination, or welfare surplus"
    if rule.learner.width != "constant":
        return f"its rule's width is {rule.learner.width!r}, not 'constant'"
    return None


class BatchedTRCMUCB:
    """B copies of one ROSA (or pay-as-bid) TRCM-UCB mechanism, each with its own learner state.

    ``select`` and ``update`` do for every market what the mechanism's own ``select`` and ``update`` do, with the
    same operations in the same order on each market's numbers: the winners are the same and every figure agrees
    to rounding (the tests check winners exactly and money to 1e-9).
    """

    def __init__(self, mechanisms: Sequence[Any]) -> None:
        if not mechanisms:
            raise ValueError("mechanisms: got none, expected at least one market's mechanism")
        first = mechanisms[0]
        for b, mech in enumerate(mechanisms):
            why = batchable(mech)
            if why is not None:
                raise ValueError(f"mechanisms[{b}]: {mech.name!r} has no batched form: {why}")
            if self._params(mech) != self._params(first):
                raise ValueError(f"mechanisms[{b}]: parameters {self._params(mech)}, expected those of market 0, "
                                 f"{self._params(first)}")
        self.B, self.n, self.d = len(mechanisms), first.n, first.rule.d
        self.resampling = type(first) is ROSA
        self.mu = float(first.mu) if self.resampling else 0.0
        self.cap, self.floor = first.cost_cap, first.cost_floor
        rule = first.rule
        self.reserve, self.lo = rule.reserve, rule._shared_lo
        self.alpha_sq = rule.learner._alpha_sq
        # every market's (n, d + 1, d) blocks: [theta_hat; V^-1] per arm, as LinUCB keeps them
        self.block = np.stack([m.rule.learner._block for m in mechanisms])
        self.pulls = np.stack([m.rule.learner.pulls for m in mechanisms])
        self._rows = self.block.reshape(self.B, self.n * (self.d + 1), self.d)
        self._lifted = np.zeros((self.B, self.d + 1, 1))
        self._markets = np.arange(self.B)

    @staticmethod
    def _params(mech: Any) -> tuple[Any, ...]:
        rule = mech.rule
        return (type(mech).__name__, mech.n, rule.d, getattr(mech, "mu", None), mech.cost_cap, mech.cost_floor,
                rule.reserve, rule._shared_lo, rule.learner._alpha_sq)

    def select(self, x: np.ndarray, bids: np.ndarray, coins: np.ndarray | None) -> tuple[np.ndarray, np.ndarray,
                                                                                            np.ndarray]:
        """(winner (B,) with ``NO_WINNER`` for none, the winner's payment (B,), resampled bids (B, n)) for contexts
        x (B, d), bids (B, n) inside the range and ROSA's coins (B, 2, n) (``rosa.draw_coins`` per market; None
        for pay-as-bid, which draws none)."""
        if self.resampling:
            assert coins is not None
            modified = coins[:, 0, :] < self.mu
            raised = self.cap - (self.cap - bids) * coins[:, 1, :] ** (1.0 / (1.0 - self.mu))
            resampled = np.where(modified, raised, bids)
        else:
            modified, resampled = None, bids
        # LinUCB.ucb for each market: y = rows @ x, width sqrt(y . [0, alpha^2 x]), plus theta . x
        y = np.matmul(self._rows, x[:, :, None]).reshape(self.B, self.n, self.d + 1)
        np.multiply(x, self.alpha_sq, out=self._lifted[:, 1:, 0])
        idx = np.sqrt(np.matmul(y, self._lifted))[:, :, 0]
        idx += y[:, :, 0]
        idx -= resampled
        idx -= resampled
        best = idx.argmax(axis=1)
        top = idx[self._markets, best]
        winner = np.where((top + self.lo >= self.reserve) & (top > -np.inf), best, NO_WINNER)
        bid = bids[self._markets, best]
        if modified is not None:
            pay = bid + modified[self._markets, best] * (self.cap - bid) / self.mu
        else:
            pay = bid.copy()
        pay[winner == NO_WINNER] = 0.0
        return winner, pay, resampled

    def update(self, x: np.ndarray, winner: np.ndarray, reward: np.ndarray) -> None:
        """LinUCB.update(winner_b, x_b, reward_b) in every market with a winner (the rank-one Sherman-Morrison step
        of the winner's block); markets without one are left alone."""
        won = np.flatnonzero(winner != NO_WINNER)
        if not won.size:
            return
        arms = winner[won]
        xs = x[won]
        block = self.block[won, arms]  # (m, d + 1, d), a copy
        z = np.matmul(block, xs[:, :, None])[:, :, 0]
        ax = z[:, 1:]
        k = 1.0 / (1.0 + np.matmul(ax[:, None, :], xs[:, :, None])[:, 0, 0])
        g = z * k[:, None]
        g[:, 0] -= k * reward[won]
        block -= g[:, :, None] * ax[:, None, :]
        self.block[won, arms] = block
        self.pulls[won, arms] += 1

    def state(self, b: int) -> dict[str, Any]:
        """Market b's learner state, as ``mechanism.get_state()`` gives it."""
        block = self.block[b]
        learner = {"v_inv": block[:, 1:, :].copy(), "theta_hat": block[:, 0, :].copy(), "pulls": self.pulls[b].copy()}
        return {"rule": {"learner": learner}}


class VectorFastEngine:
    """B markets of one scenario with one learner each, stepped at once: ``reset(seeds)`` then ``step(actions)``.

    obs: (B, obs_dim) float32, the learner's ``agents.policy.observation`` in each market; rewards: (B,) its profit
    in the round; every market has the same horizon, so all end on the same step. ``batched`` says whether the
    batched mechanism runs (else B ``FastEngine`` markets are stepped in turn; ``why_not`` says why).
    """

    def __init__(self, scenario: str, learner: str = "provider-0", *, batch: int = 64, overrides: Sequence[str] = (),
                 rounds: int = 400, action: str = "markup") -> None:
        if not (isinstance(batch, (int, np.integer)) and batch >= 1):
            raise ConfigError(f"batch: got {batch!r}, expected a whole number of markets >= 1")
        spec = _spec(scenario, overrides, rounds, (learner,))
        self.scenario, self.overrides, self.horizon, self.action = scenario, tuple(overrides), int(rounds), action
        self.learner, self.learners, self.B = learner, (learner,), int(batch)
        self.resolved = spec["resolved"]
        self.providers: tuple[str, ...] = spec["providers"]
        self.dim, self.floor, self.cap = spec["dim"], spec["floor"], spec["cap"]
        self.i = self.providers.index(learner)
        self.n = len(self.providers)
        self.why_not = self._why_not()
        self.batched = self.why_not is None
        self.obs = np.zeros((self.B, self.dim + OBS_EXTRA), dtype=np.float32)
        self.rewards = np.zeros(self.B)
        self.engines: list[FastEngine] = []
        self.t = self.horizon
        self.seeds: tuple[int, ...] = ()

    def _why_not(self) -> str | None:
        """Why this scenario cannot run batched (None if it can), read off one market built for seed 0."""
        from market.lab.deviation import FastMarket

        m = FastMarket(self.scenario, self.overrides, 0, self.horizon, resolved=self.resolved)
        why = batchable(m.mechanism)
        if why is not None:
            return f"mechanism {m.mechanism.name!r}: {why}"
        for p, prior, bidder in zip(self.providers, m.instance.priors, m.bidders):
            if type(prior) is not UniformCost:
                return f"{p}'s cost prior is {type(prior).__name__}, not uniform"
            if p != self.learner and type(bidder.strategy) is not Truthful:
                return f"{p} plays {type(bidder.strategy).__name__}, not truthful"
        return None

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Start market b on seed ``seeds[b]``; the learners' first observations (B, obs_dim)."""
        from market.lab.deviation import FastMarket

        if len(seeds) != self.B:
            raise ValueError(f"seeds: got {len(seeds)}, expected one per market ({self.B})")
        self.seeds = tuple(int(s) for s in seeds)
        self.t = 0
        if not self.batched:
            if not self.engines:
                self.engines = [FastEngine(self.scenario, self.learners, overrides=self.overrides, rounds=self.horizon,
                                           action=self.action) for _ in range(self.B)]
            for b, (env, seed) in enumerate(zip(self.engines, self.seeds)):
                self.obs[b] = env.reset(seed)[0]
            return self.obs
        markets = [FastMarket(self.scenario, self.overrides, s, self.horizon, resolved=self.resolved, bidders=False)
                   for s in self.seeds]
        self.markets = markets
        T, n = self.horizon, self.n
        # each provider's costs of the whole run, from its own stream in one block (FastEngine's draws)
        self.cost_rows = np.empty((self.B, T, n))
        for b, m in enumerate(markets):
            for i, prior in enumerate(m.instance.priors):
                self.cost_rows[b, :, i] = prior.sample(m.rngs[i], T)
        self.bid_rows = np.clip(self.cost_rows, self.floor, self.cap)
        self.mechanism = BatchedTRCMUCB([m.mechanism for m in markets])
        self.coin_rows = (np.stack([m.mech_rng.random((T, 2, n)) for m in markets])
                          if self.mechanism.resampling else None)
        self.user_rngs = [m.user_rng for m in markets]
        self.contexts = [m.instance.contexts for m in markets]
        self.samplers = [m.instance.quality.sample for m in markets]
        qualities = [m.instance.quality for m in markets]
        gaussian = all(type(q) is LinearQuality and q.noise == "gaussian" and q.scale == qualities[0].scale
                       for q in qualities)
        self.theta = np.stack([q.theta for q in qualities]) if gaussian else None
        self.noise_scale = float(qualities[0].scale) if gaussian else 0.0
        self.x = np.empty((self.B, self.dim))
        self.won = np.zeros(self.B, dtype=bool)
        self.paid = np.zeros(self.B)
        self._draw()
        return self.obs

    def _draw(self) -> None:
        """Round t's contexts (each market's user stream) and the learners' observations."""
        t, x = self.t, self.x
        x[:] = [draw(rng) for draw, rng in zip(self.contexts, self.user_rngs)]
        self._observe(self.cost_rows[:, t, self.i], x, t)

    def _observe(self, cost: np.ndarray, x: np.ndarray, t: int) -> None:
        obs, d = self.obs, self.dim
        obs[:, 0] = cost
        obs[:, 1:d + 1] = x
        obs[:, d + 1] = t / self.horizon
        obs[:, d + 2] = self.won
        obs[:, d + 3] = self.paid

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Every market's round with the learners' actions (B,) or (B, 1); (obs, rewards, done)."""
        if self.t >= self.horizon:
            raise RuntimeError(f"step: the episode is over (round {self.t} of {self.horizon}); call reset first")
        a = np.asarray(actions, dtype=float).reshape(-1)
        if a.size != self.B:
            raise ValueError(f"actions: got {a.size} values, expected one per market ({self.B})")
        if not self.batched:
            done = False
            for b, env in enumerate(self.engines):
                obs, rewards, done = env.step(a[b:b + 1])
                self.obs[b], self.rewards[b] = obs[0], rewards[0]
            self.t += 1
            return self.obs, self.rewards, done
        t, i, x = self.t, self.i, self.x
        bids = self.bid_rows[:, t, :].copy()
        cost = self.cost_rows[:, t, i]
        bids[:, i] = _action_to_bid(a, cost, self.floor, self.cap, self.action)
        coins = self.coin_rows[:, t] if self.coin_rows is not None else None
        winner, pay, _ = self.mechanism.select(x, bids, coins)
        reward = np.zeros(self.B)
        served = np.flatnonzero(winner != NO_WINNER)
        if self.theta is not None:
            # LinearQuality.sample with Gaussian noise, its means for every market in one product
            arms = winner[served]
            means = np.matmul(self.theta[served, arms][:, None, :], x[served][:, :, None])[:, 0, 0].tolist()
            rngs, scale = self.user_rngs, self.noise_scale
            reward[served] = [mean + scale * rngs[b].standard_normal() for mean, b in zip(means, served.tolist())]
        else:
            for b in served.tolist():
                reward[b] = self.samplers[b](int(winner[b]), x[b], self.user_rngs[b])
        self.mechanism.update(x, winner, reward)
        self.won = winner == i
        self.paid = np.where(self.won, pay, 0.0)
        self.rewards = np.where(self.won, pay - cost, 0.0)
        self.t += 1
        done = self.t >= self.horizon
        if done:
            self._observe(np.full(self.B, self.floor), np.zeros((self.B, self.dim)), self.t)
        else:
            self._draw()
        return self.obs, self.rewards, done

    def close(self) -> None:
        for env in self.engines:
            env.close()


def _action_to_bid(a: np.ndarray, cost: np.ndarray, floor: float, cap: float, mode: str) -> np.ndarray:
    """``agents.policy.action_to_bid`` over arrays: the same clips and the same arithmetic, element by element."""
    a = np.minimum(np.maximum(a, -1.0), 1.0)
    if mode == "markup":
        bid = cost + a * (cap - floor)
    elif mode == "bid":
        bid = floor + 0.5 * (a + 1.0) * (cap - floor)
    else:
        raise ValueError(f"action mode = {mode!r}: expected 'markup' or 'bid'")
    return np.minimum(np.maximum(bid, floor), cap)
