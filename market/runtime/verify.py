"""Verify a run directory: reconcile its event log's records with each other, with the run's config and files,
and (``resimulate``) with a fresh run of the same config and seed.

Each frame of a log carries a CRC, so a careless change shows; a deliberate one (frames rewritten with their
CRCs and the footer recomputed) does not. What a forger cannot easily keep consistent is the market's own
bookkeeping, so ``verify_run`` checks it, in one streaming pass (memory flat in the number of rounds):

- transfers: every ledger transfer is one the market makes. Payments and rebates are exactly the nonzero
  ``payments_minor`` of the round record that follows them, in index order, each index paid by (or to) the
  same account all run long and, where the round names a winner, to the winner; a serving cost follows a
  round its payer won; a posted-price bill follows the provider's answer that states it; opening balances
  come from ``external`` before anything else happens. Anything else is named by frame index and offset.
- money: the openings are those the Scenario's builder makes for the logged config and seed, balances sum to
  0, and the footer's balances are the log's.
- rounds: round records are numbered 0, 1, 2, ... and, for a finished run, the rounds closed plus the users'
  queries the network lost make ``run.rounds``.
- mechanism: for a procurement market, the header's mechanism run again on the logged bids (with the run's
  mechanism stream and the accepted feedback) gives each round record; elsewhere the records fit the
  mechanism where they show it (resampling flags, MOSAIC's proposal, its unpaid or rebate-free variants).
- summary, summary.json, config.toml: the footer is what the records add up to, and the run's files say what
  the log says.
- chain: the log's hash chain (``eventlog.chain_digest``, keyed with ``key`` if the run was) recomputed from
  the bytes is the digest in ``events.digest`` and in summary.json, and ``digest`` if one is given. Those two
  files sit beside the log and a forger can rewrite them too: only a digest kept elsewhere (the one ``run``
  printed, given as ``digest``) or a keyed chain whose key the forger lacks makes this check conclusive.
- resimulate: the logged config and seed run again, through ``run.run_config``, give the same log bytes.

Each check is one ``Check`` in ``CHECKS`` (or one function called by ``verify_run``): adding one is adding
one there.
"""

from __future__ import annotations

import json
import math
import tempfile
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from market.core.ledger import EXTERNAL, to_minor
from market.core.mechanisms.base import ReverseOutcome
from market.core.wire import Bid, CallForBids, WireError
from market.runtime.builders import logged_scenario
from market.runtime.config import ConfigError
from market.runtime.eventlog import EventLogError, chain_digest, is_compact, iter_frames
from market.runtime.records import (
    AgentFault,
    Expired,
    FeedbackAccepted,
    Footer,
    Header,
    LedgerTransfer,
    MessageDropped,
    MessageSent,
    Record,
    Rejected,
    RoundClosed,
)
from market.runtime.scenario import Scenario
from market.runtime.summary import SummaryAccumulator
from market.runtime.world import World

LOG = "events.msgpack"
OPENING = "opening balance"
ROUND_MEMOS = ("payment", "rebate")  # settled by an auctioneer or platform, just before its round record
SERVING_COST = "serving cost"  # a procurement provider's cost of serving a round it won
BILL_KINDS = ("posted_answer", "scored_answer")  # answers that carry their bill, paid by the user on receipt
QUERY_KINDS = ("query", "ad_query")  # a user's query: each one opens a round
RESAMPLING = ("rosa",)  # mechanism names containing one of these may resample bids (flag "modified")
_BILLS_KEPT = 64  # unpaid bills remembered per (provider, user): bills are paid in the round they arrive


