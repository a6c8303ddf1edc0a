"""The two markets where users choose models themselves, with their metrics from log records.

``POSTED`` (multi-llm): a user buys several answers per query at posted prices with C2MAB-V
(Dai et al., arXiv 2405.16587) or a baseline, on the FrugalGPT SciQ or RouteLLM GSM8K replay.
``FINETUNE`` (finetune): a user chooses between an API model and models being fine-tuned with
TI-UCB (Xia et al., WWW 2024) or a baseline, on Pythia checkpoint curves or synthetic rising curves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from agents.finetuned import CurveModel
from agents.posted import PostedPriceProvider
from agents.selectors import FINE_TUNING_COST, POSTED_PRICE, ModelChooser, SubsetBuyer, net_reward
from market.core.learning import LearningError
from market.core.learning.environments import (
    PYTHIA_DEFAULT_MODELS,
    SCIQ_DEFAULT_EXCLUDE,
    BernoulliCostArms,
    JointCorrectnessReplay,
    PiecewiseLinearArms,
    PythiaCurveArms,
    SaturatingArms,
    pythia_curves,
)
from market.core.learning.reward_models import REWARD_MODELS, realised_reward
from market.core.learning.selectors import SELECTORS, build_selector
from market.core.learning.subset_oracle import candidate_subsets, mixture_optimum
from market.core.ledger import to_minor, to_units
from market.core.seeding import derive_rng
from market.data import frugalgpt_sciq, pythia_checkpoints, routellm_gsm8k, routellm_gsm8k_prices
from market.runtime.bus import star_graph
from market.runtime.config import ConfigError, require
from market.runtime.records import LedgerTransfer, MessageDropped, MessageSent, Record
from market.runtime.scenario import Factories, Scenario
from market.runtime.schema import CREDITS, DELAY, DURATION, MAX_SCALE, PROBABILITY, Choice, Int, Items, Real, Rule
from market.runtime.world import World

DEFAULTS: dict[str, Any] = {
    "run": {"seed": 0, "rounds": 2000},
    "market": {
        "interarrival": 1.0,
        "answer_timeout": 5.0,  # an answer not in by then counts as incorrect, at zero cost
        "price_unit": 1.0,  # credits billed for a call of normalised cost 1
        "user_budget": 1.0e6,
        "latency": 0.0,
        "jitter": 0.0,
        "loss": 0.0,
    },
    "selector": {
        "name": "c2mabv",
        "reward_model": "awc",  # posted market: awc | suc | aic
        "max_arms": 2,  # N: at most N answers bought per query (AIC: exactly N)
        "budget": 0.05,  # rho: long-term mean normalised cost per query
        "window": 50,  # TI-UCB w (SW-UCB: its window, CD-UCB: its test window)
        "gamma": 0.1,  # TI-UCB detection threshold
        "params": {},  # any further keyword of the learner (alpha, epsilon, penalty, ...)
    },
    "posted": {
        "data": "sciq",  # sciq: FrugalGPT accuracies and $/query; gsm8k: RouteLLM joint correctness
        "exclude": list(SCIQ_DEFAULT_EXCLUDE),
        "cost_spread": 0.0,  # sciq: bill = c (1 + s (2U - 1)), U ~ U[0, 1]
    },
    "finetune": {
        "curves": "pythia",  # pythia | piecewise_linear | saturating
        "models": list(PYTHIA_DEFAULT_MODELS),
        "steps_per_pull": [400.0, 200.0, 100.0, 50.0, 25.0],  # pythia: training steps per use
        "api_quality": 0.8,
        "api_price": 0.2,  # normalised, per call
        "finetune_cost": 0.05,  # normalised, per use (one fine-tuning step)
        "noise": 0.05,  # score noise sd
        "cost_weight": 1.0,  # reward = score - cost_weight * normalised cost
    },
}

USER = "user"
API = "api"
SUBSET_SELECTORS = ("c2mabv", "cucb", "epsilon_greedy", "thompson")
PULL_SELECTORS = ("tiucb", "ucb1", "sw_ucb", "cd_ucb")
POSTED_DATA = ("sciq", "gsm8k")
CURVES = ("pythia", "piecewise_linear", "saturating")
# The learner's keywords make_learner fills in itself; the others may come from selector.params.
SUPPLIED_PARAMS = frozenset({"n_arms"})

# Each key's range, shared by the two markets (market/runtime/schema.py; run.seed and run.rounds are common).
# Keys one market does not read are still checked: a config is refused or taken whole.
SCHEMA: dict[str, Rule] = {
    "market.interarrival": DURATION,
    "market.answer_timeout": DURATION,
    "market.price_unit": Real(0.0, MAX_SCALE, lo_open=True),
    "market.user_budget": CREDITS,
    "market.latency": DELAY,
    "market.jitter": DELAY,
    "market.loss": PROBABILITY,
    "selector.reward_model": Choice(*REWARD_MODELS),
    "selector.max_arms": Int(1, 64),  # and at most the number of models: checked with the data
    "selector.budget": Real(0.0, MAX_SCALE),
    "selector.window": Int(2, 1_000_000),
    "selector.gamma": Real(0.0, MAX_SCALE),
    "posted.data": Choice(*POSTED_DATA),
    "posted.exclude": Items(Rule("str"), 64),
    "posted.cost_spread": Real(0.0, 1.0),
    "finetune.curves": Choice(*CURVES),
    "finetune.models": Items(Rule("str"), 64),
    "finetune.steps_per_pull": Items(Real(0.0, MAX_SCALE, lo_open=True), 64),
    "finetune.api_quality": Real(0.0, 1.0),
    "finetune.api_price": Real(0.0, MAX_SCALE),
    "finetune.finetune_cost": Real(0.0, MAX_SCALE),
    "finetune.noise": Real(0.0, MAX_SCALE),
    "finetune.cost_weight": Real(0.0, MAX_SCALE),
}


# ---------------------------------------------------------------- the hidden truth


@dataclass(frozen=True, slots=True)
class PostedInstance:
    """Providers (K), each one's answer(query_id, rng) -> (correct, normalised cost), how questions are
    drawn, and the truth the meters need: expected reward of subsets, mean costs, optima."""

    providers: tuple[str, ...]
    answers: tuple[Callable[[int, np.random.Generator], tuple[bool, float]], ...]
    questions: int
    env: Any  # BernoulliCostArms or JointCorrectnessReplay: subset_rewards(masks, model), mean_cost
    masks: np.ndarray  # (m, K) the benchmark's candidate subsets
    rewards: np.ndarray  # (m,) their expected rewards
    integer_optimum: float
    fractional_optimum: float


def _independent_answer(env: BernoulliCostArms, arm: int):
    def answer(query_id: int, rng: np.random.Generator) -> tuple[bool, float]:
        x, y = env.draw(np.array([arm]), rng)
        return bool(x[0]), float(y[0])
    return answer


def _replayed_answer(env: JointCorrectnessReplay, arm: int):
    def answer(query_id: int, rng: np.random.Generator) -> tuple[bool, float]:
        return bool(env.correct[query_id, arm]), float(env.cost[query_id, arm])
    return answer


def posted_instance(config: dict[str, Any]) -> PostedInstance:
    p, s = config["posted"], config["selector"]
    if p["data"] == "sciq":
        sciq = frugalgpt_sciq()
        names = {r["model"] for r in sciq}
        require(set(p["exclude"]) <= names, "posted.exclude", p["exclude"], f"models among {sorted(names)}")
        env = BernoulliCostArms.from_frugalgpt_sciq(sciq, tuple(p["exclude"]), p["cost_spread"])
        require(env.n_arms >= 1, "posted.exclude", p["exclude"], "at least one model left")
        answers = tuple(_independent_answer(env, i) for i in range(env.n_arms))
        questions = int(sciq[0]["test_size"])
    else:
        env = JointCorrectnessReplay(routellm_gsm8k(), routellm_gsm8k_prices())
        answers = tuple(_replayed_answer(env, i) for i in range(env.n_arms))
        questions = env.n_questions
    require(1 <= s["max_arms"] <= env.n_arms, "selector.max_arms", s["max_arms"], f"N in [1, {env.n_arms}]")
    masks = candidate_subsets(env.n_arms, s["max_arms"], s["reward_model"])
    rewards = env.subset_rewards(masks, s["reward_model"])
    costs = masks.astype(float) @ env.mean_cost
    ok = costs <= s["budget"] + 1e-12
    integer = float(rewards[ok].max()) if ok.any() else float("nan")
    fractional = mixture_optimum(masks, rewards, costs, s["budget"]).value
    return PostedInstance(tuple(env.names), answers, questions, env, masks, rewards, integer, fractional)


@dataclass(frozen=True, slots=True)
class FinetuneInstance:
    """Models (K): the API model first, then the fine-tuned ones; curve(arm, n) expected score of the
    n-th answer; costs (K,) normalised per call; best: the largest limiting net reward."""

    providers: tuple[str, ...]
    curves: tuple[Callable[[int], float], ...]
    costs: np.ndarray
    limits: np.ndarray  # (K,) limiting net reward of each model
    best: int


def _curve_of(env: Any, arm: int) -> Callable[[int], float]:
    return lambda n: float(env.curve(arm, np.array([float(n)]))[0])


def finetune_instance(config: dict[str, Any]) -> FinetuneInstance:
    f = config["finetune"]
    if f["curves"] == "pythia":
        require(len(f["steps_per_pull"]) == len(f["models"]), "finetune.steps_per_pull", f["steps_per_pull"],
                f"one value per model ({len(f['models'])})")
        try:
            curves = pythia_curves(pythia_checkpoints(), tuple(f["models"]))
            env = PythiaCurveArms(curves, steps_per_pull=np.asarray(f["steps_per_pull"], dtype=float))
        except LearningError as err:
            raise ConfigError(f"finetune.models/steps_per_pull: {err}") from None
        names = tuple(env.names)
    else:
        env = PiecewiseLinearArms.trap() if f["curves"] == "piecewise_linear" else SaturatingArms.default()
        names = tuple(f"{f['curves']}-{i}" for i in range(env.n_arms))
    curves = (lambda n: f["api_quality"],) + tuple(_curve_of(env, i) for i in range(env.n_arms))
    costs = np.array([f["api_price"]] + [f["finetune_cost"]] * env.n_arms)
    limits = np.concatenate([[f["api_quality"]], env.limits]) - f["cost_weight"] * costs
    return FinetuneInstance((API, *names), curves, costs, limits, int(np.argmax(limits)))


# ---------------------------------------------------------------- learners


def make_learner(config: dict[str, Any], n_arms: int, market: str) -> Any:
    """The learner named by selector.name for ``market`` ("posted" or "finetune") with the scenario's N, rho,
    reward model, w and gamma."""
    s = config["selector"]
    name = s["name"]
    if market == "posted":
        require(name in SUBSET_SELECTORS, "selector.name", name, f"one of {list(SUBSET_SELECTORS)}")
        params = {"n_arms": n_arms, "max_arms": s["max_arms"], "reward_model": s["reward_model"]}
        if name == "c2mabv":
            params["budget"] = s["budget"]
    else:
        require(name in PULL_SELECTORS, "selector.name", name, f"one of {list(PULL_SELECTORS)}")
        params = {"n_arms": n_arms}
        if name == "tiucb":
            params.update(window=s["window"], gamma=s["gamma"])
        elif name == "sw_ucb":
            params["horizon_window"] = s["window"]
        elif name == "cd_ucb":
            params["window"] = s["window"]
    params.update(s["params"])
    try:
        return build_selector(name, **params)
    except LearningError as err:
        raise ConfigError(f"selector: {err}") from None


# ---------------------------------------------------------------- meters (from log records)


class SubsetMeter:
    """C2MAB-V metrics from the records: the subset asked each round (answer requests), what the user
    paid (transfers), the answers it paid for. Regret R(T) = T r* - sum r(S_t; mu) against the integer
    and the fractional optimum (rounds with no request earn 0); violation V(T) = max(sum C_t - rho T, 0)
    on the paid normalised costs, and on the expected costs of the asked subsets."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.inst = posted_instance(config)
        self.index = {p: i for i, p in enumerate(self.inst.providers)}
        self.rounds = config["run"]["rounds"]
        self.model = config["selector"]["reward_model"]
        self.budget = config["selector"]["budget"]
        self.price_unit = config["market"]["price_unit"]
        self._reward_of = {tuple(np.flatnonzero(m)): float(r) for m, r in zip(self.inst.masks, self.inst.rewards)}
        self._round = -1
        self._asked: list[int] = []
        self._answers: dict[str, bool] = {}
        self._paid: list[bool] = []
        self.expected_reward = 0.0
        self.expected_cost = 0.0
        self.realised_reward = 0.0
        self.paid_cost = 0.0
        self.requests: Counter = Counter()
        self.sizes: Counter = Counter()

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent):
            if rec.src == USER and rec.kind == "answer_request" and rec.dst in self.index:
                r = rec.message().round
                if r != self._round:
                    self._close()
                    self._round = r
                self._asked.append(self.index[rec.dst])
                self.requests[rec.dst] += 1
            elif rec.dst == USER and rec.kind == "posted_answer" and rec.src in self.index:
                msg = rec.message()
                if msg.round == self._round:
                    self._answers[rec.src] = msg.correct
        elif isinstance(rec, LedgerTransfer) and rec.src == USER and rec.memo == POSTED_PRICE \
                and rec.dst in self._answers:
            self.paid_cost += to_units(rec.amount_minor) / self.price_unit
            self._paid.append(self._answers.pop(rec.dst))

    def _close(self) -> None:
        if self._round < 0:
            return
        arms = tuple(sorted(self._asked))
        self.expected_reward += self._reward_of.get(arms, 0.0) if arms else 0.0
        self.expected_cost += float(self.inst.env.mean_cost[list(arms)].sum())
        # answers not paid for never reached the user: they count as incorrect
        x = np.array(self._paid + [False] * (len(arms) - len(self._paid)), dtype=float)
        self.realised_reward += realised_reward(x, self.model) if arms else 0.0
        self.sizes[len(arms)] += 1
        self._asked, self._answers, self._paid = [], {}, []

    def result(self) -> dict[str, Any]:
        self._close()  # the run is over: its last round is complete
        self._round = -1
        t = self.rounds
        out = {
            "rounds": t,
            "optimum_integer": self.inst.integer_optimum,
            "optimum_fractional": self.inst.fractional_optimum,
            "regret_integer": t * self.inst.integer_optimum - self.expected_reward,
            "regret_fractional": t * self.inst.fractional_optimum - self.expected_reward,
            "violation": max(self.paid_cost - self.budget * t, 0.0),
            "violation_expected": max(self.expected_cost - self.budget * t, 0.0),
            "mean_cost": self.paid_cost / t if t else 0.0,
            "accuracy": self.realised_reward / t if t else 0.0,
            "expected_reward": self.expected_reward / t if t else 0.0,
            "requests": dict(sorted(self.requests.items())),
            "empty_rounds": t - sum(v for k, v in self.sizes.items() if k > 0),
        }
        return out


