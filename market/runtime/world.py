"""A run: one process, one virtual-time loop, one bus, one ledger, one event log.

Builders add agents to a ``World``; ``run`` starts them, waits for the principal agents (those
whose end is the end of the run, e.g. users with a fixed number of queries), lets messages in
flight land, stops everyone, and writes the footer. The world also kills and restarts agents on
the fault model's schedule, writes checkpoints at quiescent points between rounds, and resumes a
killed run from its last checkpoint so that it ends exactly as an uninterrupted run would.

An agent's exception is contained: the agent is marked crashed (an "fault" record with event
"crashed", and a "reject" record with code "agent_exception" naming the exception's type and message),
its port is closed like a crashed agent's, and the market goes on without it; the run ends with a
footer whose summary counts it under ``faults.crashed``. Two exceptions to that: the auctioneer's
(it is the market: no round closes without it, so its exception is a fault of the simulator), and
any agent's under ``fail_fast``: the fault is logged, the run stops at once with ``AgentFailed``, and
no footer or summary is written, so the log reads as a run that did not finish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from market import __version__
from market.core.ledger import Ledger, LedgerError, Transfer
from market.core.seeding import derive_rng
from market.runtime.agent import Agent
from market.runtime.bus import Bus, Partition
from market.runtime.checkpoint import CheckpointError, Resume, check_checkpoint, pack_state
from market.runtime.config import dump_toml
from market.runtime.eventlog import EventLogError, EventLogWriter, chain_digest, cut_log, iter_frames
from market.runtime.faults import Crash
from market.runtime.kernel import run as run_virtual
from market.runtime.records import (
    LOG_SCHEMA,
    AgentFault,
    Checkpoint,
    Footer,
    Header,
    LedgerTransfer,
    Record,
    Rejected,
)
from market.runtime.rundir import CONFIG, DIGEST, LOG, SUMMARY, RunDirError, atomic_write_text
from market.runtime.summary import SummaryAccumulator

# Memos the runtime itself writes (auction payments, the ads platform's rebates, funding): an agent's
# own payment may not pass for one of them.
RESERVED_MEMOS = frozenset({"payment", "rebate", "opening balance"})
MAX_MEMO_CHARS = 64


class AgentFailed(RuntimeError):
    """An agent's exception ended the run (under ``fail_fast``, or the auctioneer's)."""


class PaymentRefused(LedgerError):
    """A payment a wallet would not make; it was logged as a "payment_refused" reject and nothing moved."""


class Wallet:
    """An agent's handle on its own ledger account: it can pay out of it and read its balance, nothing else.

    A capability: it holds the account's name (for the agent to read; the payment does not trust it) and
    two functions the world made for that account, and no attribute, public or private, that is the
    ledger. Inside one Python process that guarantee is about attribute paths only (closure cells and
    the garbage collector reach anything); money that moves outside a round is visible in the log,
    where every transfer is recorded with its memo.
    """

    __slots__ = ("account", "_pay", "_balance")

    def __init__(self, account: str, pay: Callable[[str, int, str], None], balance: Callable[[], int]) -> None:
        self.account = account
        self._pay = pay
        self._balance = balance

    def pay(self, dst: str, amount: int, memo: str) -> None:
        """Move ``amount`` minor units to account ``dst``. Raises ``PaymentRefused`` (after logging it)
        for an unknown account, an amount that is not a non-negative integer or exceeds the overdraft, or
        a memo that is not 1-64 printable characters or is one of the runtime's ``RESERVED_MEMOS``."""
        self._pay(dst, amount, memo)

    @property
    def balance(self) -> int:
        return self._balance()


def payment_refusal(dst: Any, amount: Any, memo: Any) -> tuple[str, str] | None:
    """(field, why) if a wallet payment is malformed before the ledger sees it; None if it may go on."""
    if type(dst) is not str:
        return "dst", f"got {dst!r}, expected an account name"
    if type(amount) is not int or amount < 0:
        return "amount", f"got {amount!r}, expected a non-negative integer of minor units"
    if type(memo) is not str or not 1 <= len(memo) <= MAX_MEMO_CHARS or not memo.isprintable():
        return "memo", f"got {memo!r:.80}, expected 1 to {MAX_MEMO_CHARS} printable characters"
    if memo in RESERVED_MEMOS:
        return "memo", f"got {memo!r}, which only the runtime writes ({sorted(RESERVED_MEMOS)})"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 512 else text[:509] + "..."


