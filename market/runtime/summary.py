"""A run's summary, computed from event-log records alone.

The same accumulator watches the records as a run writes them and as ``replay`` reads them back,
so the footer and the replay agree exactly unless the log was changed. Memory is flat: only
counters and sums are kept, never per-round history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from market.core.ledger import EXTERNAL
from market.runtime.records import (
    AgentFault,
    Expired,
    FeedbackAccepted,
    LedgerTransfer,
    MessageDropped,
    MessageSent,
    Record,
    Rejected,
    RoundClosed,
)


class SummaryAccumulator:
    """Feed it records with ``observe``; ``result()`` is the summary (plain, sorted, JSON-able)."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = defaultdict(int)
        self.received: dict[str, Counter] = defaultdict(Counter)  # account -> memo -> minor units
        self.paid: dict[str, Counter] = defaultdict(Counter)
        self.messages: Counter = Counter()
        self.rejects: Counter = Counter()
        self.drops: Counter = Counter()  # reason -> count
        self.rejects_by: Counter = Counter()  # offender -> count
        self.feedback_missing = 0
        self.faults: Counter = Counter()  # "crash" / "restart" -> count
        self.wins: Counter = Counter()
        self.rounds = 0
        self.unsold = 0
        self.feedback_sum = 0.0
        self.feedback_count = 0
        self.t_end = 0.0

    def observe(self, record: Record) -> None:
        if isinstance(record, MessageSent):
            self.messages[record.kind] += 1
        elif isinstance(record, FeedbackAccepted):  # accepted ratings only: not forged, late, duplicate or lost ones
            self.feedback_sum += record.reward
            self.feedback_count += 1
        elif isinstance(record, LedgerTransfer):
            amount, memo = record.amount_minor, record.memo
            self.balances[record.src] -= amount
            self.balances[record.dst] += amount
            self.paid[record.src][memo] += amount
            self.received[record.dst][memo] += amount
        elif isinstance(record, RoundClosed):
            self.rounds += 1
            if record.winner:
                self.wins[record.winner] += 1
            else:
                self.unsold += 1
        elif isinstance(record, Rejected):
            self.rejects[record.code] += 1
            self.rejects_by[record.offender] += 1
        elif isinstance(record, MessageDropped):
            self.drops[record.reason] += 1
        elif isinstance(record, Expired):
            self.feedback_missing += record.what == "feedback"
        elif isinstance(record, AgentFault):
            self.faults[record.event] += 1
        else:
            return
        if record.t > self.t_end:
            self.t_end = record.t

    def result(self) -> dict[str, Any]:
        accounts = sorted(set(self.balances) | {EXTERNAL})
        return {
            "rounds": self.rounds,
            "unsold": self.unsold,
            "wins": dict(sorted(self.wins.items())),
            "messages": sum(self.messages.values()),
            "messages_by_kind": dict(sorted(self.messages.items())),
            "rejects": dict(sorted(self.rejects.items())),
            "rejects_by_offender": dict(sorted(self.rejects_by.items())),
            "drops": sum(self.drops.values()),
            "drops_by_reason": dict(sorted(self.drops.items())),
            "faults": dict(sorted(self.faults.items())),
            "feedback": {"count": self.feedback_count, "reward_sum": self.feedback_sum,
                         "missing": self.feedback_missing},
            "balances": {a: self.balances.get(a, 0) for a in accounts},
            "received": {a: dict(sorted(c.items())) for a, c in sorted(self.received.items())},
            "paid": {a: dict(sorted(c.items())) for a, c in sorted(self.paid.items())},
            "sim_seconds": self.t_end,
        }

    def get_state(self) -> dict[str, Any]:
        """Every counter and sum, as plain dicts, for a checkpoint."""
        state: dict[str, Any] = {}
        for name, v in vars(self).items():
            if name in _NESTED:
                state[name] = {a: dict(c) for a, c in v.items()}
            else:
                state[name] = dict(v) if isinstance(v, dict) else v
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        for name, v in state.items():
            if name in _NESTED:
                setattr(self, name, defaultdict(Counter, {a: Counter(c) for a, c in v.items()}))
            elif name == "balances":
                self.balances = defaultdict(int, v)
            elif isinstance(getattr(self, name), Counter):
                setattr(self, name, Counter(v))
            else:
                setattr(self, name, v)


_NESTED = ("received", "paid")