class UnusableRun(ConfigError):
    """Not a run to verify: a missing or empty directory, no log in it, or a file that is no event log."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check: passed or not, and one line saying what was found."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: ok ({self.detail})" if self.ok else f"{self.name}: FAILED: {self.detail}"


@dataclass
class VerifyReport:
    """Every check run on a run directory, in order; ``ok`` only if there is at least one and all passed."""

    run_dir: Path
    checks: list[CheckResult] = field(default_factory=list)
    digest: str | None = None  # the expected hash-chain digest, as given
    key: bytes | None = None  # the hash chain's key, as given
    footer: dict[str, Any] | None = None  # the footer's summary (None: the run did not finish)
    recomputed: dict[str, Any] = field(default_factory=dict)  # the summary the records add up to

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]


@dataclass
class Frame:
    """Where a record sits in the log: its index (the header is 0) and the byte offset its frame starts at."""

    index: int
    offset: int
    what: str = "frame"

    def at(self) -> str:
        return f"{self.what} {self.index} (byte {self.offset})"


@dataclass
class LogFacts:
    """What every check may read: the header, the footer, how the log ended, the logged Scenario."""

    header: Header
    scenario: Scenario | None
    footer: Footer | None = None
    torn: str | None = None
    frames: int = 0
    bytes: int = 0  # where the footer starts

    def end(self) -> Frame:
        """Where a check of the whole log points: the footer."""
        return Frame(self.frames - 1, self.bytes, "the footer, frame")


class Check:
    """A reconciliation over the records: ``observe`` each, then ``result``. Keep state flat in the rounds."""

    name = "check"

    def __init__(self, facts: LogFacts) -> None:
        self.facts = facts
        self.problem: str | None = None  # the first inconsistency found

    def fail(self, where: Frame, what: str) -> None:
        if self.problem is None:
            self.problem = f"{where.at()}: {what}"

    def observe(self, where: Frame, rec: Record) -> None:
        raise NotImplementedError

    def finish(self) -> str:
        """Checks made at the end; returns the detail of a pass (call ``fail`` for a failure)."""
        raise NotImplementedError

    def result(self) -> CheckResult:
        detail = self.finish()
        return CheckResult(self.name, self.problem is None, self.problem or detail)


# -- transfers ------------------------------------------------------------------------------------


class Transfers(Check):
    """Every ledger transfer is one the market makes, explained by a round, a bill, a win or the opening."""

    name = "transfers"

    def __init__(self, facts: LogFacts) -> None:
        super().__init__(facts)
        self.opening = True  # still in the builder's openings, right after the header
        self.opened: set[str] = set()
        self.pending: list[tuple[Frame, LedgerTransfer]] = []  # payments/rebates awaiting their round record
        self.payee: dict[Any, str] = {}  # index (or (query, index)) -> the account that index always is
        self.house: str | None = None  # the other side of every round payment (the user, or the platform)
        self.unpaid_wins: Counter = Counter()  # provider -> won rounds not yet charged a serving cost
        self.bills: dict[tuple[str, str], list[int]] = defaultdict(list)  # (provider, user) -> billed amounts
        self.counts: Counter = Counter()

    def observe(self, where: Frame, rec: Record) -> None:
        if isinstance(rec, LedgerTransfer):
            self._transfer(where, rec)
            return
        if not isinstance(rec, Header):
            self.opening = False
        if isinstance(rec, RoundClosed):
            self._round(where, rec)
        elif isinstance(rec, MessageSent) and rec.kind in BILL_KINDS:
            try:
                cost = getattr(rec.message(), "cost")
            except WireError as exc:
                self.fail(where, f"{rec.kind!r} from {rec.src!r}: undecodable frame ({exc})")
                return
            bills = self.bills[(rec.src, rec.dst)]
            bills.append(to_minor(cost))
            del bills[:-_BILLS_KEPT]

    def _transfer(self, where: Frame, t: LedgerTransfer) -> None:
        self.counts[t.memo] += 1
        if t.amount_minor < 0 or t.src == t.dst:
            self.fail(where, f"transfer of {t.amount_minor} from {t.src!r} to {t.dst!r}: the ledger moves only "
                             "non-negative amounts between two accounts")
        elif t.memo == OPENING:
            if not self.opening or t.src != EXTERNAL or t.dst in self.opened:
                why = "after the run started" if not self.opening else "not a first opening from external"
                self.fail(where, f"opening balance of {t.amount_minor} from {t.src!r} to {t.dst!r} {why}: money "
                                 "created from nothing")
            self.opened.add(t.dst)
            return
        elif t.src == EXTERNAL:
            self.fail(where, f"transfer of {t.amount_minor} from {EXTERNAL!r} to {t.dst!r} ({t.memo}): only "
                             "opening balances come from outside the market")
        elif t.memo in ROUND_MEMOS:
            self.pending.append((where, t))
        elif t.memo == SERVING_COST:
            if t.dst != EXTERNAL or self.unpaid_wins[t.src] <= 0:
                self.fail(where, f"serving cost of {t.amount_minor} from {t.src!r} to {t.dst!r}: no round won by "
                                 f"{t.src!r} awaits it")
            else:
                self.unpaid_wins[t.src] -= 1
        else:
            bills = self.bills.get((t.dst, t.src), [])
            if t.amount_minor in bills:
                bills.remove(t.amount_minor)
            else:
                self.fail(where, f"transfer of {t.amount_minor} from {t.src!r} to {t.dst!r} ({t.memo!r}): no "
                                 "round, bill or opening explains it")
        self.opening = False

    def _round(self, where: Frame, rec: RoundClosed) -> None:
        due = [(i, p) for i, p in enumerate(rec.payments_minor) if p]
        paid, self.pending = self.pending, []
        if len(paid) != len(due):
            self.fail(where, f"round {rec.round}: its record has {len(due)} nonzero payments, but {len(paid)} "
                             f"payment/rebate transfers precede it")
            return
        procurement = "present" in rec.extra
        for (i, p), (at, t) in zip(due, paid):
            memo = "payment" if p > 0 else "rebate"
            if t.memo != memo or t.amount_minor != abs(p):
                self.fail(at, f"round {rec.round}: transfer {t.memo} of {t.amount_minor}, but the round record "
                              f"says index {i} pays {p}")
                return
            ours, theirs = (t.dst, t.src) if procurement or memo == "rebate" else (t.src, t.dst)
            key: Any = i if procurement else (rec.query_id, i)
            if self.payee.setdefault(key, ours) != ours:
                self.fail(at, f"round {rec.round}: index {i}'s {memo} goes to/from {ours!r}, but earlier rounds "
                              f"settled index {i} with {self.payee[key]!r}")
                return
            named = rec.extra.get("user") if procurement else None  # a crowd's auction names the user who pays
            if named is not None:
                if theirs != named:
                    self.fail(at, f"round {rec.round}: {memo} settled with {theirs!r}, but the round's user is "
                                  f"{named!r}")
                    return
            elif self.house is None:
                self.house = theirs
            if named is None and theirs != self.house:
                self.fail(at, f"round {rec.round}: {memo} settled with {theirs!r}, earlier rounds with "
                              f"{self.house!r}")
                return
            if rec.winner and ours != rec.winner:
                self.fail(at, f"round {rec.round}: payment to {ours!r}, but the round's winner is {rec.winner!r}")
                return
        if rec.winner:
            self.unpaid_wins[rec.winner] += 1

    def finish(self) -> str:
        if self.pending:
            at, t = self.pending[0]
            self.fail(at, f"{t.memo} of {t.amount_minor} from {t.src!r} to {t.dst!r}: no round record follows it")
        return ", ".join(f"{n} {memo}" for memo, n in sorted(self.counts.items())) or "no transfers"


# -- money ----------------------------------------------------------------------------------------


class Money(Check):
    """Openings are the builder's, balances sum to 0 and are the footer's."""

    name = "money"

    def __init__(self, facts: LogFacts) -> None:
        super().__init__(facts)
        self.balances: Counter = Counter()
        self.openings: dict[str, int] = {}
        self.first = Frame(0, 0)

    def observe(self, where: Frame, rec: Record) -> None:
        if isinstance(rec, LedgerTransfer):
            self.balances[rec.src] -= rec.amount_minor
            self.balances[rec.dst] += rec.amount_minor
            if rec.memo == OPENING:
                self.openings[rec.dst] = self.openings.get(rec.dst, 0) + rec.amount_minor
                if len(self.openings) == 1:
                    self.first = where

    def finish(self) -> str:
        expected = builder_openings(self.facts)
        if expected is not None and expected != self.openings:
            a = min(a for a in {*expected, *self.openings} if expected.get(a, 0) != self.openings.get(a, 0))
            self.fail(self.first, f"opening balance of {a!r} is {self.openings.get(a, 0)}, but the builder opens "
                                  f"it with {expected.get(a, 0)} for this config and seed")
        total = sum(self.balances.values())
        end = self.facts.end()
        if total != 0:
            self.fail(end, f"balances sum to {total}, expected 0")
        footer = self.facts.footer
        if footer is not None:
            logged = footer.summary.get("balances")
            theirs = {a: b for a, b in logged.items() if b} if isinstance(logged, dict) else logged
            mine = {a: b for a, b in self.balances.items() if b}
            if theirs != mine:
                self.fail(end, f"the footer's balances {_short(theirs)} are not the log's {_short(mine)}")
        return (f"{len(self.openings)} openings as the builder makes them, {len(self.balances)} accounts, "
                f"balances sum to {total}" if expected is not None else
                f"{len(self.balances)} accounts, balances sum to {total} (no builder: openings not compared)")


def builder_openings(facts: LogFacts) -> dict[str, int] | None:
    """The opening balances the logged Scenario's builder makes for the logged config and seed (a world
    built without a log, never run), or None for a log with no builder."""
    if facts.scenario is None:
        return None
    world = World(facts.header.config, facts.header.seed, None)
    facts.scenario.build(world, facts.header.config)
    return {a: b for a, b in world.ledger.balances().items() if a != EXTERNAL and b}


# -- rounds ---------------------------------------------------------------------------------------


class Rounds(Check):
    """Round records are numbered without a gap, and a finished run closed the rounds its config asked for.

    They close in order, 0, 1, 2, ..., except where auctions overlap (``crowd``): an auction may close before
    an older one whose call for bids is out and that has not closed yet (its invited providers all bid
    first). Each round still closes once, and none is skipped by the end."""

    name = "rounds"

    def __init__(self, facts: LogFacts) -> None:
        super().__init__(facts)
        self.closed = 0  # rounds closed; every round below ``self.next`` has closed
        self.next = 0
        self.ahead: set[int] = set()  # rounds closed before an older one (overlapping auctions)
        self.called: set[int] = set()  # rounds at or past ``self.next`` whose call for bids is out
        self.queries = 0
        self.lost: Counter = Counter()  # query sender -> queries the network lost
        self.strangers: set[str] = set()  # senders the market refused as no agent of it
        self.crashed: set[str] = set()
        self.senders: set[str] = set()  # who sent queries

    def observe(self, where: Frame, rec: Record) -> None:
        if isinstance(rec, RoundClosed):
            r = rec.round
            if r != self.next and (r < self.next or r in self.ahead or self.next not in self.called):
                self.fail(where, f"round record {r}, expected round {self.next} (rounds are numbered 0, 1, 2, ... "
                                 "as they close; a later one only while older ones are open)")
            elif r == self.next:
                self.next += 1
                while self.next in self.ahead:
                    self.ahead.discard(self.next)
                    self.next += 1
                self.called = {c for c in self.called if c >= self.next}  # the auctions still open: a few
            else:
                self.ahead.add(r)
            self.closed += 1
        elif isinstance(rec, MessageSent) and rec.kind == "call_for_bids":
            try:
                called = rec.message().round  # type: ignore[attr-defined]
            except (WireError, AttributeError):
                called = None
            if type(called) is int and called >= self.next:
                self.called.add(called)
        elif isinstance(rec, MessageSent) and rec.kind in QUERY_KINDS:
            self.queries += 1
            self.senders.add(rec.src)
        elif isinstance(rec, MessageDropped) and rec.kind in QUERY_KINDS and rec.reason != "duplicate":
            self.lost[rec.src] += 1
        elif isinstance(rec, Rejected) and rec.code == "unknown_agent":
            self.strangers.add(rec.offender)
        elif isinstance(rec, AgentFault) and rec.event == "crash":
            self.crashed.add(rec.agent)

    def finish(self) -> str:
        rounds = self._expected()
        lost = sum(n for src, n in self.lost.items() if src not in self.strangers)
        end = self.facts.end()
        if self.ahead:
            self.fail(end, f"round {self.next} never closed, but {len(self.ahead)} later ones did (first "
                           f"{min(self.ahead)})")
        if self.facts.footer is None or not isinstance(rounds, int) or not self.queries:
            return f"{self.closed} rounds closed, numbered without a gap"
        users_crashed = bool(self.crashed & (self.senders - self.strangers))  # a user that died sent fewer
        asked = self.facts.header.config["run"]["rounds"]
        what = "run.rounds" if rounds == asked else f"the scenario's round records for run.rounds {asked}"
        if self.closed + lost > rounds or (self.closed + lost < rounds and not users_crashed):
            self.fail(end, f"{self.closed} rounds closed + {lost} queries lost = {self.closed + lost}, but the "
                           f"header's config asks for {rounds} ({what})")
        return f"{self.closed} rounds closed + {lost} queries lost = {rounds} ({what})"

    def _expected(self) -> int | None:
        """The round records the logged config closes: the scenario's count (``Scenario.rounds``) when it can be
        built, else ``run.rounds``; None if the header has no integer ``run.rounds``."""
        config = self.facts.header.config
        rounds = config.get("run", {}).get("rounds")
        if not isinstance(rounds, int) or isinstance(rounds, bool):
            return None
        scenario = self.facts.scenario
        return rounds if scenario is None else int(scenario.rounds(config))


# -- mechanism ------------------------------------------------------------------------------------


class Mechanism(Check):
    """The round records are what the header's mechanism makes of the logged bids, where that can be run
    again (a procurement Scenario with an ``instance``); elsewhere they fit the mechanism where they show it."""

    name = "mechanism"

    def __init__(self, facts: LogFacts) -> None:
        super().__init__(facts)
        config = facts.header.config
        self.mechanism = str(config.get("mechanism", {}).get("name", ""))
        self.proposal = config.get("market", {}).get("proposal")
        self.modified = 0
        self.shown = 0
        self.rerun = AuctionRerun.of(facts)

    def observe(self, where: Frame, rec: Record) -> None:
        if self.rerun is not None:
            problem = self.rerun.observe(rec)
            if problem is not None:
                self.fail(where, problem)
        if not isinstance(rec, RoundClosed):
            return
        flags = rec.extra.get("modified")
        if isinstance(flags, list) and any(flags):
            self.modified += 1
            if not any(r in self.mechanism for r in RESAMPLING):
                self.fail(where, f"round {rec.round} resampled bids, which mechanism {self.mechanism!r} never does")
        if "proposal" in rec.extra:
            self.shown += 1
            if self.proposal in ("baseline", "context") and rec.extra["proposal"] != self.proposal:
                self.fail(where, f"round {rec.round} sampled from the {rec.extra['proposal']!r} proposal, the "
                                 f"header's market.proposal is {self.proposal!r}")
            if self.mechanism.endswith("nopay") and any(rec.payments_minor):
                self.fail(where, f"round {rec.round} charged {list(rec.payments_minor)}, mechanism "
                                 f"{self.mechanism!r} charges nothing")
            if self.mechanism == "mosaic" and any(p < 0 for p in rec.payments_minor):
                self.fail(where, f"round {rec.round} paid a rebate, which mechanism 'mosaic' never does")

    def finish(self) -> str:
        if not self.mechanism:
            return "no mechanism in the header"
        if self.rerun is not None:
            return (f"{self.mechanism!r} run again on the logged bids gives all {self.rerun.rounds} round records "
                    f"({self.modified} with resampled bids)")
        return f"{self.mechanism!r}: {self.modified} rounds with resampled bids, {self.shown} ad rounds"


def _close(a: Any, b: float) -> bool:
    """Equal within 1e-9 relative (NaN equals NaN: an absent bid)."""
    if not isinstance(a, (int, float)) or isinstance(a, bool):
        return False
    return a == b or (a != a and b != b) or math.isclose(a, b, rel_tol=1e-9)


class AuctionRerun:
    """The header's reverse-auction mechanism, fed the logged calls for bids, bids and accepted feedback in log
    order (the order the auctioneer acted in), with the run's mechanism stream: each round record must be
    its outcome. Winners match exactly; payments within one minor unit and bids within 1e-9, since another
    BLAS kernel may round a dot product's last bit differently."""

    def __init__(self, facts: LogFacts, instance: Any) -> None:
        from market.core.seeding import derive_rng

        self.providers: tuple[str, ...] = tuple(instance.providers)
        self.index = {p: i for i, p in enumerate(self.providers)}
        self.user = instance.user
        self.mechanism = instance.mechanism.build()
        self.name = repr(facts.header.config.get("mechanism", {}).get("name", type(self.mechanism).__name__))
        self.rng = derive_rng(facts.header.seed, "mechanism")  # World.rng("mechanism")
        self.contexts: dict[int, np.ndarray] = {}  # open round -> context
        self.bids: dict[int, dict[int, float]] = {}  # open round -> provider index -> first bid sent
        self.void = False  # the user could not pay: the round is void
        self.awaiting: dict[int, tuple[np.ndarray, Any]] = {}  # served round -> (context, outcome)
        self.rounds = 0

    @classmethod
    def of(cls, facts: LogFacts) -> AuctionRerun | None:
        scenario = facts.scenario
        if scenario is None or scenario.instance is None:
            return None
        return cls(facts, scenario.instance(facts.header.config, facts.header.seed))

    def observe(self, rec: Record) -> str | None:
        if isinstance(rec, MessageSent) and rec.kind in ("call_for_bids", "bid"):
            try:
                msg = rec.message()
            except WireError as exc:
                return f"{rec.kind!r} from {rec.src!r}: undecodable frame ({exc})"
            if isinstance(msg, CallForBids):
                self.contexts = {msg.round: np.asarray(msg.context, dtype=float)}
                self.bids = {msg.round: {}}
                self.void = False
            elif isinstance(msg, Bid) and rec.src in self.index:
                self.bids.get(msg.round, {}).setdefault(self.index[rec.src], float(msg.amount))
        elif isinstance(rec, Rejected) and rec.code == "budget" and rec.offender == self.user:
            self.void = True
        elif isinstance(rec, FeedbackAccepted):
            served = self.awaiting.pop(rec.round, None)
            if served is None:
                return f"feedback accepted for round {rec.round}, which no served round awaits"
            self.mechanism.update(served[0], served[1], rec.reward)
        elif isinstance(rec, Expired) and rec.what == "feedback":
            self.awaiting.pop(rec.round, None)
        elif isinstance(rec, RoundClosed):
            return self._closed(rec)
        return None

    def _closed(self, rec: RoundClosed) -> str | None:
        self.rounds += 1
        n = len(self.providers)
        context = self.contexts.get(rec.round)
        present = rec.extra.get("present")
        if context is None:
            return f"round {rec.round}: no call for bids precedes its record"
        if not isinstance(present, list) or len(present) != n or len(rec.payments_minor) != n:
            return f"round {rec.round}: its record holds {len(rec.payments_minor)} payments, expected {n}"
        sent = self.bids.get(rec.round, {})
        bids = np.full(n, np.nan)
        for i, here in enumerate(present):
            if here:
                if i not in sent:
                    return f"round {rec.round}: {self.providers[i]!r} is marked present but sent no bid"
                bids[i] = sent[i]
        active = np.asarray(present, dtype=bool)
        if active.any():
            outcome = self.mechanism.select(context, bids, self.rng, active)
        else:
            outcome = ReverseOutcome(None, np.zeros(n), bids.copy(), np.zeros(n, dtype=bool))
        winner = self.providers[outcome.winner] if outcome.winner is not None and not self.void else ""
        pay = [0] * n if self.void else [to_minor(float(p)) for p in outcome.payments]
        if rec.winner != winner:
            return (f"round {rec.round}: the record's winner is {rec.winner!r}; mechanism "
                    f"{self.name} on the logged bids picks {winner!r}")
        if any(abs(a - b) > 1 for a, b in zip(pay, rec.payments_minor)):
            return (f"round {rec.round}: the record's payments are {list(rec.payments_minor)}; mechanism "
                    f"{self.name} on the logged bids pays {pay}")
        resampled = rec.extra.get("resampled")
        if not isinstance(resampled, list) or len(resampled) != n or not all(
                _close(a, float(b)) for a, b in zip(resampled, outcome.resampled)):
            return f"round {rec.round}: the record's resampled bids are not those the mechanism saw"
        if outcome.winner is not None and not self.void:
            self.awaiting[rec.round] = (context, outcome)
        self.contexts, self.bids = {}, {}
        return None