class ChoiceMeter:
    """TI-UCB metrics from the records: each model's pull count (requests that were not dropped), the
    expected net reward of every pull, the rewards the user received; regret R(T) = T max_i limit_i -
    sum of expected net rewards. A shadow learner built from the config and the user's stream replays
    the received rewards: its detection points are reported, and every round in which it would have
    chosen another model than the market's user is counted (``disagreements``, 0 when all is well)."""

    def __init__(self, config: dict[str, Any], seed: int) -> None:
        self.inst = finetune_instance(config)
        self.index = {p: i for i, p in enumerate(self.inst.providers)}
        f = config["finetune"]
        self.cost_weight, self.price_unit = f["cost_weight"], config["market"]["price_unit"]
        self.rounds = config["run"]["rounds"]
        self.shadow = make_learner(config, len(self.inst.providers), "finetune")
        self.rng = derive_rng(seed, USER)
        self.pulls = np.zeros(len(self.inst.providers), dtype=np.int64)
        self.expected = 0.0
        self.received = 0.0
        self.disagreements = 0
        self._open: tuple[int, int, float] | None = None  # (round, arm, expected net reward)
        self._answer: Any = None
        self._reward = 0.0

    def _expected_net(self, arm: int, n: int) -> float:
        return self.inst.curves[arm](n) - self.cost_weight * self.inst.costs[arm]

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent) and rec.src == USER and rec.kind == "answer_request" \
                and rec.dst in self.index:
            self._close()
            arm = self.index[rec.dst]
            self.disagreements += int(self.shadow.select(self.rng)) != arm
            self.pulls[arm] += 1
            gain = self._expected_net(arm, int(self.pulls[arm]))
            self.expected += gain
            self._open = (rec.message().round, arm, gain)
        elif isinstance(rec, MessageDropped) and rec.src == USER and rec.kind == "answer_request" \
                and self._open is not None:
            _, arm, gain = self._open
            self.pulls[arm] -= 1  # the model never got the request: no fine-tuning step
            self.expected -= gain
        elif isinstance(rec, MessageSent) and rec.dst == USER and rec.kind == "scored_answer" \
                and self._open is not None:
            msg = rec.message()
            if msg.round == self._open[0] and self.index.get(rec.src) == self._open[1]:
                self._answer = msg
        elif isinstance(rec, LedgerTransfer) and rec.src == USER and self._answer is not None \
                and self._open is not None and self.index.get(rec.dst) == self._open[1]:
            self._reward = net_reward(self._answer.score, self._answer.cost, self.cost_weight, self.price_unit)
            self.received += self._reward
            self._answer = None

    def _close(self) -> None:
        if self._open is not None:
            self.shadow.update(self._open[1], self._reward)
        self._open, self._answer, self._reward = None, None, 0.0

    def result(self) -> dict[str, Any]:
        self._close()  # the run is over: its last round is complete
        t = self.rounds
        best = float(self.inst.limits[self.inst.best])
        detections = [[self.inst.providers[a], int(n), int(r)] for a, n, r in getattr(self.shadow, "detections", [])]
        return {
            "rounds": t,
            "best_model": self.inst.providers[self.inst.best],
            "best_limit": best,
            "regret": t * best - self.expected,
            "mean_reward": self.received / t if t else 0.0,
            "pulls": {p: int(n) for p, n in zip(self.inst.providers, self.pulls)},
            "detections": detections,
            "disagreements": self.disagreements,
        }


