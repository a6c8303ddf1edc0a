"""The ad market's fast engine for the ad envs and the ad search: MOSAIC on floor 1, auction by auction.

The auctions are ``deviation.play_ads``'s: the ads scenario's queries in its order, M candidates from the
scenario's proposal on the simulated LM, the mechanism's stream drawing the candidates and the shown reply. Every
advertiser keeps its own description (report factors and report policies do not write descriptions), so the
candidate sets, everyone's true rewards and the shown reply's coin do not depend on anyone's reports: a run's
auctions are drawn once per seed (``AdDraws``) and replayed for any profile of reports, which is what makes a
search or a learner's episode cheap. Same seed and the same reports give ``play_ads``'s figures bit for bit
(tests check it).

``AdsEngine`` drives the envs: some advertiser slots (``advertiser-k``: brand k of every query, as in
``play_ads``) learn, the others report the truth. A learner observes ``agents.ad_reportfuncs.ad_observation``
(its own rewards' summary on the candidates, round / horizon, last shown reward and payment) and acts with
a in [-1, 1]: it reports ``action_to_factor(a)`` x its true rewards. Its reward is the auction's interim utility
E_q[r_i] - p_i (true rewards), the utility the deviation experiment sums for advertisers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.ad_reportfuncs import AD_OBS_DIM, action_to_factor, ad_observation
from agents.ad_strategies import AdFeedback, Reporter
from market.core.mechanisms.aggregation import build_aggregation, sample_shown
from market.core.seeding import derive_rng
from market.runtime.config import ConfigError, resolve

AD_MECHANISMS = ("mosaic", "mosaic-rochet", "mosaic-nopay")


@dataclass(frozen=True, slots=True)
class AdDraws:
    """One seed's auctions, independent of reports. rewards: (R, n, M) true rewards; log_ref, log_gen: (R, M);
    tau: (R,) the platform's tau per auction; coins: (R,) the uniform each auction's shown reply is drawn with."""

    rewards: np.ndarray
    log_ref: np.ndarray
    log_gen: np.ndarray
    tau: np.ndarray
    coins: np.ndarray


class _Coin:
    """Hands ``sample_shown`` a recorded uniform in place of a generator (the same draw, replayed)."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


def learner_slots(learners: Sequence[str], n: int) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(the n advertiser slots ``advertiser-k``, the learners, their slot indices); refused unless the learners
    are distinct slots."""
    slots = tuple(f"advertiser-{i}" for i in range(n))
    if not learners or len(set(learners)) != len(learners) or any(a not in slots for a in learners):
        raise ConfigError(f"learners: got {list(learners)!r}, expected distinct advertisers among {list(slots)}")
    return slots, tuple(learners), np.array([slots.index(a) for a in learners])


def ad_config(overrides: Sequence[str], rounds: int) -> dict[str, Any]:
    """The ads scenario's config with ``overrides`` for runs of ``rounds`` rounds; refused (naming the key) when its
    mechanism is not a reward auction or its LM is a token-level one (the fast engine plays the simulated LMs)."""
    from scenarios.ads import token_level

    config = resolve("ads", [*overrides, f"run.rounds={rounds}"])[0]
    name = config["mechanism"]["name"]
    if name not in AD_MECHANISMS:
        raise ConfigError(f"mechanism.name: got {name!r}, expected one of {list(AD_MECHANISMS)} in the ad env "
                          "(MOSAIC's payment rules on reward reports)")
    if token_level(config):
        raise ConfigError(f"market.lm: got {config['market']['lm']!r}, expected a simulated LM (catalogue or ngram) "
                          "in the ad env's fast engine")
    return config


def draw_auctions(config: dict[str, Any], seed: int) -> AdDraws:
    """Seed ``seed``'s auctions as ``play_ads`` draws them (everyone keeping its description)."""
    from market.runtime.platform import description_refusal
    from scenarios.ads import asked, instances, proposals

    m = config["market"]
    insts = instances(config, seed)
    arms = proposals(config)
    draws = derive_rng(seed, "mechanism")
    pulls = []
    for inst in insts:
        own = tuple(d if description_refusal(d) is None else "" for d in inst.query.descriptions)
        pulls.append(inst.pulls(own))
    rewards, log_ref, log_gen, tau, coins = [], [], [], [], []
    for t, qid in enumerate(asked(config)):
        inst, context_aware = insts[qid], arms[t % len(arms)] == "context"
        replies = inst.sample_candidates(m["candidates"], draws, context_aware, pulls=pulls[qid])
        rewards.append(inst.rewards(replies))
        log_ref.append(inst.log_ref(replies))
        log_gen.append(inst.log_gen(replies, context_aware, pulls=pulls[qid]))
        tau.append(inst.tau)
        coins.append(draws.random())  # sample_shown's one draw
    return AdDraws(np.asarray(rewards), np.asarray(log_ref), np.asarray(log_gen), np.asarray(tau, dtype=float),
                   np.asarray(coins))