CHECKS: tuple[type[Check], ...] = (Transfers, Money, Rounds, Mechanism)


# -- the run directory ----------------------------------------------------------------------------


def log_path(run_dir: Path) -> Path:
    """The run's log, or ``UnusableRun`` naming what is missing."""
    d = Path(run_dir)
    if not d.exists():
        raise UnusableRun(f"run directory: {str(d)!r} does not exist")
    if not d.is_dir():
        raise UnusableRun(f"run directory: {str(d)!r} is a file, expected a run directory holding {LOG}")
    path = d / LOG
    if not path.is_file():
        raise UnusableRun(f"run directory: {str(d)!r} has no {LOG}; expected a run directory")
    if path.stat().st_size == 0:
        raise UnusableRun(f"run directory: {str(path)!r} is empty; no run wrote it")
    return path


def read_header(path: Path) -> Header:
    """The log's first record, which must be its header; ``UnusableRun`` if the file is no event log."""
    try:
        for _, rec, why in iter_frames(path):
            if isinstance(rec, Header):
                return rec
            raise UnusableRun(f"{path}: the first record is {why or type(rec).__name__}, expected the header")
    except EventLogError as exc:
        raise UnusableRun(str(exc)) from None
    raise UnusableRun(f"{path}: no record at all, expected a header first")