def observers(config: dict[str, Any], seed: int, *, market: str) -> list[Any]:
    """Metric observers of a run; replay rebuilds them from the logged config and seed."""
    return [ChoiceMeter(config, seed)] if market == "finetune" else [SubsetMeter(config)]


def metrics(summary: dict[str, Any], config: dict[str, Any], *, market: str) -> dict[str, float]:
    """Flat figures for sweeps: regret(s), violation(s) (posted), spend and reward per round."""
    m = summary["metrics"]
    spend = to_units(sum(summary["paid"].get(USER, {}).get(k, 0) for k in (POSTED_PRICE, FINE_TUNING_COST)))
    out = {"spend": spend}
    if market == "finetune":
        out.update(regret=m["regret"], mean_reward=m["mean_reward"], detections=float(len(m["detections"])),
                   best_share=m["pulls"][m["best_model"]] / m["rounds"] if m["rounds"] else 0.0)
        return out
    t = m["rounds"] or 1
    out.update({k: float(m[k]) for k in ("regret_integer", "regret_fractional", "violation", "violation_expected",
                                          "accuracy", "mean_cost")})
    out["violation_per_round"] = m["violation"] / t
    return out


def describe(summary: dict[str, Any], config: dict[str, Any], *, market: str) -> str:
    """The run as a table: regret, violation, spend and accuracy (posted); regret, pulls and detection
    points (fine-tuning)."""
    m, s = summary["metrics"], config["selector"]
    paid = summary["paid"].get(USER, {})
    received = summary["received"]
    rows = []
    if market == "posted":
        rows.append(f"{s['name']} on {config['posted']['data']}: {s['reward_model'].upper()}, N = {s['max_arms']}, "
                    f"rho = {s['budget']}, T = {m['rounds']}")
        w = max([len("provider")] + [len(p) for p in m["requests"]]) + 2
        rows.append(f"{'provider':<{w}}{'requests':>10}{'paid':>12}")
        for p in sorted(set(m["requests"]) | {p for p in received if p not in (USER, "external")}):
            paid_to = to_units(received.get(p, {}).get(POSTED_PRICE, 0))
            rows.append(f"{p:<{w}}{m['requests'].get(p, 0):>10}{paid_to:>12.4f}")
        rows.append("")
        rows.append(f"regret vs integer optimum    {m['regret_integer']:10.2f}   (r* = {m['optimum_integer']:.4f})")
        rows.append(f"regret vs fractional optimum {m['regret_fractional']:10.2f}"
                    f"   (r* = {m['optimum_fractional']:.4f})")
        rows.append(f"budget violation V(T)        {m['violation']:10.2f}"
                    f"   per round {m['violation'] / max(m['rounds'], 1):.5f}"
                    f"   (expected costs: {m['violation_expected']:.2f})")
        rows.append(f"mean normalised cost {m['mean_cost']:.4f} per query (rho {s['budget']}), "
                    f"accuracy {m['accuracy']:.4f}, empty rounds {m['empty_rounds']}")
        spend = to_units(paid.get(POSTED_PRICE, 0))
    else:
        rows.append(f"{s['name']} on {config['finetune']['curves']} curves, T = {m['rounds']}, "
                    f"best model {m['best_model']} (limit {m['best_limit']:.4f})")
        w = max([len("model")] + [len(p) for p in m["pulls"]]) + 2
        rows.append(f"{'model':<{w}}{'pulls':>8}{'paid':>12}  detections (pull@round)")
        for p, n in m["pulls"].items():
            fee = to_units(sum(received.get(p, {}).values()))
            dets = ", ".join(f"{d[1]}@{d[2]}" for d in m["detections"] if d[0] == p)
            rows.append(f"{p:<{w}}{n:>8}{fee:>12.4f}  {dets}")
        rows.append("")
        rows.append(f"regret vs best limit {m['regret']:.2f}, mean net reward {m['mean_reward']:.4f}, "
                    f"shadow-learner disagreements {m['disagreements']}")
        spend = to_units(paid.get(POSTED_PRICE, 0) + paid.get(FINE_TUNING_COST, 0))
    rows.append(f"user spend {spend:.4f} credits; market: {summary['messages']} messages, "
                f"{sum(summary['rejects'].values())} rejected, {summary['drops']} lost")
    return "\n".join(rows)


