"""Two engines behind one interface for the market envs: ``reset(seed)`` then ``step(actions)`` round by round.

Some providers (the learners) bid with the env's actions, every other provider with its scenario strategy.
An action a in [-1, 1] becomes a bid through ``agents.policy.action_to_bid`` and an observation is
``agents.policy.observation`` (own cost, context, round / horizon, own last outcome and payment): the same
functions the ``policy`` strategy bids with, so a policy trained here bids alike through the bus. A learner's
reward is its profit in the round: payment - cost if it won, else 0.

- ``FastEngine``: the scenario's ``MarketInstance`` and mechanism in a plain loop, drawing what a run draws
  (``market.lab.deviation.FastMarket``: the same streams for costs, contexts, rewards and mechanism coins).
- ``MarketEngine``: the real runtime (bus, auctioneer, ledger; no files). The world runs in a thread of its own;
  the learners' strategies hand control back to the env when the first of them is asked to bid in a round,
  and the world waits, its virtual clock stopped, until the env's actions come back (the ABIDES-Gym pattern).

Same seed and same actions give the same rewards on both engines (to the micro-credit; tests check it). Both
need a market without link faults: every learner must get every call for bids at the same instant.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from agents.policy import OBS_EXTRA, action_to_bid, observation
from agents.strategies import BidFeedback, Observation, Strategy, Truthful
from market.core.mechanisms.base import BidRange
from market.core.mechanisms.priors import UniformCost
from market.core.mechanisms.rosa import ROSA, resample, winner_payment
from market.core.quality import LinearQuality
from market.runtime.config import ConfigError, resolve

ENGINE_KINDS = ("fast", "market")


class Engine(Protocol):
    """What the envs drive. obs: (learners, obs_dim) float32; rewards: (learners,) float64."""

    learners: tuple[str, ...]
    horizon: int
    dim: int
    floor: float
    cap: float
    action: str

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]: ...

    def close(self) -> None: ...


def _checked_market(scenario: str, overrides: Sequence[str], rounds: int, learners: Sequence[str]) -> tuple[Any, Any]:
    """The resolved config and market of an env, refused (naming the key) when an engine cannot drive it."""
    config, market = resolve(scenario, [*overrides, f"run.rounds={rounds}"])
    if market.instance is None:
        raise ConfigError(f"market env: scenario {config['scenario']['name']!r} ({market.name} market) has no "
                          "MarketInstance; expected a procurement market")
    m = config.get("market", {})
    for key in ("latency", "jitter", "loss"):
        if m.get(key):
            raise ConfigError(f"market.{key}: got {m[key]!r}, expected 0 (every learner must get every call for bids "
                              "at once)")
    if config.get("hostile", {}).get("agents"):
        raise ConfigError(f"hostile.agents: got {config['hostile']['agents']!r}, expected none in a market env")
    providers = market.instance(config, 0).providers
    if not learners or len(set(learners)) != len(learners) or any(p not in providers for p in learners):
        raise ConfigError(f"learners: got {list(learners)!r}, expected distinct providers among {list(providers)}")
    return config, market


def _spec(scenario: str, overrides: Sequence[str], rounds: int, learners: Sequence[str]) -> dict[str, Any]:
    config, market = _checked_market(scenario, overrides, rounds, learners)
    inst = market.instance(config, 0)
    mech = inst.mechanism.build()
    rng = BidRange.of(mech)
    if not np.isfinite(rng.cap):
        raise ConfigError(f"mechanism.name: {config['mechanism']['name']!r} takes bids up to {rng.cap}; the market env "
                          "needs a finite cost_cap (its actions span the bid range)")
    return {"providers": inst.providers, "dim": inst.dim, "floor": rng.floor, "cap": rng.cap,
            "resolved": (config, market)}


class FastEngine:
    """The scenario as a plain loop (``FastMarket``'s instance, mechanism, strategies and streams), learners bid
    the env's actions. The step reuses its arrays: one round costs the mechanism's select and update plus the
    other providers' strategies.

    When every other provider is truthful and the mechanism is ROSA around an allocation rule (the quickstart's
    ``rosa-*`` mechanisms), a round skips what cannot happen there: every bid is in the range by construction
    (learners' and truthful bids are clipped), so no bid is checked; the mechanism's coins of the whole run are
    drawn at reset in one block (``select`` runs every round and draws (2, n) uniforms each time, which NumPy
    fills in order from the same stream); and the round calls ROSA's own ``resample``, the rule's ``allocate``
    and ``update`` and ``winner_payment`` directly: the same functions on the same numbers as ``select`` and
    ``update``, without building an outcome. The config is resolved once, not at every reset.
    """

    def __init__(self, scenario: str, learners: Sequence[str] = ("provider-0",), *, overrides: Sequence[str] = (),
                 rounds: int = 400, action: str = "markup") -> None:
        spec = _spec(scenario, overrides, rounds, learners)
        self.scenario, self.overrides, self.horizon, self.action = scenario, tuple(overrides), int(rounds), action
        self.resolved = spec["resolved"]
        self.learners = tuple(learners)
        self.providers: tuple[str, ...] = spec["providers"]
        self.dim, self.floor, self.cap = spec["dim"], spec["floor"], spec["cap"]
        self.index = np.array([self.providers.index(p) for p in self.learners])
        self._learner_index = [int(i) for i in self.index]
        k, n = len(self.learners), len(self.providers)
        self.obs = np.zeros((k, self.dim + OBS_EXTRA), dtype=np.float32)
        self.blank = np.zeros(self.dim)  # the context of the observation after the last round
        self.rewards = np.zeros(k)
        self.won = np.zeros(k, dtype=bool)
        self.paid = np.zeros(k)
        self.costs, self.bids = np.zeros(n), np.zeros(n)
        self.present = np.ones(n, dtype=bool)
        self.others = [i for i in range(n) if i not in set(self.index.tolist())]
        self.market: Any = None
        self.others_truthful: bool | None = None  # known after the first reset
        self.t = 0

    def reset(self, seed: int) -> np.ndarray:
        from market.lab.deviation import FastMarket

        # which providers are truthful is the config's, not the seed's: once known to be all of the others, later
        # episodes build no strategy objects
        light = self.others_truthful is True
        self.market = m = FastMarket(self.scenario, self.overrides, int(seed), self.horizon, resolved=self.resolved,
                                     bidders=not light)
        self.t = 0
        self.won[:] = False
        self.paid[:] = 0.0
        # Truthful providers bid clip(cost) and learn nothing; a uniform prior's block of draws is its draws one by
        # one (NumPy fills it in order from the same stream). Such providers' costs and bids for the whole run are
        # drawn here at once, (horizon, n): a round then reads a row.
        n = len(self.providers)
        truthful = list(self.others) if light else [i for i in self.others if type(m.bidders[i].strategy) is Truthful]
        self.strategic = [i for i in self.others if i not in truthful]
        self.others_truthful = not self.strategic
        block = [type(p) is UniformCost for p in m.instance.priors]
        self.cost_rows = np.zeros((self.horizon, n))
        for i, prior in enumerate(m.instance.priors):
            if block[i]:
                self.cost_rows[:, i] = prior.sample(m.rngs[i], self.horizon)
        self.drawn = [i for i in range(n) if not block[i]]
        self.bid_rows = np.zeros((self.horizon, n))
        if not self.drawn:
            self.bid_rows[:, truthful] = np.clip(self.cost_rows[:, truthful], self.floor, self.cap)
        self.truthful = truthful
        # ROSA with only learners and truthful providers: every round has a select, so its coins come in one block
        self.rosa = type(m.mechanism) is ROSA and not self.strategic
        if self.rosa:
            self.coin_rows = m.mech_rng.random((self.horizon, 2, n))
            self.resampling = (self.coin_rows[:, 0, :] < m.mechanism.mu).any(axis=1).tolist()
        quality = m.instance.quality
        gaussian = type(quality) is LinearQuality and quality.noise == "gaussian"
        self.gaussian = quality.theta if gaussian else None
        self.noise_scale = float(quality.scale) if gaussian else 0.0
        self._draw()
        return self.obs

    def _draw(self) -> None:
        """Context, costs and the other providers' bids of round ``t``; the learners' observations."""
        m, t = self.market, self.t
        x = m.instance.contexts(m.user_rng)
        self.x = x
        self.costs = costs = self.cost_rows[t]
        for i in self.drawn:
            costs[i] = float(m.instance.priors[i].sample(m.rngs[i], 1)[0])
        self.bids = self.bid_rows[t]  # a view: the round writes its learners' bids into the run's block
        if self.drawn:
            for i in self.truthful:
                self.bids[i] = min(max(costs[i], self.floor), self.cap)
        for i in self.strategic:
            self.bids[i] = m.bidders[i].bid(costs[i], x, t, m.rngs[i])
        for j, i in enumerate(self._learner_index):
            observation(costs.item(i), x, t, self.horizon, self.won[j], self.paid[j], self.obs[j])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        m, t = self.market, self.t
        if m is None or t >= self.horizon:
            raise RuntimeError(f"step: the episode is over (round {t} of {self.horizon}); call reset first")
        a = np.asarray(actions, dtype=float).reshape(-1)
        bids, costs, rewards = self.bids, self.costs, self.rewards
        for j, i in enumerate(self._learner_index):
            bids[i] = action_to_bid(a.item(j), costs.item(i), self.floor, self.cap, self.action)
            rewards[j] = 0.0
        if self.rosa:
            winner, pay = self._rosa_round(t)
        else:
            winner, pay = self._round(t)
        for j, i in enumerate(self._learner_index):
            won = i == winner
            self.won[j] = won
            self.paid[j] = pay if won else 0.0
            if won:
                rewards[j] = pay - costs.item(i)
        self.t += 1
        done = self.t >= self.horizon
        if done:
            for j in range(len(self.learners)):
                observation(self.floor, self.blank, self.t, self.horizon, self.won[j], self.paid[j], self.obs[j])
        else:
            self._draw()
        return self.obs, self.rewards, done

    def _round(self, t: int) -> tuple[int | None, float]:
        """Any mechanism, any strategies: ``select``, the strategic providers learn, ``update``; (winner, pay)."""
        m, x = self.market, self.x
        # learners' bids and truthful ones are clipped into the range: only other strategies' may be refused
        present = m.bid_range.accepted(self.bids) if self.strategic else None
        outcome = m.mechanism.select(x, self.bids, m.mech_rng, present) if present is None or present.any() else None
        winner = outcome.winner if outcome is not None else None
        for i in self.strategic:
            if present is not None and present[i]:
                pay = float(outcome.payments[i]) if i == winner else 0.0
                m.bidders[i].learn(BidFeedback(t, i == winner, pay, float(self.costs[i]), float(self.bids[i])))
        if winner is None:
            return None, 0.0
        reward = float(m.instance.quality.sample(winner, x, m.user_rng))
        m.mechanism.update(x, outcome, reward)
        return winner, float(outcome.payments[winner])

    def _rosa_round(self, t: int) -> tuple[int | None, float]:
        """ROSA with learners and truthful providers only: ``select`` and ``update`` on the block's coins."""
        m, x, bids = self.market, self.x, self.bids
        mech = m.mechanism
        if self.resampling[t]:
            resampled, modified = resample(bids, mech.mu, mech.cost_cap, self.coin_rows[t])
        else:
            resampled, modified = bids, None
        winner = mech.rule.allocate(x, resampled, None)
        if winner is None:
            return None, 0.0
        kept = modified is None or not modified.item(winner)
        pay = winner_payment(bids.item(winner), not kept, mech.mu, mech.cost_cap)
        if self.gaussian is not None:  # LinearQuality.sample's arithmetic on Python floats, the same draw
            reward = float(self.gaussian[winner] @ x) + self.noise_scale * m.user_rng.standard_normal()
        else:
            reward = float(m.instance.quality.sample(winner, x, m.user_rng))
        mech.rule.update(x, winner, resampled, reward)
        return winner, pay

    def close(self) -> None:
        self.market = None


class _Abort(Exception):
    """Raised inside the world's thread to end a run the env no longer wants (reset before the end, close)."""


class WorldThread:
    """A world run in a thread that stops whenever its learners must act (the ABIDES-Gym pattern).

    The env's side calls ``start(world)`` and ``resume(actions)``, each returning ``("obs", None)`` when the
    world waits for the next actions or ``("end", summary or exception)`` when its run is over; the world's side
    calls ``handoff()`` from a learner's strategy, which hands the env its turn and returns the actions.
    ``close`` ends a run still going on: its world stops at its next handoff."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.thread: threading.Thread | None = None
        self._to_env: queue.SimpleQueue = queue.SimpleQueue()
        self._to_world: queue.SimpleQueue = queue.SimpleQueue()

    @property
    def running(self) -> bool:
        return self.thread is not None

    def start(self, world: Any) -> tuple[str, Any]:
        self.close()
        self._to_env, self._to_world = queue.SimpleQueue(), queue.SimpleQueue()  # nothing of an old run left
        self.thread = threading.Thread(target=self._run, args=(world,), name=self.name, daemon=True)
        self.thread.start()
        return self._turn()

    def resume(self, actions: np.ndarray) -> tuple[str, Any]:
        if self.thread is None:
            raise RuntimeError("step: no run is going on; call reset first")
        self._to_world.put(np.asarray(actions, dtype=float).reshape(-1).copy())
        return self._turn()

    def _turn(self) -> tuple[str, Any]:
        kind, payload = self._to_env.get()
        if kind == "end" and self.thread is not None:
            self.thread.join()
            self.thread = None
        return kind, payload

    def close(self) -> None:
        if self.thread is not None:
            self._to_world.put(None)
            while self._to_env.get()[0] != "end":
                self._to_world.put(None)
            self.thread.join()
            self.thread = None

    # -- the world's side (its thread) ------------------------------------------------------
    def handoff(self) -> np.ndarray:
        self._to_env.put(("obs", None))
        actions = self._to_world.get()
        if actions is None:
            raise _Abort("the env ended this run")
        return actions

    def _run(self, world: Any) -> None:
        try:
            result: Any = world.run()
        except BaseException as exc:  # handed to the env, which raises it there (or drops an aborted run)
            result = exc
        self._to_env.put(("end", result))


class _Handoff(Strategy):
    """A learner's strategy in the market engine: asks the engine for its bid, keeps its round's profit."""

    name = "env"

    def __init__(self, engine: MarketEngine, j: int) -> None:
        super().__init__()
        self.engine, self.j = engine, j

    def bid(self, obs: Observation) -> float:
        return self.engine._bid(self.j, obs)

    def learn(self, feedback: BidFeedback) -> None:
        self.engine._learn(self.j, feedback)


class MarketEngine:
    """The scenario through the real runtime, in a thread; the learners' bids come from ``step``.

    In each round the first learner asked to bid stops the world: it reads the other learners' costs from copies
    of their generators (each provider draws its cost from its own stream just before it bids: the copy gives
    the draw it is about to make, and its bid checks it), hands every learner's observation to the env and waits
    for the actions. Rewards of a round are in once the next round's first bid is asked (or the run is over).
    """

    def __init__(self, scenario: str, learners: Sequence[str] = ("provider-0",), *, overrides: Sequence[str] = (),
                 rounds: int = 400, action: str = "markup") -> None:
        spec = _spec(scenario, overrides, rounds, learners)
        self.scenario, self.overrides, self.horizon, self.action = scenario, tuple(overrides), int(rounds), action
        self.learners = tuple(learners)
        self.dim, self.floor, self.cap = spec["dim"], spec["floor"], spec["cap"]
        k = len(self.learners)
        self.obs = np.zeros((k, self.dim + OBS_EXTRA), dtype=np.float32)
        self.blank = np.zeros(self.dim)  # the context of the observation after the last round
        self.rewards = np.zeros(k)
        self._world = WorldThread("market-env")
        self.summary: dict[str, Any] | None = None

    # -- the env's side ---------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        from market.runtime.world import World

        self.close()
        config, market = _checked_market(self.scenario, [*self.overrides, f"run.seed={int(seed)}"], self.horizon,
                                         self.learners)
        world = World(config, int(seed), None, fail_fast=True)  # an aborted run stops at once
        market.build(world, config)
        agents = {a.id: a for a in world.agents}
        self._providers = [agents[p] for p in self.learners]
        for j, provider in enumerate(self._providers):
            provider.strategy = _Handoff(self, j)
        self._round = -1
        self._costs = np.zeros(len(self.learners))
        self._bids = np.zeros(len(self.learners))
        self._won = np.zeros(len(self.learners), dtype=bool)
        self._paid = np.zeros(len(self.learners))
        self._gained = np.zeros(len(self.learners))
        self.summary = None
        kind, _ = self._world.start(world)
        if kind != "obs":
            raise RuntimeError("market engine: the run ended before any learner was asked to bid")
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        kind, payload = self._world.resume(actions)
        self.rewards[:] = self._gained
        self._gained[:] = 0.0
        if kind == "obs":
            return self.obs, self.rewards, False
        if isinstance(payload, BaseException):
            raise RuntimeError(f"market engine: the run failed: {type(payload).__name__}: {payload}") from payload
        self.summary = payload
        for j in range(len(self.learners)):
            observation(self.floor, self.blank, self.horizon, self.horizon, self._won[j], self._paid[j], self.obs[j])
        return self.obs, self.rewards, True

    def close(self) -> None:
        """End a run still going on (its world stops at the next bid) and wait for its thread."""
        self._world.close()

    # -- the world's side (its thread) --------------------------------------------------------
    def _bid(self, j: int, obs: Observation) -> float:
        if obs.round != self._round:  # the first learner asked in this round: stop the world, ask the env
            self._round = obs.round
            context = np.asarray(obs.context, dtype=float)
            for k, provider in enumerate(self._providers):
                self._costs[k] = obs.cost if k == j else float(provider.prior.sample(copy.deepcopy(provider.rng), 1)[0])
                observation(self._costs[k], context, obs.round, self.horizon, self._won[k], self._paid[k], self.obs[k])
            actions = self._world.handoff()
            for k in range(len(self.learners)):
                self._bids[k] = action_to_bid(actions[k], self._costs[k], self.floor, self.cap, self.action)
        if obs.cost != self._costs[j]:
            raise RuntimeError(f"market engine: {self.learners[j]} drew cost {obs.cost!r} in round {obs.round}, its "
                               f"observation said {self._costs[j]!r}")
        return float(self._bids[j])

    def _learn(self, j: int, feedback: BidFeedback) -> None:
        self._won[j], self._paid[j] = feedback.won, feedback.payment
        self._gained[j] += feedback.profit


def make_engine(kind: str, scenario: str, learners: Sequence[str] = ("provider-0",), *,
                overrides: Sequence[str] = (), rounds: int = 400, action: str = "markup") -> Engine:
    """A ``fast`` or ``market`` engine (``ENGINE_KINDS``)."""
    if kind not in ENGINE_KINDS:
        raise ConfigError(f"engine: got {kind!r}, expected one of {ENGINE_KINDS}")
    cls = FastEngine if kind == "fast" else MarketEngine
    return cls(scenario, learners, overrides=overrides, rounds=rounds, action=action)


def policy_gains(act: Any, scenario: str, seeds: Sequence[int], *, deviator: str = "provider-0",
                 overrides: Sequence[str] = (), rounds: int = 400, engine: str = "fast",
                 action: str = "markup") -> np.ndarray:
    """(seeds,) the deviator's per-round gain when it acts with ``act(obs) -> a`` (e.g. ``NumpyPolicy.act``) over
    its truthful twin (a = 0 every round: bid = cost), run by run on ``seeds``: what ``deviate`` measures."""
    env = make_engine(engine, scenario, (deviator,), overrides=overrides, rounds=rounds, action=action)
    zero = np.zeros(1)
    gains = []
    try:
        for seed in seeds:
            totals = []
            for policy in (act, None):
                obs, total, done = env.reset(int(seed)), 0.0, False
                while not done:
                    a = zero if policy is None else np.array([policy(obs[0])])
                    obs, rewards, done = env.step(a)
                    total += float(rewards[0])
                totals.append(total)
            gains.append((totals[0] - totals[1]) / rounds)
    finally:
        env.close()
    return np.array(gains)