class AdsEngine:
    """The ad market's auctions of one config for the envs (``reset(seed)``, ``step(actions)``) and for playing a
    whole report strategy (``play``). Draws are cached per seed: a seed's auctions are drawn once."""

    def __init__(self, learners: Sequence[str] = ("advertiser-0",), *, overrides: Sequence[str] = (),
                 rounds: int = 50) -> None:
        if rounds < 1:
            raise ConfigError(f"rounds: got {rounds}, expected at least 1")
        self.config = ad_config(overrides, rounds)
        self.overrides, self.rounds = tuple(overrides), int(rounds)
        self.auction = build_aggregation(self.config["mechanism"]["name"], **self.config["mechanism"]["params"])
        from scenarios.ads import asked

        self.horizon = len(asked(self.config))
        self.slots, self.learners, self.index = learner_slots(learners, len(self.draws(0).rewards[0]))
        k = len(self.learners)
        self.obs = np.zeros((k, AD_OBS_DIM), dtype=np.float32)
        self.rewards = np.zeros(k)
        self.last_reward, self.last_payment = np.zeros(k), np.zeros(k)
        self.current: AdDraws | None = None
        self.t = 0

    _cache: dict[tuple[Any, ...], AdDraws] = {}

    def draws(self, seed: int) -> AdDraws:
        """Seed ``seed``'s auctions (drawn on first use, then kept for this config)."""
        key = (self.overrides, self.rounds, int(seed))
        found = AdsEngine._cache.get(key)
        if found is None:
            if len(AdsEngine._cache) >= 256:  # bounded: a long training run over many seeds keeps the last ones
                AdsEngine._cache.pop(next(iter(AdsEngine._cache)))
            found = AdsEngine._cache[key] = draw_auctions(self.config, int(seed))
        return found

    # -- the envs' side -----------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        self.current = self.draws(seed)
        self.t = 0
        self.last_reward[:] = 0.0
        self.last_payment[:] = 0.0
        self._observe()
        return self.obs

    def _observe(self) -> None:
        d, t = self.current, self.t
        assert d is not None
        for j, i in enumerate(self.index):
            r = d.rewards[t, i] if t < self.horizon else np.zeros(1)
            ad_observation(r, t, self.horizon, self.last_reward[j], self.last_payment[j], self.obs[j])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        d, t = self.current, self.t
        if d is None or t >= self.horizon:
            raise RuntimeError(f"step: the episode is over (auction {t} of {self.horizon}); call reset first")
        a = np.asarray(actions, dtype=float).reshape(-1)
        true = d.rewards[t]
        reports = true.copy()
        for j, i in enumerate(self.index):
            reports[i] = action_to_factor(a[j]) * true[i]
        out = self.auction(reports, d.log_ref[t], d.log_gen[t], tau=d.tau[t])
        shown = sample_shown(out.q, _Coin(float(d.coins[t])))
        utilities = true @ out.q - out.payments  # as play_ads sums them (the same products, bit for bit)
        for j, i in enumerate(self.index):
            self.rewards[j] = float(utilities[i])
            self.last_reward[j], self.last_payment[j] = float(true[i, shown]), float(out.payments[i])
        self.t += 1
        self._observe()
        return self.obs, self.rewards, self.t >= self.horizon

    def close(self) -> None:
        self.current = None

    # -- a whole strategy ---------------------------------------------------------------------------------------
    def play(self, strategy: Any, seed: int, slot: int = 0) -> tuple[float, int]:
        """(advertiser ``slot``'s total interim utility, auctions) of seed ``seed`` with that slot reporting through
        ``strategy`` (an ``AdStrategy``, driven by a ``Reporter`` with its generator as in ``play_ads``), the others
        truthful. The strategy must keep its description (``describe``), as the draws assume."""
        if strategy.describe("Brand", "a one-line description") != "a one-line description":
            raise ConfigError(f"strategy {getattr(strategy, 'name', strategy)!r}: writes its own description, which "
                              "moves the candidates; expected one that keeps it (or play it with deviation.play_ads)")
        d = self.draws(seed)
        reporter = Reporter(strategy)
        rng = derive_rng(int(seed), f"advertiser-{slot}")
        total = 0.0
        for t in range(self.horizon):
            true = d.rewards[t]
            reports = true.copy()
            reports[slot] = reporter.report(true[slot], t, rng)
            out = self.auction(reports, d.log_ref[t], d.log_gen[t], tau=d.tau[t])
            total += float((true @ out.q - out.payments)[slot])
            shown = sample_shown(out.q, _Coin(float(d.coins[t])))
            reporter.learn(AdFeedback(t, true[slot], reports[slot], float(true[slot, shown]),
                                      float(out.payments[slot])))
        return total, self.horizon