# ---------------------------------------------------------------- builders


def _links(world: World, config: dict[str, Any], providers: tuple[str, ...]) -> None:
    m = config["market"]
    if m["latency"] or m["jitter"] or m["loss"]:
        world.graph = star_graph(USER, providers, latency=m["latency"], jitter=m["jitter"], loss=m["loss"])
    world.drain_seconds = 2 * (m["latency"] + m["jitter"])


def build_posted(world: World, config: dict[str, Any]) -> None:
    """One SubsetBuyer and one PostedPriceProvider per replayed model."""
    inst = posted_instance(config)
    learner = make_learner(config, len(inst.providers), "posted")
    m = config["market"]
    world.ledger.open(USER, balance=to_minor(m["user_budget"]))
    for pid, answer in zip(inst.providers, inst.answers):
        world.ledger.open(pid)
        world.add(PostedPriceProvider(pid, answer, m["price_unit"]))
    n_questions = inst.questions
    world.add(SubsetBuyer(
        USER, config["run"]["rounds"], inst.providers, learner, world.wallet(USER),
        lambda rng: int(rng.integers(n_questions)), world.rng(f"{USER}/questions"),
        price_caps=[m["price_unit"]] * len(inst.providers), price_unit=m["price_unit"],
        interarrival=m["interarrival"], answer_timeout=m["answer_timeout"],
    ), principal=True)
    _links(world, config, inst.providers)


