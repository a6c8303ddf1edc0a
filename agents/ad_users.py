"""The user of the advertising market: asks queries, scores the shown reply by its usefulness log pi_ref(y|x).

Usefulness is the paper's user-side metric (arXiv 2405.05905, section 4); the user reports it to the
platform as ``Feedback``, so the run summary carries it.
"""

from __future__ import annotations

from collections.abc import Sequence

from market.core.lm.ads import AdInstance
from market.core.wire import AdQuery, Error, Feedback, ReplyShown
from market.runtime.agent import Agent
from market.runtime.platform import lm_reply


class AdUser(Agent):
    """Asks ``queries`` (query ids, in order), one every ``interarrival`` simulated seconds."""

    def __init__(
        self,
        agent_id: str,
        queries: Sequence[int],
        instances: Sequence[AdInstance],
        *,
        interarrival: float = 1.0,
        reply_timeout: float = 60.0,
        platform: str = "auctioneer",
    ) -> None:
        super().__init__(agent_id)
        self.queries = tuple(queries)
        self.instances = tuple(instances)
        self.interarrival = float(interarrival)
        self.reply_timeout = float(reply_timeout)
        self.platform = platform
        self.sent = 0
        self._waiting: list[tuple[int, float]] = []  # (query id, give-up time), oldest first
        self.usefulness = 0.0
        self.shown = 0
        self.unanswered = 0
        self.errors = 0

    async def run(self) -> None:
        next_at = self.now()
        while self.sent < len(self.queries) or self._waiting:
            now = self.now()
            if self.sent < len(self.queries) and now >= next_at:
                qid = self.queries[self.sent]
                self._waiting.append((qid, now + self.reply_timeout))
                self.send(self.platform, AdQuery(qid))
                self.sent += 1
                next_at += self.interarrival
                continue
            if self._waiting and self._waiting[0][1] <= now:
                self._waiting.pop(0)  # a reply that never came (lost on the way) is counted, not waited for
                self.unanswered += 1
                continue
            wake = next_at if self.sent < len(self.queries) else self._waiting[0][1]
            if self._waiting and self._waiting[0][1] < wake:
                wake = self._waiting[0][1]
            try:
                env = await self.recv(wake - now)
            except TimeoutError:
                continue
            msg = env.msg
            if type(msg) is ReplyShown and env.src == self.platform:
                self._on_reply(msg)
            elif type(msg) is Error:
                self.errors += 1
            else:
                self.refuse(env.src, msg, self.platform if type(msg) is ReplyShown else None)

    def _on_reply(self, msg: ReplyShown) -> None:
        # The platform serves queries in arrival order: the reply answers the oldest open ask of its query.
        k = next((k for k, (qid, _) in enumerate(self._waiting) if qid == msg.query_id), None)
        if k is None:
            return
        del self._waiting[k]
        inst = self.instances[msg.query_id]
        usefulness = float(inst.log_ref([lm_reply(inst, msg.reply)])[0])
        self.usefulness += usefulness
        self.shown += 1
        self.send(self.platform, Feedback(msg.round, usefulness))