def verify_run(run_dir: Path, *, digest: str | None = None, key: bytes | None = None, resimulate: bool = False,
               trust_builder: bool = False) -> VerifyReport:
    """Check a run directory (see the module docstring). Raises ``UnusableRun`` for a missing or empty
    directory or a file that is no log, ``BuilderRefused`` for a builder outside the installed scenarios
    (nothing imported) unless ``trust_builder``, and ``ConfigError`` for a ``digest`` that is no hex digest."""
    if digest is not None:
        digest = digest.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"--digest: got {digest!r}, expected the 64 hex digits `run` printed as the log digest")
    path = log_path(run_dir)
    header = read_header(path)
    spec = header.config.get("scenario", {}).get("builder") if isinstance(header.config.get("scenario"), dict) \
        else None
    scenario = logged_scenario(spec, trust_builder=trust_builder, config=header.config) if spec else None
    facts = LogFacts(header, scenario)
    report = VerifyReport(Path(run_dir), digest=digest, key=key)
    checks = [make(facts) for make in CHECKS]
    summary = SummaryAccumulator()
    observers = scenario.observers(header.config, header.seed) if scenario is not None else []
    readable = _stream(path, facts, checks, summary, observers)
    report.checks.append(readable)
    recomputed = summary.result()
    if observers:
        recomputed["metrics"] = {k: v for m in observers for k, v in m.result().items()}
    report.recomputed = recomputed
    report.footer = facts.footer.summary if facts.footer is not None else None
    if not readable.ok:
        return report
    report.checks.append(_chain_check(Path(run_dir), path, digest, key))
    report.checks.extend(c.result() for c in checks)
    report.checks.append(_summary_check(facts, recomputed))
    report.checks.append(_summary_json_check(Path(run_dir), facts))
    report.checks.append(_config_check(Path(run_dir), header))
    if resimulate:
        report.checks.append(resimulation(path, header, scenario))
    return report