def build_finetune(world: World, config: dict[str, Any]) -> None:
    """One ModelChooser, the API model and one CurveModel per fine-tuned model."""
    inst = finetune_instance(config)
    learner = make_learner(config, len(inst.providers), "finetune")
    m, f = config["market"], config["finetune"]
    world.ledger.open(USER, balance=to_minor(m["user_budget"]))
    bills = inst.costs * m["price_unit"]
    for pid, curve, bill in zip(inst.providers, inst.curves, bills):
        world.ledger.open(pid)
        world.add(CurveModel(pid, curve, float(bill), f["noise"]))
    world.add(ModelChooser(
        USER, config["run"]["rounds"], inst.providers, learner, world.wallet(USER),
        lambda rng: int(rng.integers(2**31)), world.rng(f"{USER}/questions"),
        price_caps=bills.tolist(), price_unit=m["price_unit"], interarrival=m["interarrival"],
        answer_timeout=m["answer_timeout"], cost_weight=f["cost_weight"],
        memos=[POSTED_PRICE] + [FINE_TUNING_COST] * (len(inst.providers) - 1),
    ), principal=True)
    _links(world, config, inst.providers)


def _scenario(market: str, build: Callable[[World, dict[str, Any]], None]) -> Scenario:
    """The two markets share the config's shape and the figures' code; each has its own agents and meters, and
    its own learners (``selector.name``)."""
    names = SUBSET_SELECTORS if market == "posted" else PULL_SELECTORS
    return Scenario(
        market, DEFAULTS, build, describe=partial(describe, market=market), metrics=partial(metrics, market=market),
        observers=partial(observers, market=market), factories=(Factories("selector", SELECTORS, SUPPLIED_PARAMS),),
        schema={**SCHEMA, "selector.name": Choice(*names)},
    )


POSTED = _scenario("posted", build_posted)
FINETUNE = _scenario("finetune", build_finetune)