@dataclass(frozen=True, slots=True)
class ResumeCut:
    """Where a resumed run cut its log: nothing after the resume point is dropped, it is moved aside."""

    kept_bytes: int
    moved_bytes: int
    moved_to: Path | None
    t: float
    checkpoint: bool  # False: the log had no checkpoint, the run starts over after the header
    round: int | None  # rounds closed at the checkpoint

    def __str__(self) -> str:
        where = (f"up to the checkpoint at round {self.round} (t={self.t:g})" if self.checkpoint
                 else "up to the header (no checkpoint: the run starts over)")
        moved = (f"moved {self.moved_bytes} bytes after it to {self.moved_to.name}" if self.moved_to is not None
                 else "nothing after it")
        return f"resume: kept {self.kept_bytes} bytes {where}, {moved}"


class _Gate:
    """Passes records on to its observers once opened: the log's writer observes through it, so the
    records written when the log is created (seen while the world was built) are not seen twice."""

    def __init__(self, observers: list[Any]) -> None:
        self.observers = observers
        self.open = False

    def observe(self, rec: Record) -> None:
        if self.open:
            for o in self.observers:
                o.observe(rec)


class World:
    """Everything one run needs. ``out_dir=None`` runs without writing files (experiments, benches)."""

    def __init__(
        self,
        config: dict[str, Any],
        seed: int,
        out_dir: Path | None = None,
        *,
        auctioneer_id: str = "auctioneer",
        resume: Resume | None = None,
        key: bytes | None = None,
        log_options: dict[str, Any] | None = None,
        fail_fast: bool = False,
    ) -> None:
        self.config = config
        self.fail_fast = fail_fast
        self.seed = int(seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.auctioneer_id = auctioneer_id
        self.summary = SummaryAccumulator()
        # Scenario metrics computed from the same records (e.g. regret against the hidden truth);
        # replay rebuilds them from the Scenario's ``observers(config, seed)``.
        self.metrics: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.log: EventLogWriter | None = None
        self._resume = resume if resume is not None and resume.state is not None else None
        # While a resumed run is rebuilt, the builder's records (opening balances...) are already in the log.
        self._muted = self._resume is not None
        self.cut: ResumeCut | None = None  # set on resume: what was kept and what was moved aside
        # A new run touches no file until it starts (``run``): the header and what the builders record
        # (opening balances...) wait here, already observed, so that a builder refusing the config
        # leaves the run directory as it was. They are written first, in order: the bytes do not change.
        self._pending: list[Record] | None = None
        self._key = key
        self._log_options = dict(log_options or {})
        if self.out_dir is not None:
            path = self.out_dir / "events.msgpack"
            if resume is not None:
                # Without a checkpoint the header is kept and the run starts over after it.
                moved, to = cut_log(path, resume.offset)
                summary_state = resume.state.get("summary") if resume.state is not None else None
                rounds = summary_state.get("rounds") if isinstance(summary_state, dict) else None
                self.cut = ResumeCut(resume.offset, moved, to, resume.t, resume.state is not None,
                                     rounds if type(rounds) is int else None)
                chain = chain_digest(path, key)
                if chain.torn is not None or chain.bytes != resume.offset:
                    raise EventLogError(f"{path}: cut at byte {resume.offset}, but its whole frames end at byte "
                                        f"{chain.bytes}: the log changed while it was being resumed")
                self.log = EventLogWriter(path, observers=[self.summary, self], append=True, key=key,
                                          chain_state=chain, **self._log_options)
            else:
                self._pending = []
                self.record(Header(LOG_SCHEMA, __version__, config, self.seed))
        self.ledger = Ledger(on_transfer=self._on_transfer)
        self.agents: list[Agent] = []
        self.principals: list[Agent] = []
        self._groups: dict[str, tuple[str, ...]] = {}
        self.graph: nx.Graph | None = None
        self.drain_seconds = 0.0
        self.bus: Bus  # made when the run starts: it needs the run's loop
        self.finishers: list[Callable[[World], None]] = []
        self.partitions: tuple[Partition, ...] = ()
        self.crashes: tuple[Crash, ...] = ()
        self.checkpoint_every = int(config.get("run", {}).get("checkpoint_every", 0))
        self._next_checkpoint = self.checkpoint_every
        self._fault_step = 0  # crash/restart events done so far (in schedule order)
        self._dead: dict[str, Any] = {}  # dead agent -> its state when it died
        self._crashed: dict[str, BaseException | None] = {}  # agent -> its exception (None: crashed before a resume)
        self._initial: dict[str, Any] = {}  # agent -> its state at the start of the run
        self._draining = False
        self._touched: list[str] = []  # agents whose task ended or whose fault fired since _main last looked
        self._change: asyncio.Event  # made when the run starts, in the run's loop

    # -- building --------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        """The random stream named ``name`` in this run (agents, mechanism coins, the bus)."""
        return derive_rng(self.seed, name)

    def add(self, agent: Agent, *, principal: bool = False, groups: tuple[str, ...] = ()) -> Agent:
        if agent.id in self._groups:  # every added agent has an entry: a set lookup, not a scan
            raise ValueError(f"agent id {agent.id!r} is used twice")
        self.agents.append(agent)
        self._groups[agent.id] = tuple(groups) or tuple(agent.groups)
        if principal:
            self.principals.append(agent)
        return agent

    def wallet(self, account: str) -> Wallet:
        """``account``'s wallet: payments out of it that are checked and, when refused, logged."""
        ledger, record, now = self.ledger, self.record, self.now

        def pay(dst: str, amount: int, memo: str) -> None:
            refusal = payment_refusal(dst, amount, memo)
            if refusal is None:
                try:
                    ledger.transfer(account, dst, amount, memo)
                    return
                except LedgerError as exc:  # unknown account or overdraft: the ledger names the field
                    head, _, _ = str(exc).partition(":")
                    refusal = (head if head in ("src", "dst", "amount") else "amount", str(exc))
            field, why = refusal
            record(Rejected(now(), account, "payment_refused", field, why))
            raise PaymentRefused(f"{field}: {why}")

        def balance() -> int:
            return ledger.balance(account)

        return Wallet(account, pay, balance)

    def _agent_record(self) -> Callable[[Record], None]:
        """What an agent may write to the log: reject records (``Agent.refuse``), nothing that moves
        money or closes rounds. A closure, so that the agent holds no attribute that is the world."""
        record = self.record

        def record_reject(rec: Record) -> None:
            if type(rec) is not Rejected:
                raise TypeError(f"record: got a {type(rec).__name__}, expected a Rejected record: an agent "
                                "logs only what it refuses")
            record(rec)

        return record_reject

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def record(self, rec: Record) -> None:
        """Append a record to the log (and the summary); without a log, feed the summary only."""
        if self._muted:
            return
        if self.log is not None:
            self.log.append(rec)
        else:
            if self._pending is not None:
                self._pending.append(rec)
            self.summary.observe(rec)
            self.observe(rec)

    def observe(self, rec: Record) -> None:
        for m in self.metrics:
            m.observe(rec)

    def result(self) -> dict[str, Any]:
        """The summary, with the scenario's metrics (if any) under ``metrics``."""
        summary = self.summary.result()
        if self.metrics:
            summary["metrics"] = {k: v for m in self.metrics for k, v in m.result().items()}
        return summary

    def _on_transfer(self, t: Transfer) -> None:
        self.record(LedgerTransfer(self.now(), t.src, t.dst, t.amount, t.memo))

    # -- running ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run to the end; returns the summary (also written as the log's footer)."""
        try:
            if self._resume is not None:
                self._replay_metrics()
            if self._pending is not None:
                self._open_log()
            run_virtual(self._main(), start=self._resume.t if self._resume is not None else 0.0)
            summary = self.result()
            if self.log is not None and self.out_dir is not None:
                self.log.append(Footer(summary))
                self.log.sync()
                self.log.close()
                # The log is durable (synced above) before summary.json says the run finished; the small
                # files are whole or absent, never half-written. The footer cannot hold the digest of
                # itself: the digest goes beside the log and into summary.json (the footer's summary plus
                # this "log" entry).
                chain = self.log.chain
                atomic_write_text(self.out_dir / DIGEST, chain.digest + "\n")
                written = {**summary, "log": {"digest": chain.digest, "frames": chain.frames, "bytes": chain.bytes,
                                              "keyed": chain.keyed}}
                atomic_write_text(self.out_dir / SUMMARY, json.dumps(written, indent=2, sort_keys=True) + "\n")
                atomic_write_text(self.out_dir / CONFIG, dump_toml(self.config))
            return summary
        finally:
            if self.log is not None:
                self.log.close()

    def _open_log(self) -> None:
        """Create the log and write the records kept while the world was built (their observers have
        seen them already). Refuses a directory that already holds a log: ``run_scenario`` decides,
        under the directory's lock, whether an old run may be replaced (``rundir.claim``)."""
        assert self.out_dir is not None and self._pending is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / LOG
        if path.exists():
            raise RunDirError(f"{self.out_dir} already holds {LOG}: a new run is written only "
                              "where there is none (run --force replaces an old run)")
        gate = _Gate([self.summary, self])
        self.log = EventLogWriter(path, observers=[gate], key=self._key, **self._log_options)
        for rec in self._pending:
            self.log.append(rec)
        self._pending = None
        gate.open = True

    def _wire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make the bus and attach every agent to it: the world as it stands before anything runs."""
        self._loop = loop
        self._change = asyncio.Event()
        self.bus = Bus(loop, self.rng("bus"), auctioneer=self.auctioneer_id, graph=self.graph,
                       record=self.record, partitions=self.partitions)
        for agent in self.agents:
            agent.attach(self.bus.register(agent.id, self._groups[agent.id]), self.rng(agent.id), self._agent_record())
            self._initial[agent.id] = agent.get_state()
            if agent.id == self.auctioneer_id and hasattr(agent, "idle"):
                agent.idle = self._idle

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._wire(loop)
        if self._resume is not None and self._resume.state is not None:
            self._restore(self._resume)
        self._muted = False
        for t, action, index in self._fault_schedule()[self._fault_step:]:
            loop.call_at(t, self._fault, action, index)
        for agent in self.agents:
            if agent.id not in self._dead and agent.id not in self._crashed:
                self._start(agent)
        # Principals still running, by id: only the agents whose task ended or whose fault fired since the
        # last look are checked again (``_touched``), so a run's bookkeeping is O(1) per finished task.
        waiting = {a.id: a for a in (self.principals or self.agents) if not self._principal_done(a)}
        self._touched.clear()
        while waiting:
            self._change.clear()
            await self._change.wait()
            self._check_fatal()
            touched, self._touched = self._touched, []
            for agent_id in touched:
                principal = waiting.get(agent_id)
                if principal is not None and self._principal_done(principal):
                    del waiting[agent_id]
        self._check_fatal()
        self._draining = True
        if self.drain_seconds:
            await asyncio.sleep(self.drain_seconds)
            self._check_fatal()
        for agent in self.agents:
            agent.stop()
        tasks = [a._task for a in self.agents if a._task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)  # exceptions while stopping: see _task_ended
        self._check_fatal()
        self.bus.flush()
        for finish in self.finishers:
            finish(self)

    # -- agents' lives: start, crash, restart ----------------------------------------------
    def _start(self, agent: Agent) -> None:
        world = self

        def ended(task: asyncio.Task) -> None:  # a closure: the agent's task holds no bound method of the world
            world._task_ended(agent, task)

        agent.start().add_done_callback(ended)

    def _task_ended(self, agent: Agent, task: asyncio.Task) -> None:
        """An agent's task is over. If it raised, the agent is crashed: logged, its port closed, never
        restarted; the rest of the market goes on (``_check_fatal`` decides whether the run does)."""
        exc = None if task.cancelled() else task.exception()
        if exc is not None and agent.id not in self._crashed:
            self._crashed[agent.id] = exc
            now = self.now()
            self.record(AgentFault(now, agent.id, "crashed"))
            self.record(Rejected(now, agent.id, "agent_exception", type(exc).__name__, _one_line(exc)))
            if not self._draining:
                self.bus.kill(agent.id)
        self._touched.append(agent.id)
        self._change.set()

    def _check_fatal(self) -> None:
        """Raise ``AgentFailed`` for a crash that ends the run: any under ``fail_fast``, else the auctioneer's."""
        for agent_id, exc in self._crashed.items():
            if exc is not None and (self.fail_fast or agent_id == self.auctioneer_id):
                raise AgentFailed(f"agent {agent_id!r} failed: {type(exc).__name__}: {_one_line(exc)}") from exc

    def _principal_done(self, agent: Agent) -> bool:
        """Finished its run, crashed, or dead with no restart to come."""
        if agent.finished or agent.id in self._crashed:
            return True
        return agent.id in self._dead and not any(
            self.crashes[i].agent == agent.id and action == "restart"
            for _, action, i in self._fault_schedule()[self._fault_step:])

    def _fault_schedule(self) -> list[tuple[float, str, int]]:
        """(time, "crash" | "restart", index in ``crashes``), in time order; ties keep the scenario's order."""
        events = []
        for i, c in enumerate(self.crashes):
            events.append((c.at, "crash", i))
            if c.restart is not None:
                events.append((c.restart, "restart", i))
        return sorted(events, key=lambda e: e[0])

    def _fault(self, action: str, index: int) -> None:
        self._fault_step += 1
        crash = self.crashes[index]
        agent = next(a for a in self.agents if a.id == crash.agent)
        if agent.id in self._crashed:
            return  # an agent that raised stays down: a scheduled restart would run it past its exception
        if action == "crash" and agent.id not in self._dead:
            self._dead[agent.id] = agent.get_state()
            agent.stop()
            self.bus.kill(agent.id)
        elif action == "restart" and agent.id in self._dead:
            last = self._dead.pop(agent.id)
            agent.set_state(last if crash.restore == "last" else self._initial[agent.id])
            self.bus.revive(agent.id)
            self._start(agent)
        else:
            return  # a crash of the dead or a restart of the living changes nothing
        self.record(AgentFault(self.now(), agent.id, action))
        self._touched.append(agent.id)
        self._change.set()

    # -- checkpoints -----------------------------------------------------------------------
    def _idle(self, rounds: int) -> None:
        """The auctioneer is between rounds: checkpoint if one is due and the market is quiescent
        (nothing in flight, every inbox empty), so that agent states are the whole state."""
        if (self.log is None or self.checkpoint_every <= 0 or rounds < self._next_checkpoint
                or self._draining or not self.bus.quiescent()):
            return
        self._next_checkpoint = (rounds // self.checkpoint_every + 1) * self.checkpoint_every
        self.bus.flush()  # refused-frame counts go in the log before the checkpoint; budgets restart
        self.log.append(Checkpoint(self.now(), pack_state(self._state())))
        self.log.sync()  # a resume point must survive a crash of the machine too

    def _state(self) -> dict[str, Any]:
        """The whole market's state, as a checkpoint holds it (before packing)."""
        state = {
            "agents": {a.id: a.get_state() for a in self.agents},
            "ledger": self.ledger.get_state(),
            "bus": self.bus.get_state(),
            "summary": self.summary.get_state(),
            "world": {"next_checkpoint": self._next_checkpoint, "fault_step": self._fault_step,
                      "dead": self._dead},
        }
        if self._crashed:  # only then: a run without crashes checkpoints the same bytes as before there were any
            state["world"]["crashed"] = sorted(self._crashed)
        return state

    def reference_state(self) -> dict[str, Any]:
        """The state of this world built and wired but not run: what a checkpoint of its config is compared with.
        Only for a world that will not run (a probe for ``check``): its bus lives on a loop that is closed after."""

        async def wired() -> dict[str, Any]:
            self._wire(asyncio.get_running_loop())
            return self._state()

        return run_virtual(wired())

    def check(self, resume: Resume, reference: dict[str, Any]) -> None:
        """Refuse (``CheckpointError``) a checkpoint this world's config could not have written."""
        if resume.state is None:
            return
        if resume.facts is None:
            raise CheckpointError(f"checkpoint at t = {resume.t!r}: no facts from the log to check it against")
        auctioneer = next((a for a in self.agents if a.id == self.auctioneer_id), None)
        dim = self.config.get("market", {}).get("dim")
        check_checkpoint(resume.state, reference, resume.facts, every=self.checkpoint_every,
                         fault_times=[t for t, _, _ in self._fault_schedule()], auctioneer=self.auctioneer_id,
                         providers=len(getattr(auctioneer, "providers", ())),
                         context_dim=dim if type(dim) is int else None)

    def trial_restore(self, resume: Resume) -> None:
        """Check and restore a checkpoint into this world, wired but not run: a probe, so that a checkpoint that
        passes the checks but would not restore is refused before the run directory's log is cut."""
        self.reference_state()
        self._restore(resume)

    def _restore(self, resume: Resume) -> None:
        """Restore a checkpoint, checked first against this world as built (nothing of it is restored unchecked);
        a set_state that still fails is refused with the part it failed in."""
        state = resume.state
        assert state is not None and resume.facts is not None
        self.check(resume, self._state())
        where = resume.facts.where()
        parts: list[tuple[str, Callable[[Any], None], Any]] = [
            (f"agents.{a.id}", a.set_state, state["agents"][a.id]) for a in self.agents]
        parts += [("ledger", self.ledger.set_state, state["ledger"]), ("bus", self.bus.set_state, state["bus"]),
                  ("summary", self.summary.set_state, state["summary"])]
        for name, restore, part in parts:
            try:
                restore(part)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise CheckpointError(f"{where}: {name}: does not restore: {type(exc).__name__}: {exc}") from None
        w = state["world"]
        self._next_checkpoint, self._fault_step, self._dead = w["next_checkpoint"], w["fault_step"], w["dead"]
        self._crashed = dict.fromkeys(w.get("crashed", ()))  # logged before the checkpoint; not started again

    def _replay_metrics(self) -> None:
        """Scenario metrics are functions of the records: rebuild them from the kept part of the log."""
        if not self.metrics or self.log is None:
            return
        for _, record, _torn in iter_frames(self.log.path):
            if record is None:
                break
            for m in self.metrics:
                m.observe(record)
