"""User agents: send queries with context vectors, receive answers, report the reward they observed.

``ProcurementUser`` sends its queries at a fixed interarrival time (the quickstart's one user);
``CrowdUser`` is one of many, with its own Poisson arrivals in simulated time (optionally modulated by a
daily cycle), so that the queries of a crowd overlap as independent users' would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from market.core.wire import Answer, Error, Feedback, Query, Served
from market.runtime.agent import Agent


class ProcurementUser(Agent):
    """Buys an answer to each of ``queries`` queries, one every ``interarrival`` simulated seconds.

    ``reward(provider_index, context, rng)`` is the user's experience of an answer (the quality
    model); ``contexts(rng)`` draws a query's context vector.
    """

    def __init__(
        self,
        agent_id: str,
        queries: int,
        providers: Sequence[str],
        reward: Callable[[int, np.ndarray, np.random.Generator], float],
        contexts: Callable[[np.random.Generator], np.ndarray],
        *,
        interarrival: float = 1.0,
        answer_timeout: float = 60.0,
        auctioneer: str = "auctioneer",
    ) -> None:
        super().__init__(agent_id)
        self.queries = int(queries)
        self.index = {p: i for i, p in enumerate(providers)}
        self.reward = reward
        self.contexts = contexts
        self.interarrival = float(interarrival)
        self.answer_timeout = float(answer_timeout)
        self.auctioneer = auctioneer
        self.sent = 0
        self.next_at = 0.0  # when the next query goes out
        # query id -> (context, give-up time), until answered, unsold, or given up on
        self._contexts: dict[int, tuple[np.ndarray, float]] = {}
        self._expected: dict[int, tuple[int, str]] = {}  # query id -> (round, provider)
        # Answers that overtook their Served notice on a jittery network: query id -> (round, provider)
        self._early: dict[int, tuple[int, str]] = {}
        self.errors = 0
        self.unanswered = 0

    async def run(self) -> None:
        # Everything the loop needs is in attributes (the state a checkpoint saves), so a task
        # started afresh on restored state behaves as the one that was running.
        while self.sent < self.queries or self._contexts:
            now = self.now()
            if self.sent < self.queries and now >= self.next_at:
                x = self.contexts(self.rng)
                self._contexts[self.sent] = (x, now + self.answer_timeout)
                self.send(self.auctioneer, Query(self.sent, tuple(x.tolist())))
                self.sent += 1
                self._schedule()
                continue
            # Queries are answered in order, so the oldest one gives up first.
            give_up = next(iter(self._contexts.values()))[1] if self._contexts else None
            if give_up is not None and give_up <= now:
                self._give_up(now)
                continue
            wake = self.next_at if self.sent < self.queries else give_up
            if give_up is not None and give_up < wake:
                wake = give_up
            try:
                env = await self.port.recv(until=wake)
            except TimeoutError:
                continue
            self._handle(env.src, env.msg)

    def _schedule(self) -> None:
        """Set ``next_at`` to the time of the next query, after the one just sent."""
        self.next_at += self.interarrival

    def _give_up(self, now: float) -> None:
        """An answer that never came (lost, or its provider crashed) is counted, not waited for."""
        for qid in [q for q, (_, t) in self._contexts.items() if t <= now]:
            del self._contexts[qid]
            self._expected.pop(qid, None)
            self._early.pop(qid, None)
            self.unanswered += 1

    def _handle(self, src: str, msg: Any) -> None:
        if type(msg) is Served and src != self.auctioneer:
            self.refuse(src, msg, self.auctioneer)
        elif type(msg) is Answer and src not in self.index:
            self.refuse(src, msg, "a provider")
        elif type(msg) is Served:
            early = self._early.pop(msg.query_id, None)
            if not msg.provider:
                self._contexts.pop(msg.query_id, None)
            elif early == (msg.round, msg.provider):
                self._rate(msg.query_id, msg.round, msg.provider)
            else:
                self._expected[msg.query_id] = (msg.round, msg.provider)
        elif type(msg) is Answer:
            expected = self._expected.get(msg.query_id)
            if expected is None and msg.query_id in self._contexts:
                # kept, not trusted: it counts only if the auctioneer's Served names this round and provider
                self._early[msg.query_id] = (msg.round, src)
            elif expected == (msg.round, src):
                del self._expected[msg.query_id]
                self._rate(msg.query_id, msg.round, src)
        elif type(msg) is Error:
            self.errors += 1
        else:
            self.refuse(src, msg)

    def _rate(self, query_id: int, round: int, provider: str) -> None:
        x, _ = self._contexts.pop(query_id)
        r = float(self.reward(self.index[provider], x, self.rng))
        self.send(self.auctioneer, Feedback(round, r))

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(), "sent": self.sent, "next_at": self.next_at, "errors": self.errors,
            "unanswered": self.unanswered, "contexts": {q: [x, t] for q, (x, t) in self._contexts.items()},
            "expected": {q: list(e) for q, e in self._expected.items()},
            "early": {q: list(e) for q, e in self._early.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.sent, self.next_at = state["sent"], state["next_at"]
        self.errors, self.unanswered = state["errors"], state["unanswered"]
        self._contexts = {int(q): (np.asarray(x, float), t) for q, (x, t) in state["contexts"].items()}
        self._expected = {int(q): (r, p) for q, (r, p) in state["expected"].items()}
        self._early = {int(q): (r, p) for q, (r, p) in state["early"].items()}


DAY_SECONDS = 86_400.0


class CrowdUser(ProcurementUser):
    """One user of many: ``queries`` queries at the times of a Poisson process of ``rate`` per simulated
    second, modulated by a daily cycle ``rate (1 + daily sin(2 pi t / period))`` when ``daily`` > 0.

    The cycle is drawn by thinning (proposals at the peak rate ``rate (1 + daily)``, each kept with
    probability rate(t) / peak) from the user's own stream, so arrivals depend on the seed and the user's
    id only. The first arrival is drawn when the user is wired, so that it is part of the initial state.
    """

    def __init__(self, agent_id: str, queries: int, providers: Sequence[str],
                 reward: Callable[[int, np.ndarray, np.random.Generator], float],
                 contexts: Callable[[np.random.Generator], np.ndarray], *, rate: float, daily: float = 0.0,
                 period: float = DAY_SECONDS, answer_timeout: float = 60.0, auctioneer: str = "auctioneer") -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"{agent_id}: rate = {rate!r}; expected a finite rate > 0 queries per second")
        if not 0.0 <= daily <= 1.0:
            raise ValueError(f"{agent_id}: daily = {daily!r}; expected an amplitude in [0, 1]")
        if not period > 0:
            raise ValueError(f"{agent_id}: period = {period!r}; expected > 0 seconds")
        super().__init__(agent_id, queries, providers, reward, contexts, interarrival=1.0 / rate,
                         answer_timeout=answer_timeout, auctioneer=auctioneer)
        self.rate, self.daily, self.period = float(rate), float(daily), float(period)

    def attach(self, port: Any, rng: np.random.Generator, record: Any = None) -> None:
        super().attach(port, rng, record)
        self.next_at = 0.0
        self._schedule()

    def _schedule(self) -> None:
        assert self.rng is not None, f"{self.id}: scheduling before attach"
        peak = self.rate * (1.0 + self.daily)
        t = self.next_at
        while True:
            t += float(self.rng.exponential(1.0 / peak))
            if not self.daily:
                break
            keep = (1.0 + self.daily * math.sin(2.0 * math.pi * t / self.period)) / (1.0 + self.daily)
            if float(self.rng.random()) < keep:
                break
        self.next_at = t