def _stream(path: Path, facts: LogFacts, checks: list[Check], summary: SummaryAccumulator,
            observers: list[Any]) -> CheckResult:
    """One pass over the log feeding every check; the "log" check: readable, one header, finished."""
    start, index, last, frames = 0, -1, 0, 0
    compact = is_compact(path)
    try:
        for end, rec, why in iter_frames(path):
            index += 1
            if rec is None:  # a torn tail starts at ``end``
                start = end
            elif end != last:  # a new frame (records of one compact block share its end): where it starts
                start, last, frames = last, end, frames + 1
            where = Frame(index, start, "record" if compact else "frame")
            if rec is None:
                facts.torn = why
                return CheckResult("log", False, f"{where.at()}: torn ({why}): the run did not finish")
            if facts.footer is not None:
                return CheckResult("log", False, f"{where.at()}: a {type(rec).__name__} record after the footer")
            if isinstance(rec, Footer):
                facts.footer, facts.bytes = rec, where.offset
                continue
            if isinstance(rec, Header) and index:
                return CheckResult("log", False, f"{where.at()}: a second header")
            for c in checks:
                c.observe(where, rec)
            summary.observe(rec)
            for m in observers:
                m.observe(rec)
    except EventLogError as exc:
        return CheckResult("log", False, f"after frame {index} (byte {start}): {exc}")
    facts.frames = index + 1
    held = f"{facts.frames} records in {frames} frames" if compact else f"{facts.frames} frames"
    if facts.footer is None:
        return CheckResult("log", False, f"{held} and no footer: the run did not finish")
    return CheckResult("log", True, f"{held}, {last} bytes, header first, footer last")


