"""The registry of reverse-auction mechanisms: ROSA over each allocation rule, leaky and horizon ROSA,
Myerson and the non-truthful baselines, each built by name from (n, d, params).
"""
from __future__ import annotations

from typing import Any, Callable

from market.core.mechanisms.base import MechanismRegistryError, ReverseMechanism
from market.core.mechanisms.baselines import CriticalBid, Myerson, PayAsBid
from market.core.mechanisms.horizon import HorizonROSA, SeparatedElimination
from market.core.mechanisms.leaky import LeakyROSA
from market.core.mechanisms.priors import CostPriors, UniformCost
from market.core.mechanisms.rosa import ROSA
from market.core.mechanisms.rules import TRCMUCB, EpsilonGreedyRule, UCBRule
from market.core.parameters import forwards
from market.core.registry import Registry


def _support(priors: Any, n: int, cost_floor: float | None, cost_cap: float | None) -> tuple[float, float]:
    profile = CostPriors.of(priors, n)
    lo = float(profile.c_lo.min()) if cost_floor is None else float(cost_floor)
    cap = float(profile.c_cap.max()) if cost_cap is None else float(cost_cap)
    return lo, cap


def _rosa_of(rule_cls: type) -> Callable[..., ROSA]:
    @forwards(rule_cls)
    def build(n: int, d: int, mu: float, priors: Any = UniformCost(), cost_floor: float | None = None,
              cost_cap: float | None = None, clip_bids: bool = False, **rule_params: Any) -> ROSA:
        lo, cap = _support(priors, n, cost_floor, cost_cap)
        return ROSA(rule_cls(n, d, priors=priors, **rule_params), mu, cap, lo, clip_bids)
    return build


@forwards(TRCMUCB)
def _leaky_rosa(n: int, d: int, mu: float, priors: Any = UniformCost(), cost_floor: float | None = None,
                cost_cap: float | None = None, leak_seed: int = 0, **rule_params: Any) -> LeakyROSA:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    return LeakyROSA(TRCMUCB(n, d, priors=priors, **rule_params), mu, cap, lo, leak_seed)


def _horizon_of(rule_cls: type) -> Callable[..., HorizonROSA]:
    @forwards(rule_cls)
    def build(n: int, d: int, mu: float, priors: Any = UniformCost(), cost_floor: float | None = None,
              cost_cap: float | None = None, **rule_params: Any) -> HorizonROSA:
        lo, cap = _support(priors, n, cost_floor, cost_cap)
        return HorizonROSA(rule_cls(n, d, priors=priors, **rule_params), mu, cap, lo)
    return build


@forwards(TRCMUCB)
def _pay_as_bid(n: int, d: int, priors: Any = UniformCost(), cost_floor: float | None = None,
                cost_cap: float | None = None, **rule_params: Any) -> PayAsBid:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    return PayAsBid(TRCMUCB(n, d, priors=priors, **rule_params), cap, lo)


@forwards(TRCMUCB, bound=("surplus",))
def _first_price_ucb(n: int, d: int, priors: Any = UniformCost(), cost_floor: float | None = None,
                     cost_cap: float | None = None, **rule_params: Any) -> PayAsBid:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    rule = TRCMUCB(n, d, priors=priors, surplus="welfare", **rule_params)
    return PayAsBid(rule, cap, lo, name="first-price-ucb")


@forwards(TRCMUCB)
def _linucb_critical(n: int, d: int, priors: Any = UniformCost(), cost_floor: float | None = None,
                     cost_cap: float | None = None, **rule_params: Any) -> CriticalBid:
    lo, cap = _support(priors, n, cost_floor, cost_cap)
    return CriticalBid(TRCMUCB(n, d, priors=priors, **rule_params), cap, lo)


MECHANISMS: Registry[ReverseMechanism] = Registry("mechanism", {
    "myerson": Myerson,
    "rosa-trcm-ucb": _rosa_of(TRCMUCB),
    "rosa-eps-greedy": _rosa_of(EpsilonGreedyRule),
    "rosa-ucb": _rosa_of(UCBRule),
    "rosa-leaky": _leaky_rosa,
    "horizon-rosa": _horizon_of(SeparatedElimination),
    "horizon-rosa-linucb": _horizon_of(TRCMUCB),
    "pay-as-bid": _pay_as_bid,
    "first-price-ucb": _first_price_ucb,
    "linucb-critical": _linucb_critical,
}, error=MechanismRegistryError)


def build_mechanism(name: str, **params: Any) -> ReverseMechanism:
    """Build a registered mechanism, e.g. build_mechanism("rosa-trcm-ucb", n=5, d=8, mu=0.05)."""
    return MECHANISMS.build(name, **params)
