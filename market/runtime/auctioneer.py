"""The auctioneer of the procurement market: sealed-bid rounds with a deadline in simulated time.

For each user query it calls for bids, collects them until the deadline (or until every provider
has bid), runs the mechanism's ``select`` on the committed bids, tells winner and losers, settles
payments through the ledger, and passes the user's reward back to the mechanism's ``update``.
A missing bid is an abstention; late, duplicate, malformed or out-of-range bids are refused with
an error to the sender and a log record, and the round goes on. Under network faults a lost or
late bid is an abstention too; a user's feedback that never comes (lost, or the user crashed)
leaves the learner unchanged and is logged as an "expire" record. Each sender has a token bucket
in simulated time: frames beyond it are refused ("rate_limited") before anything reads them.

With ``overlap`` every query opens its auction at once: each auction (its id is the round number that
bids, results and feedback carry) has its own deadline and bid book, and closes when its invited
providers have all bid or its deadline passes, in deadline order (ties by id). Invitations then go to an
eligible subset: providers whose capability covers the query (``eligible``), below their ``capacity``
(open auctions they are invited to), at most ``max_bidders`` of them drawn from the invitation stream.
Who was invited, how many were full and which user asked go in the auction's record. A learning
mechanism updates in the order feedback arrives, which the virtual clock makes deterministic. Without
``overlap`` the auctioneer runs one round at a time and queues the rest, as it always did.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from market.core.ledger import Ledger, LedgerError, to_minor, to_units
from market.core.mechanisms.base import BidRange, MechanismError, ReverseMechanism, ReverseOutcome
from market.core.wire import Bid, CallForBids, Error, Feedback, Query, RoundResult, Served
from market.runtime.agent import Agent
from market.runtime.bus import BUS_ID, Envelope
from market.runtime.records import Expired, FeedbackAccepted, Record, Rejected, RoundClosed


@dataclass(slots=True)
class _OpenRound:
    round: int
    query_id: int
    user: str
    context: np.ndarray
    deadline: float
    bids: np.ndarray
    present: np.ndarray
    received: int = 0
    invited: np.ndarray | None = None  # overlap: who was asked to bid (None: everyone)
    expected: int = 0  # overlap: how many bids close the auction early
    full: int = 0  # overlap: providers left out because they were at capacity


@dataclass(slots=True)
class _AwaitingFeedback:
    user: str
    context: np.ndarray
    outcome: ReverseOutcome
    expires: float


class ReverseAuctioneer(Agent):
    """Runs ``mechanism`` for ``providers`` (bus ids, in the mechanism's index order)."""

    def __init__(
        self,
        agent_id: str,
        mechanism: ReverseMechanism,
        providers: Sequence[str],
        ledger: Ledger,
        record: Callable[[Record], None],
        mechanism_rng: np.random.Generator,
        *,
        bid_window: float = 1.0,
        feedback_timeout: float = 60.0,
        group: str = "providers",
        users: Sequence[str] | None = None,
        rate_limit: float = 0.0,
        rate_burst: float = 0.0,
        overlap: bool = False,
        capacity: int = 0,
        max_bidders: int = 0,
        eligible: Callable[[np.ndarray], np.ndarray] | None = None,
        invite_rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(agent_id)
        if mechanism.n != len(providers):
            raise MechanismError(f"providers: mechanism expects {mechanism.n}, got {len(providers)}")
        self.mechanism = mechanism
        self.providers = tuple(providers)
        self.index = {p: i for i, p in enumerate(self.providers)}
        self.ledger = ledger
        self.record = record
        self.mechanism_rng = mechanism_rng
        self.bid_window = float(bid_window)
        self.feedback_timeout = float(feedback_timeout)
        self.group = group
        self.bid_range = BidRange.of(mechanism)
        self._next_round = 0
        self._queue: deque[Envelope] = deque()
        self._awaiting: dict[int, _AwaitingFeedback] = {}
        self._current: _OpenRound | None = None
        self.feedback_missing = 0
        self.users = frozenset(users) if users is not None else None
        if rate_limit < 0 or (rate_limit > 0 and rate_burst < 1):
            raise MechanismError(f"rate_limit: got rate {rate_limit!r}, burst {rate_burst!r}; expected rate >= 0 "
                                 "(0 = no limit) and, with a rate, a burst of at least 1 frame")
        self.rate_limit = float(rate_limit)
        self.rate_burst = float(rate_burst)
        self._buckets: dict[str, list[float]] = {}  # sender -> [tokens, time of last refill]
        # Called between rounds (nothing open, nothing queued) with the number of closed rounds:
        # the world uses it to checkpoint at quiescent points.
        self.idle: Callable[[int], None] | None = None
        if capacity < 0 or max_bidders < 0:
            raise MechanismError(f"capacity = {capacity!r}, max_bidders = {max_bidders!r}: expected integers >= 0 "
                                 "(0 = no limit)")
        if (capacity or max_bidders or eligible is not None) and not overlap:
            raise MechanismError("capacity, max_bidders and eligible need overlap = True: one auction at a time "
                                 "invites every provider")
        if max_bidders and invite_rng is None:
            raise MechanismError(f"max_bidders = {max_bidders}: needs an invite_rng to draw the bidders from")
        self.overlap = bool(overlap)
        self.capacity = int(capacity)
        self.max_bidders = int(max_bidders)
        self.eligible = eligible
        self.invite_rng = invite_rng
        self._open_rounds: dict[int, _OpenRound] = {}  # overlap: auction id -> its book
        self._deadlines: list[tuple[float, int]] = []  # overlap: heap of (deadline, auction id), stale ones skipped
        self._load = np.zeros(len(self.providers), dtype=np.int64)  # overlap: open auctions each is invited to

    async def run(self) -> None:
        if self.overlap:
            await self._run_overlapping()
            return
        while True:
            if not self._queue and self.idle is not None:
                self.idle(self._next_round)
            env = self._queue.popleft() if self._queue else await self.recv()
            self._dispatch(env)
            if self._current is not None:
                await self._collect()
                self._close()

    async def _run_overlapping(self) -> None:
        """Every open auction in flight: wait for the next frame or the earliest deadline, whichever comes first."""
        heap = self._deadlines
        while True:
            while heap and heap[0][1] not in self._open_rounds:
                heapq.heappop(heap)  # closed early: every invited provider bid
            if not heap and self.idle is not None:
                self.idle(self._next_round)
            try:
                env = await self.port.recv(until=heap[0][0]) if heap else await self.recv()
            except TimeoutError:
                self._close_due()
                continue
            self._dispatch(env)
            self._close_due()

    def _close_due(self) -> None:
        heap, now = self._deadlines, self.now()
        while heap and heap[0][0] <= now:
            _, r = heapq.heappop(heap)
            cur = self._open_rounds.get(r)
            if cur is not None:
                self._close_overlapping(cur)

    def on_stop(self) -> None:
        self._expire_feedback(every=True)

    # -- dispatch of anything that arrives --------------------------------------------------
    def _admit(self, src: str) -> bool:
        """Take a token from ``src``'s bucket (refilled at ``rate_limit`` per simulated second)."""
        now = self.now()
        bucket = self._buckets.get(src)
        if bucket is None:
            bucket = self._buckets[src] = [self.rate_burst, now]
        else:
            bucket[0] = min(self.rate_burst, bucket[0] + (now - bucket[1]) * self.rate_limit)
            bucket[1] = now
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True

    def _dispatch(self, env: Envelope) -> None:
        msg = env.msg
        if self.rate_limit and env.src != BUS_ID and not self._admit(env.src):
            self._refuse(env.src, "rate_limited", "src",
                         f"more than {self.rate_limit:g} frames/s (burst {self.rate_burst:g}) from {env.src!r}")
            return
        if type(msg) is Query:
            if self.users is not None and env.src not in self.users:
                self._refuse(env.src, "unknown_agent", "src", f"{env.src!r} is not a user of this market")
            elif self.overlap:
                self._open_overlapping(env.src, msg)
            elif self._current is not None:
                self._queue.append(env)
            else:
                self._open(env.src, msg)
        elif type(msg) is Bid:
            self._on_bid(env.src, msg)
        elif type(msg) is Feedback:
            self._on_feedback(env.src, msg)
        elif type(msg) is Error and env.src == BUS_ID:
            pass  # the bus refused one of our own sends (e.g. to a crashed agent); it is logged there
        else:
            self._refuse(env.src, "unexpected", "kind", f"the auctioneer does not accept {msg.kind!r}")

    def _open(self, user: str, q: Query) -> None:
        n = len(self.providers)
        self._expire_feedback()
        r = self._next_round
        self._next_round += 1
        deadline = self.now() + self.bid_window
        self._current = _OpenRound(
            r, q.query_id, user, np.asarray(q.context, dtype=float), deadline,
            np.full(n, np.nan), np.zeros(n, dtype=bool),
        )
        self.port.broadcast(self.group, CallForBids(r, q.query_id, q.context, deadline, user))

    def _invite(self, context: np.ndarray) -> tuple[np.ndarray | None, int]:
        """(who is asked to bid as a bool mask, None for everyone; how many were left out being full)."""
        if self.eligible is None and not self.capacity and not self.max_bidders:
            return None, 0
        n = len(self.providers)
        mask = np.ones(n, dtype=bool) if self.eligible is None else np.array(self.eligible(context), dtype=bool)
        full = 0
        if self.capacity:
            free = self._load < self.capacity
            full = int(np.count_nonzero(mask & ~free))
            mask &= free
        if self.max_bidders:
            idx = np.flatnonzero(mask)
            if idx.size > self.max_bidders:
                assert self.invite_rng is not None
                mask[:] = False
                mask[self.invite_rng.choice(idx, self.max_bidders, replace=False)] = True
        return mask, full

    def _open_overlapping(self, user: str, q: Query) -> None:
        n = len(self.providers)
        self._expire_feedback()
        r = self._next_round
        self._next_round += 1
        deadline = self.now() + self.bid_window
        x = np.asarray(q.context, dtype=float)
        invited, full = self._invite(x)
        expected = n if invited is None else int(np.count_nonzero(invited))
        cur = _OpenRound(r, q.query_id, user, x, deadline, np.full(n, np.nan), np.zeros(n, dtype=bool),
                         invited=invited, expected=expected, full=full)
        self._open_rounds[r] = cur
        if not expected:
            self._close_overlapping(cur)
            return
        heapq.heappush(self._deadlines, (deadline, r))
        cfb = CallForBids(r, q.query_id, q.context, deadline, user)
        if invited is None:
            self._load += 1
            self.port.broadcast(self.group, cfb)
        else:
            self._load[invited] += 1
            self.port.multicast(tuple(self.providers[i] for i in np.flatnonzero(invited)), cfb)

    def _on_bid_overlapping(self, src: str, bid: Bid) -> None:
        i = self.index.get(src)
        cur = self._open_rounds.get(bid.round)
        if i is None:
            self._refuse(src, "unknown_agent", "src", f"{src!r} is not a provider in this market")
        elif cur is None:
            self._refuse(src, "late", "round", f"bid for auction {bid.round} arrived after it closed"
                         if bid.round < self._next_round else f"no auction {bid.round} is open")
        elif cur.invited is not None and not cur.invited[i]:
            self._refuse(src, "not_invited", "round", f"{src!r} was not asked to bid in auction {bid.round}")
        elif cur.present[i]:
            self._refuse(src, "duplicate", "round", f"second bid for auction {bid.round}")
        elif (why := self.bid_range.refusal(bid.amount)) is not None:
            self._refuse(src, "out_of_range", "amount", why)
        else:
            cur.bids[i] = bid.amount
            cur.present[i] = True
            cur.received += 1
            if cur.received == cur.expected:
                self._close_overlapping(cur)

    def _close_overlapping(self, cur: _OpenRound) -> None:
        del self._open_rounds[cur.round]
        if cur.expected:
            if cur.invited is None:
                self._load -= 1
            else:
                self._load[cur.invited] -= 1
        extra: dict[str, Any] = {"user": cur.user, "full": cur.full}
        if cur.invited is not None:
            extra["invited"] = np.flatnonzero(cur.invited).tolist()
        self._settle(cur, extra)

    async def _collect(self) -> None:
        cur = self._current
        assert cur is not None, "collecting bids with no round open"
        n = len(self.providers)
        while cur.received < n and cur.deadline > self.now():
            try:
                env = await self.port.recv(until=cur.deadline)
            except TimeoutError:
                return
            self._dispatch(env)

    def _on_bid(self, src: str, bid: Bid) -> None:
        if self.overlap:
            self._on_bid_overlapping(src, bid)
            return
        i = self.index.get(src)
        cur = self._current
        if i is None:
            self._refuse(src, "unknown_agent", "src", f"{src!r} is not a provider in this market")
        elif cur is None or bid.round != cur.round:
            self._refuse(src, "late", "round", f"bid for round {bid.round} arrived after it closed")
        elif cur.present[i]:
            self._refuse(src, "duplicate", "round", f"second bid for round {bid.round}")
        elif (why := self.bid_range.refusal(bid.amount)) is not None:
            self._refuse(src, "out_of_range", "amount", why)
        else:
            cur.bids[i] = bid.amount
            cur.present[i] = True
            cur.received += 1

    def _close(self) -> None:
        cur = self._current
        assert cur is not None, "closing a round that is not open"
        self._current = None
        self._settle(cur, {})

    def _settle(self, cur: _OpenRound, extra: dict[str, Any]) -> None:
        """Select on the round's bids, pay, log the outcome (``extra`` added to its record), tell everyone."""
        now = self.now()
        if cur.received:
            outcome = self.mechanism.select(cur.context, cur.bids, self.mechanism_rng, cur.present)
        else:
            n = len(self.providers)
            outcome = ReverseOutcome(None, np.zeros(n), cur.bids.copy(), np.zeros(n, dtype=bool))
        winner = outcome.winner
        # Python lists (tolist: the same floats and bools) rather than loops over NumPy scalars, which cost
        # a boxed scalar and a conversion per provider and round
        payments = np.asarray(outcome.payments, dtype=float).tolist()
        present = cur.present.tolist()
        pay_minor = [to_minor(p) for p in payments]
        try:
            for i, amount in enumerate(pay_minor):
                if amount:
                    self.ledger.transfer(cur.user, self.providers[i], amount, "payment")
        except LedgerError as exc:
            # The user cannot pay: the round is void, nobody serves, nobody is paid.
            self._refuse(cur.user, "budget", "amount", str(exc), reply=False)
            winner = None
            pay_minor = [0] * len(pay_minor)
        winner_id = self.providers[winner] if winner is not None else ""
        self.record(RoundClosed(
            now, cur.round, cur.query_id, winner_id, tuple(pay_minor),
            {"resampled": np.asarray(outcome.resampled, dtype=float).tolist(),
             "modified": np.asarray(outcome.modified, dtype=bool).tolist(),
             "present": present,  # whose bids arrived in time: the others abstained
             **extra},
        ))
        bidders = tuple(p for p, ok in zip(self.providers, present) if ok and p != winner_id)
        if bidders:
            self.port.multicast(bidders, RoundResult(cur.round, False, 0.0))
        price = to_units(pay_minor[winner]) if winner is not None else 0.0
        if winner is not None:
            self.send(winner_id, RoundResult(cur.round, True, payments[winner]))
            self._awaiting[cur.round] = _AwaitingFeedback(
                cur.user, cur.context, outcome, now + self.feedback_timeout
            )
        self.send(cur.user, Served(cur.round, cur.query_id, winner_id, price))

    def _on_feedback(self, src: str, fb: Feedback) -> None:
        pending = self._awaiting.get(fb.round)
        if pending is None:
            self._refuse(src, "unknown_round", "round", f"no served round {fb.round} awaits feedback")
        elif pending.user != src:
            self._refuse(src, "not_owner", "src", f"round {fb.round} belongs to {pending.user!r}")
        else:
            del self._awaiting[fb.round]
            self.record(FeedbackAccepted(self.now(), fb.round, src, fb.reward))
            self.mechanism.update(pending.context, pending.outcome, fb.reward)

    def _expire_feedback(self, *, every: bool = False) -> None:
        """Feedback that never came leaves the learner unchanged; it is counted and logged."""
        now = self.now()
        stale = [r for r, p in self._awaiting.items() if every or p.expires < now]
        for r in stale:
            user = self._awaiting.pop(r).user
            self.feedback_missing += 1
            self.record(Expired(now, r, user, "feedback"))

    def _refuse(self, src: str, code: str, field: str, detail: str, *, reply: bool = True) -> None:
        self.record(Rejected(self.now(), src, code, field, detail))
        if reply and src != BUS_ID:
            self.send(src, Error(code, field, detail[:1024]))

    # -- checkpoints (taken between rounds: no round open, nothing queued) -------------------
    def get_state(self) -> dict[str, Any]:
        awaiting = {r: [p.user, p.context, p.expires, p.outcome.winner, p.outcome.payments,
                        p.outcome.resampled, p.outcome.modified] for r, p in self._awaiting.items()}
        return {
            **super().get_state(), "next_round": self._next_round, "feedback_missing": self.feedback_missing,
            "awaiting": awaiting, "buckets": self._buckets, "mechanism": self.mechanism.get_state(),
            "mechanism_rng": self.mechanism_rng.bit_generator.state,
            **({"invite_rng": self.invite_rng.bit_generator.state} if self.invite_rng is not None else {}),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._next_round = state["next_round"]
        self.feedback_missing = state["feedback_missing"]
        self._awaiting = {
            int(r): _AwaitingFeedback(user, np.asarray(x, float), ReverseOutcome(
                winner, np.asarray(pay, float), np.asarray(res, float), np.asarray(mod, bool)), expires)
            for r, (user, x, expires, winner, pay, res, mod) in state["awaiting"].items()
        }
        self._buckets = {src: list(b) for src, b in state["buckets"].items()}
        self.mechanism.set_state(state["mechanism"])
        self.mechanism_rng.bit_generator.state = state["mechanism_rng"]
        if self.invite_rng is not None:
            self.invite_rng.bit_generator.state = state["invite_rng"]
        self._queue.clear()
        self._current = None
        self._open_rounds.clear()
        self._deadlines.clear()
        self._load[:] = 0
