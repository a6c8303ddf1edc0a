"""LLM provider agents of the procurement market: draw a private cost per query, bid, serve if they win.

The bid comes from a strategy (``agents.strategies.BiddingStrategy``) driven through a ``Bidder``: the provider
hands it an observation per call for bids (the round index is the call's, the history the outcomes it learnt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from market.core.ledger import EXTERNAL, to_minor
from market.core.mechanisms.priors import CostPrior, draw_cost
from market.core.wire import Answer, Bid, CallForBids, Error, RoundResult
from market.runtime.agent import Agent, remember_round
from market.runtime.config import ConfigError, require
from market.runtime.world import Wallet

from .strategies import Bidder, BidderFacts, BidFeedback, Truthful, build_strategy


class Provider(Agent):
    """Bids on every call for bids with ``strategy``; pays its serving cost when it wins."""

    groups = ("providers",)

    def __init__(
        self,
        agent_id: str,
        prior: CostPrior,
        wallet: Wallet,
        strategy: Any = None,
        auctioneer: str = "auctioneer",
    ) -> None:
        super().__init__(agent_id)
        self.prior = prior
        self.wallet = wallet
        self.strategy = strategy if strategy is not None else Truthful()
        self.auctioneer = auctioneer
        self._open: dict[int, tuple[float, float, str, int]] = {}  # round -> (cost, bid, user, query)

    async def run(self) -> None:
        while True:
            env = await self.recv()
            msg = env.msg
            if env.src != self.auctioneer and type(msg) in (CallForBids, RoundResult):
                self.refuse(env.src, msg, self.auctioneer)
            elif type(msg) is CallForBids:
                cost = draw_cost(self.prior, self.rng)
                bid = self.bidder.bid(cost, np.asarray(msg.context), msg.round, self.rng)
                remember_round(self._open, msg.round, (cost, bid, msg.user, msg.query_id))
                self.send(self.auctioneer, Bid(msg.round, bid))
            elif type(msg) is RoundResult:
                opened = self._open.pop(msg.round, None)
                if opened is None:
                    continue
                cost, bid, user, query_id = opened
                if msg.won:
                    self.wallet.pay(EXTERNAL, to_minor(cost), "serving cost")
                    self.send(user, Answer(msg.round, query_id))
                self.bidder.learn(BidFeedback(msg.round, msg.won, msg.payment, cost, bid))
            elif type(msg) is not Error:  # errors are the answers to our own frames, logged by their sender
                self.refuse(env.src, msg)

    @property
    def strategy(self) -> Any:
        """The provider's strategy object; setting it starts a new ``Bidder`` (an empty history)."""
        return self.bidder.strategy

    @strategy.setter
    def strategy(self, strategy: Any) -> None:
        self.bidder = Bidder(strategy)

    def get_state(self) -> dict[str, Any]:
        state = {**super().get_state(), "strategy": self.strategy.get_state(),
                 "open": {r: list(v) for r, v in self._open.items()}}
        if self.bidder.memory != 0:  # only a strategy that keeps a history has one to checkpoint
            state["history"] = self.bidder.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.strategy.set_state(state["strategy"])
        self.bidder.set_state(state.get("history", []))
        self._open = {int(r): tuple(v) for r, v in state["open"].items()}


def provider_strategies(strategies: dict[str, Any], providers: Sequence[str], mechanism: Any) -> list[Any]:
    """Each provider's strategy object, from a config's ``strategies`` table (``default``, ``overrides`` by
    provider id, ``params`` by strategy name), bidding under the mechanism's public rules (bid range, mu)."""
    out = []
    for i, pid in enumerate(providers):
        key = f"strategies.overrides.{pid}" if pid in strategies["overrides"] else "strategies.default"
        name = strategies["overrides"].get(pid, strategies["default"])
        params = strategies["params"].get(name, {})
        require(isinstance(params, dict), f"strategies.params.{name}", params, "a table of parameters")
        facts = BidderFacts(i, mechanism.n, float(mechanism.cost_floor), float(mechanism.cost_cap),
                            getattr(mechanism, "mu", None))
        try:
            out.append(build_strategy(name, facts, **params))
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from None
    return out