def _chain_check(run_dir: Path, path: Path, digest: str | None, key: bytes | None) -> CheckResult:
    """The hash chain recomputed from the log's bytes against every copy of its digest: ``digest`` (kept away
    from the run directory: conclusive), ``events.digest`` and summary.json's "log" entry (beside the log)."""
    chain = chain_digest(path, key)
    try:
        entry = json.loads((run_dir / "summary.json").read_text(encoding="utf-8")).get("log")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        entry = None  # the summary.json check says what is wrong with the file
    keyed = entry.get("keyed") if isinstance(entry, dict) else None
    if keyed is True and key is None:
        return CheckResult("chain", False, "the run keyed its chain: give its key (--key-file) to check it")
    if keyed is False and key is not None:
        return CheckResult("chain", False, "a key was given, but summary.json says the run's chain is unkeyed")
    copies: list[tuple[str, Any]] = []
    if digest is not None:
        copies.append(("--digest", digest))
    try:
        copies.append(("events.digest", (run_dir / "events.digest").read_text(encoding="utf-8").strip()))
    except (OSError, UnicodeDecodeError):
        copies.append(("events.digest", None))
    copies.append(("summary.json", entry.get("digest") if isinstance(entry, dict) else None))
    for name, value in copies:
        if value is None:
            return CheckResult("chain", False, f"{name} holds no digest; the log's chain is {chain.digest}")
        if value != chain.digest:
            return CheckResult("chain", False, f"the log's {'keyed ' if key else ''}chain is {chain.digest}, "
                                               f"{name} says {_short(value)}")
    if isinstance(entry, dict) and (entry.get("frames"), entry.get("bytes")) != (chain.frames, chain.bytes):
        return CheckResult("chain", False, f"summary.json says {entry.get('frames')} frames and {entry.get('bytes')} "
                                           f"bytes, the log has {chain.frames} and {chain.bytes}")
    where = ", ".join(name for name, _ in copies)
    if digest is None and key is None:
        return CheckResult("chain", True, f"{chain.digest} as in {where} (both beside the log: give the digest run "
                                          "printed, --digest, to rule out a rewrite of all three)")
    return CheckResult("chain", True, f"{'keyed ' if key else ''}{chain.digest} as in {where}")


