"""The ad envs' second engine: the ads scenario through the real runtime (platform, bus, ledger; no files).

``AdsMarketEngine`` has ``AdsEngine``'s interface (``learners``, ``horizon``, ``reset(seed)`` -> (k, AD_OBS_DIM)
float32, ``step(actions)`` -> (obs, rewards, done), ``close``). The world runs in a thread of its own; a learner
slot ``advertiser-k`` is brand k of every query, and each of those advertiser agents reports through a handoff
strategy. When the first learner of an auction is asked to report, the world stops (its virtual clock with it)
and hands the env every learner's observation; the reports, ``action_to_factor(a)`` x each learner's true
rewards, go out once ``step`` brings the actions (the ABIDES-Gym pattern, as ``engines.MarketEngine`` does for
providers).

What the env sees is built by the engine from what the learners' agents see, as ``AdsEngine`` defines it:

- Observation: ``ad_observation`` of the learner's true rewards on this auction's candidates (its agent's
  own computation), the platform's round index / horizon, and the true reward of the reply shown and the payment
  of the slot's last auction. The last auction is the slot's, across queries: an advertiser agent's own history
  holds only its query's auctions (the ``ad-policy`` strategy observes that one, so on the real platform it sees
  another last outcome than the fast engine's slot does); the engine keeps the slot's last outcome itself.
- Reward: the auction's interim utility E_q[r_i] - p_i with true rewards, on the auction's outcome as the
  platform's mechanism computed it (q and the payments before the ledger settles them in micro-credits; the
  settled payment is checked to be that payment rounded, so a refused charge stops the run). The last payment
  of the observation is the same unrounded payment; the advertiser's own ``ReplyShown`` carries it rounded.

Same seed and same actions give ``AdsEngine``'s observations and rewards (tests check it to 1e-9). The market
must have no link faults: every learner of an auction must get its candidates at the same instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.ad_reportfuncs import AD_OBS_DIM, action_to_factor, ad_observation
from agents.ad_strategies import AdFeedback, AdObservation, Truthful
from market.core.ledger import to_minor
from market.lab.rl.ad_engine import AdsEngine, ad_config, learner_slots
from market.lab.rl.engines import WorldThread
from market.runtime.config import ConfigError, resolve
from market.runtime.records import MessageSent, Record, RoundClosed

AD_ENGINE_KINDS = ("fast", "market")


class _Handoff(Truthful):
    """A learner slot's strategy on every query: keeps its description (the candidates stay the truthful run's),
    asks the engine for its report. Outcomes reach the engine from the platform's records, not from here."""

    name = "env"

    def __init__(self, engine: AdsMarketEngine, j: int) -> None:
        self.engine, self.j = engine, j

    def report(self, obs: AdObservation) -> np.ndarray:
        return self.engine._report(self.j, obs)

    def learn(self, feedback: AdFeedback) -> None:
        pass


