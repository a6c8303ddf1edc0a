"""Builders of the procurement market: a user buys answers from LLM providers by reverse auction.

``quickstart`` is the built-in default: 1 user, 5 truthful providers with private per-query costs
and linear context-dependent quality, the Myerson-optimal auction with known qualities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.providers import Provider
from agents.strategies import build_strategy
from agents.users import ProcurementUser
from market.auctioneer import ReverseAuctioneer
from market.config import require
from market.ledger import to_minor
from market.mechanisms.priors import UniformCost
from market.mechanisms.reverse import build_mechanism
from market.quality import LinearQuality
from market.world import World

DEFAULTS: dict[str, Any] = {
    "run": {"seed": 0, "rounds": 1000},
    "market": {
        "providers": 5,
        "dim": 8,
        "interarrival": 1.0,
        "bid_window": 0.5,
        "feedback_timeout": 60.0,
        "user_budget": 1.0e6,
        "latency": 0.0,
        "jitter": 0.0,
        "loss": 0.0,
    },
    "quality": {"noise": "gaussian", "scale": 0.1, "value_scale": 2.0},
    "costs": {"c_lo": 0.0, "c_cap": 1.0},
    "mechanism": {"name": "myerson", "params": {}},
    "strategies": {"default": "truthful", "overrides": {}},
}


def instance(config: dict[str, Any], seed: int) -> tuple[np.ndarray, UniformCost]:
    """The market's hidden truth: qualities theta (n, d) with ||theta_i||_1 = value_scale, and the cost prior."""
    m = config["market"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E7A]))
    theta = rng.uniform(0.0, 1.0, (m["providers"], m["dim"]))
    theta *= config["quality"]["value_scale"] / theta.sum(axis=1, keepdims=True)
    c = config["costs"]
    return theta, UniformCost(c["c_lo"], c["c_cap"])


def make_mechanism(spec: dict[str, Any], theta: np.ndarray, prior: UniformCost, rounds: int) -> Any:
    """The mechanism named in the config. Myerson knows the qualities; learners get (n, d) and
    ROSA's mu defaults to T^-1/2, the rate that balances learning and resampling regret."""
    name, params = spec["name"], dict(spec["params"])
    n, d = theta.shape
    if name == "myerson":
        return build_mechanism(name, theta=theta, priors=prior, **params)
    if "rosa" in name:
        params.setdefault("mu", 1.0 / np.sqrt(max(rounds, 1)))
    return build_mechanism(name, n=n, d=d, priors=prior, **params)


def describe(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The run as a table: per provider wins, payments and utility; the user's spend and value."""
    received, paid = summary["received"], summary["paid"]
    rows = [f"{'provider':<14}{'wins':>7}{'payments':>12}{'costs':>12}{'utility':>12}"]
    providers = sorted(a for a in summary["balances"] if a.startswith("provider-"))
    for p in providers:
        pay = received.get(p, {}).get("payment", 0) / 1e6
        cost = paid.get(p, {}).get("serving cost", 0) / 1e6
        rows.append(f"{p:<14}{summary['wins'].get(p, 0):>7}{pay:>12.3f}{cost:>12.3f}{pay - cost:>12.3f}")
    spend = paid.get("user", {}).get("payment", 0) / 1e6
    value = summary["feedback"]["reward_sum"]
    rows.append("")
    rows.append(f"user: {summary['rounds']} queries, {summary['rounds'] - summary['unsold']} served, "
                f"spend {spend:.3f}, value {value:.3f}, utility {value - spend:.3f}")
    rejects = sum(summary["rejects"].values())
    rows.append(f"market: mechanism {config['mechanism']['name']}, {summary['messages']} messages, "
                f"{rejects} rejected, {summary['drops']} lost")
    return "\n".join(rows)


def build(world: World, config: dict[str, Any]) -> None:
    m = config["market"]
    require(m["providers"] >= 1, "market.providers", m["providers"], "at least 1")
    require(m["dim"] >= 1, "market.dim", m["dim"], "at least 1")
    require(config["run"]["rounds"] >= 0, "run.rounds", config["run"]["rounds"], "at least 0")
    require(m["interarrival"] > 0, "market.interarrival", m["interarrival"], "> 0")
    require(m["bid_window"] > 0, "market.bid_window", m["bid_window"], "> 0")
    theta, prior = instance(config, world.seed)
    n, d = theta.shape
    providers = [f"provider-{i}" for i in range(n)]
    q = config["quality"]
    quality = LinearQuality(theta, noise=q["noise"], scale=q["scale"])

    mechanism = make_mechanism(config["mechanism"], theta, prior, config["run"]["rounds"])

    world.ledger.open("user", balance=to_minor(m["user_budget"]))
    auctioneer = ReverseAuctioneer(
        world.auctioneer_id, mechanism, providers, world.ledger, world.record, world.rng("mechanism"),
        bid_window=m["bid_window"], feedback_timeout=m["feedback_timeout"],
    )
    world.add(auctioneer)
    strategies = config["strategies"]
    for pid in providers:
        world.ledger.open(pid, overdraft=None)
        name = strategies["overrides"].get(pid, strategies["default"])
        world.add(Provider(pid, prior, world.wallet(pid), build_strategy(name)))
    world.add(
        ProcurementUser(
            "user", config["run"]["rounds"], providers, quality.sample,
            lambda rng: rng.uniform(0.0, 1.0, d),
            interarrival=m["interarrival"],
        ),
        principal=True,
    )
    if m["latency"] or m["jitter"] or m["loss"]:
        from market.bus import star_graph

        world.graph = star_graph(world.auctioneer_id, [a.id for a in world.agents if a.id != world.auctioneer_id],
                                 latency=m["latency"], jitter=m["jitter"], loss=m["loss"])
    world.drain_seconds = m["bid_window"] + 2 * (m["latency"] + m["jitter"])