def _summary_check(facts: LogFacts, recomputed: dict[str, Any]) -> CheckResult:
    assert facts.footer is not None, "the summary is checked only for a finished log"
    footer = facts.footer.summary
    diffs = sorted(k for k in set(footer) | set(recomputed) if footer.get(k) != recomputed.get(k))
    if diffs:
        k = diffs[0]
        return CheckResult("summary", False, f"the footer's {k!r} is {_short(footer.get(k))}, the records add up to "
                                             f"{_short(recomputed.get(k))} ({len(diffs)} keys differ: {diffs})")
    return CheckResult("summary", True, f"the footer is what the records add up to ({len(footer)} keys)")


def _summary_json_check(run_dir: Path, facts: LogFacts) -> CheckResult:
    assert facts.footer is not None, "summary.json is checked only against a finished log"
    path = run_dir / "summary.json"
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CheckResult("summary.json", False, f"{path} is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return CheckResult("summary.json", False, f"{path} is unreadable: {exc}")
    if not isinstance(written, dict):
        return CheckResult("summary.json", False, f"{path} holds {type(written).__name__}, expected an object")
    written.pop("log", None)  # the log's digest, which the footer cannot hold
    footer = json.loads(json.dumps(facts.footer.summary, sort_keys=True))  # as JSON gives it back
    diffs = sorted(k for k in set(footer) | set(written) if footer.get(k) != written.get(k))
    if diffs:
        k = diffs[0]
        return CheckResult("summary.json", False, f"{k!r} is {_short(written.get(k))}, the footer says "
                                                  f"{_short(footer.get(k))} ({len(diffs)} keys differ: {diffs})")
    return CheckResult("summary.json", True, "same as the footer")


def _config_check(run_dir: Path, header: Header) -> CheckResult:
    path = run_dir / "config.toml"
    try:
        written = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CheckResult("config.toml", False, f"{path} is missing")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return CheckResult("config.toml", False, f"{path} is unreadable: {exc}")
    diff = next(_differences(header.config, written), None)
    if diff is not None:
        return CheckResult("config.toml", False, diff)
    return CheckResult("config.toml", True, "same values as the header's config")


def _differences(logged: Any, written: Any, key: str = "") -> Iterator[str]:
    """Where a config.toml differs from the header's config, key by key (ints and floats compare by value)."""
    if isinstance(logged, dict) and isinstance(written, dict):
        for k in sorted(set(logged) | set(written)):
            sub = f"{key}.{k}" if key else k
            if k not in written:
                yield f"{sub}: in the header's config, missing from config.toml"
            elif k not in logged:
                yield f"{sub}: in config.toml ({_short(written[k])}), not in the header's config"
            else:
                yield from _differences(logged[k], written[k], sub)
    elif isinstance(logged, list) and isinstance(written, list) and len(logged) == len(written):
        for i, (a, b) in enumerate(zip(logged, written)):
            yield from _differences(a, b, f"{key}[{i}]")
    elif not _same(logged, written):
        yield f"{key}: config.toml says {_short(written)}, the header says {_short(logged)}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."


# -- resimulation ---------------------------------------------------------------------------------


def resimulation(path: Path, header: Header, scenario: Scenario | None) -> CheckResult:
    """Run the header's config and seed again (``run.run_config``, in a temporary directory) and compare the
    logs byte for byte; a difference is named by its offset and the frame it falls in."""
    from market.runtime.run import run_config  # run imports this module's callers; import at use

    if scenario is None:
        return CheckResult("resimulate", False, "the header names no builder: nothing to run again")
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        run_config(header.config, scenario, header.seed, Path(tmp))
        fresh = Path(tmp) / LOG
        offset = _first_difference(path, fresh)
        if offset is None:
            return CheckResult("resimulate", True, f"a fresh run gives the same {path.stat().st_size} bytes")
        index = _frame_at(path, offset)
        ours, theirs = path.stat().st_size, fresh.stat().st_size
        return CheckResult("resimulate", False, f"the log differs from a fresh run of its config and seed at byte "
                                                f"{offset} (frame {index}; {ours} bytes against {theirs}); a run "
                                                "under another BLAS kernel or package version may differ too")


def _first_difference(a: Path, b: Path, chunk: int = 1 << 20) -> int | None:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        pos = 0
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                n = min(len(x), len(y))
                return pos + next((i for i in range(n) if x[i] != y[i]), n)
            if not x:
                return None
            pos += len(x)


def _frame_at(path: Path, offset: int) -> int:
    """Index of the frame holding byte ``offset`` (the number of frames, if it is past the last)."""
    index = 0
    try:
        for end, _, _ in iter_frames(path):
            if offset < end:
                return index
            index += 1
    except EventLogError:
        pass
    return index