class _Tap:
    """The platform's mechanism, called as it is; keeps the last call's reports and outcome for the engine."""

    def __init__(self, mechanism: Any) -> None:
        self.mechanism = mechanism
        self.reports: np.ndarray | None = None
        self.outcome: Any = None

    def __call__(self, rewards: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        self.outcome = self.mechanism(rewards, *args, **kwargs)
        self.reports = np.array(rewards, dtype=float)
        return self.outcome


class AdsMarketEngine:
    """The ads scenario through the real runtime, in a thread; the learner slots' report factors come from
    ``step``. Config checks are ``AdsEngine``'s (a reward auction, a simulated LM) plus no link faults."""

    def __init__(self, learners: Sequence[str] = ("advertiser-0",), *, overrides: Sequence[str] = (),
                 rounds: int = 50) -> None:
        if rounds < 1:
            raise ConfigError(f"rounds: got {rounds}, expected at least 1")
        from market.data import ad_queries
        from scenarios.ads import asked

        self.config = ad_config(overrides, rounds)
        self.overrides, self.rounds = tuple(overrides), int(rounds)
        m = self.config["market"]
        for key in ("latency", "jitter", "loss"):
            if m[key]:
                raise ConfigError(f"market.{key}: got {m[key]!r}, expected 0 in the ad env's market engine (every "
                                  "learner of an auction must get its candidates at once)")
        sizes = {len(q.advertisers) for q in ad_queries()[: m["queries"]]}
        if len(sizes) != 1:
            raise ConfigError(f"market.queries: got {m['queries']}, whose queries have {sorted(sizes)} advertisers; "
                              "expected the same number on every query (a slot is brand k of every query)")
        self.horizon = len(asked(self.config))
        self.slots, self.learners, self.index = learner_slots(learners, sizes.pop())
        k = len(self.learners)
        self.obs = np.zeros((k, AD_OBS_DIM), dtype=np.float32)
        self.rewards = np.zeros(k)
        self._gained = np.zeros(k)
        self.last_reward, self.last_payment = np.zeros(k), np.zeros(k)
        self._world = WorldThread("ad-market-env")
        self.summary: dict[str, Any] | None = None

    # -- the env's side -----------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        from agents.advertisers import Advertiser
        from market.runtime.world import World

        self.close()
        config, market = resolve("ads", [*self.overrides, f"run.rounds={self.rounds}", f"run.seed={int(seed)}"])
        world = World(config, int(seed), None, fail_fast=True)  # an aborted run stops at once
        market.build(world, config)
        platform = next(a for a in world.agents if a.id == world.auctioneer_id)
        self._tap = _Tap(platform.mechanism)
        platform.mechanism = self._tap
        world.metrics.append(self)  # the engine watches the platform's candidates and closed rounds
        self._agents: dict[tuple[int, int], Any] = {}
        handoffs = [_Handoff(self, j) for j in range(len(self.learners))]
        slot_of = {int(i): j for j, i in enumerate(self.index)}
        for agent in world.agents:
            if isinstance(agent, Advertiser) and agent.brand in slot_of:
                agent.strategy = handoffs[slot_of[agent.brand]]
                self._agents[agent.query_id, slot_of[agent.brand]] = agent
        self._candidates: dict[int, tuple[int, tuple[Any, ...]]] = {}
        self._auction = -1  # the platform round last handed to the env
        self._closed = 0  # auctions closed so far
        self._true = np.zeros((len(self.learners), int(config["market"]["candidates"])))
        self._factors = np.ones(len(self.learners))
        self.last_reward[:] = 0.0
        self.last_payment[:] = 0.0
        self._gained[:] = 0.0
        self.summary = None
        kind, payload = self._world.start(world)
        if kind != "obs":
            raise RuntimeError(f"ad market engine: the run ended before any learner was asked to report ({payload!r})")
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        kind, payload = self._world.resume(actions)
        self.rewards[:] = self._gained
        self._gained[:] = 0.0
        if kind == "obs":
            return self.obs, self.rewards, False
        if isinstance(payload, BaseException):
            raise RuntimeError(f"ad market engine: the run failed: {type(payload).__name__}: {payload}") from payload
        if self._closed != self.horizon:
            raise RuntimeError(f"ad market engine: the run closed {self._closed} auctions, expected {self.horizon}")
        self.summary = payload
        for j in range(len(self.learners)):
            ad_observation(np.zeros(1), self.horizon, self.horizon, self.last_reward[j], self.last_payment[j],
                           self.obs[j])
        return self.obs, self.rewards, True

    def close(self) -> None:
        """End a run still going on (its world stops at the next report) and wait for its thread."""
        self._world.close()

    # -- the world's side (its thread) --------------------------------------------------------------------------
    def _report(self, j: int, obs: AdObservation) -> np.ndarray:
        if obs.round != self._auction:  # the first learner asked in this auction: stop the world, ask the env
            if obs.round != self._closed:
                raise RuntimeError(f"ad market engine: {self.learners[j]} asked to report in round {obs.round}, "
                                   f"expected round {self._closed} (every auction closed before the next opens)")
            self._auction = obs.round
            query_id, replies = self._candidates.pop(obs.round)
            for k in range(len(self.learners)):
                true = obs.true_rewards if k == j else self._agents[query_id, k].rewards(replies)
                self._true[k] = true
                ad_observation(self._true[k], obs.round, self.horizon, self.last_reward[k], self.last_payment[k],
                               self.obs[k])
            actions = self._world.handoff()
            for k in range(len(self.learners)):
                self._factors[k] = action_to_factor(actions[k])
        if not np.array_equal(obs.true_rewards, self._true[j]):
            raise RuntimeError(f"ad market engine: {self.learners[j]}'s true rewards in round {obs.round} differ "
                               "from those its observation summarised")
        return self._factors[j] * self._true[j]

    # the world's metrics observer (called from ``World.record``)
    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent) and rec.kind == "candidates":
            msg: Any = rec.message()
            self._candidates[msg.round] = (msg.query_id, msg.replies)
        elif isinstance(rec, RoundClosed):
            out, reports = self._tap.outcome, self._tap.reports
            if rec.round != self._closed or out is None or reports is None:
                raise RuntimeError(f"ad market engine: round {rec.round} closed, expected round {self._closed}")
            true = reports.copy()  # the others report the truth; the learners' rows are their true rewards
            true[self.index] = self._true
            utilities = true @ out.q - out.payments  # as AdsEngine computes them
            shown = int(rec.extra["shown"])
            for j, i in enumerate(self.index):
                if rec.payments_minor[i] != to_minor(float(out.payments[i])):
                    raise RuntimeError(f"ad market engine: {self.learners[j]} settled {rec.payments_minor[i]} "
                                       f"micro-credits in round {rec.round}, the auction charged "
                                       f"{float(out.payments[i])!r} (a refused charge?)")
                self._gained[j] = float(utilities[i])
                self.last_reward[j], self.last_payment[j] = float(true[i, shown]), float(out.payments[i])
            self._tap.outcome = self._tap.reports = None
            self._closed += 1

    def result(self) -> dict[str, Any]:
        return {}


def make_ad_engine(kind: str, learners: Sequence[str], *, overrides: Sequence[str] = (),
                   rounds: int = 50) -> AdsEngine | AdsMarketEngine:
    """A ``fast`` (``AdsEngine``) or ``market`` (``AdsMarketEngine``) engine of the ad envs."""
    if kind not in AD_ENGINE_KINDS:
        raise ConfigError(f"engine: got {kind!r}, expected one of {AD_ENGINE_KINDS}")
    cls = AdsEngine if kind == "fast" else AdsMarketEngine
    return cls(tuple(learners), overrides=overrides, rounds=rounds)
