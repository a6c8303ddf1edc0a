"""Advertiser agents of the MOSAIC market: a brand with a one-line description and its own prompted LLM.

At start it sends the platform its description (as its strategy writes it), which the context-aware proposal
is conditioned on. Reward r_i(y) = τ_i (log pi_i(y|x) − log pi_ref(y|x)) (arXiv 2405.05905, Eq. 18 with
Z_i = 1), computed on the candidates the platform sends; the report itself comes from a strategy
(``agents/ad_strategies.py``), driven through a ``Reporter`` that hands it the round index and its history.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from market.core.lm.ads import AdInstance
from market.core.wire import AdDescription, Candidates, Error, ReplyShown, RewardReport
from market.runtime.agent import Agent, remember_round
from market.runtime.platform import lm_reply

from .ad_strategies import AdFeedback, AdStrategy, Reporter, Truthful


class Advertiser(Agent):
    """Brand ``brand`` of ``instance``'s query; reports on every candidate set of that query."""

    groups = ("advertisers",)

    def __init__(
        self,
        agent_id: str,
        description: str,
        query_id: int,
        instance: AdInstance,
        brand: int,
        strategy: AdStrategy | None = None,
        platform: str = "auctioneer",
    ) -> None:
        super().__init__(agent_id)
        if not 0 <= brand < instance.n:
            raise ValueError(f"brand: got {brand}, expected a brand index in [0, {instance.n})")
        self.description = description
        self.query_id = query_id
        self.instance = instance
        self.brand = brand
        self.strategy = strategy if strategy is not None else Truthful()
        self.platform = platform
        self._open: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # round -> (true rewards, reported)
        self.value = 0.0  # Σ true reward of the shown replies
        self.paid = 0.0
        self.described = False  # sent its description (a restart with its last state does not send it again)

    def rewards(self, replies: Sequence[tuple[int, ...]]) -> np.ndarray:
        """(M,) true rewards τ_i (log pi_i − log pi_ref) of wire replies."""
        inst = self.instance
        ys = [lm_reply(inst, y) for y in replies]
        own = inst.lm.logprob_many(ys, inst.advertiser_prompt(self.brand))
        return inst.advertiser_tau[self.brand] * (own - inst.log_ref(ys))

    @property
    def sent_description(self) -> str:
        """The description its strategy writes for its brand (its own, if the strategy has no ``describe``)."""
        describe = getattr(self.strategy, "describe", None)
        if describe is None:
            return self.description
        return describe(self.instance.query.advertisers[self.brand], self.description)

    async def run(self) -> None:
        if not self.described:
            self.described = True
            self.send(self.platform, AdDescription(self.query_id, self.sent_description))
        while True:
            env = await self.recv()
            msg = env.msg
            if env.src != self.platform:
                if type(msg) is not Error:
                    self.refuse(env.src, msg, self.platform)
                continue
            if type(msg) is Candidates and msg.query_id == self.query_id:
                true = self.rewards(msg.replies)
                reported = np.asarray(self.reporter.report(true, msg.round, self.rng), dtype=float)
                remember_round(self._open, msg.round, (true, reported))
                self.send(self.platform, RewardReport(msg.round, tuple(reported.tolist())))
            elif type(msg) is ReplyShown:
                opened = self._open.pop(msg.round, None)
                if opened is None:
                    continue
                reward = float(self.rewards([msg.reply])[0])
                self.value += reward
                self.paid += msg.payment
                self.reporter.learn(AdFeedback(msg.round, opened[0], opened[1], reward, msg.payment))

    @property
    def strategy(self) -> Any:
        """The advertiser's strategy object; setting it starts a new ``Reporter`` (an empty history)."""
        return self.reporter.strategy

    @strategy.setter
    def strategy(self, strategy: Any) -> None:
        self.reporter = Reporter(strategy)

    def get_state(self) -> dict[str, Any]:
        state = {**super().get_state(), "strategy": self.strategy.get_state(), "described": self.described}
        if self.reporter.memory != 0:  # only a strategy that keeps a history has one to checkpoint
            state["history"] = self.reporter.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.strategy.set_state(state["strategy"])
        self.reporter.set_state(state.get("history", []))
        self.described = state["described"]
