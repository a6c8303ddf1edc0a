"""A run: one process, one virtual-time loop, one bus, one ledger, one event log.

Builders add agents to a ``World``; ``run`` starts them, waits for the principal agents (those
whose end is the end of the run, e.g. users with a fixed number of queries), lets messages in
flight land, stops everyone, and writes the footer. The world also kills and restarts agents on
the fault model's schedule, writes checkpoints at quiescent points between rounds, and resumes a
killed run from its last checkpoint so that it ends exactly as an uninterrupted run would.
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
from market.core.ledger import Ledger, Transfer
from market.core.seeding import derive_rng
from market.runtime.agent import Agent
from market.runtime.bus import Bus, Partition
from market.runtime.checkpoint import CheckpointError, Resume, check_checkpoint, pack_state
from market.runtime.config import dump_toml
from market.runtime.eventlog import EventLogError, EventLogWriter, chain_digest, cut_log, iter_frames
from market.runtime.faults import Crash
from market.runtime.kernel import run as run_virtual
from market.runtime.records import LOG_SCHEMA, AgentFault, Checkpoint, Footer, Header, LedgerTransfer, Record
from market.runtime.rundir import CONFIG, DIGEST, LOG, SUMMARY, RunDirError, atomic_write_text
from market.runtime.summary import SummaryAccumulator


class Wallet:
    """An agent's handle on its own ledger account: it can pay out of it, nothing else."""

    __slots__ = ("_ledger", "account")

    def __init__(self, ledger: Ledger, account: str) -> None:
        self._ledger = ledger
        self.account = account

    def pay(self, dst: str, amount: int, memo: str) -> None:
        self._ledger.transfer(self.account, dst, amount, memo)

    @property
    def balance(self) -> int:
        return self._ledger.balance(self.account)


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
    ) -> None:
        self.config = config
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
        self._initial: dict[str, Any] = {}  # agent -> its state at the start of the run
        self._draining = False
        self._change: asyncio.Event  # made when the run starts, in the run's loop

    # -- building --------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        """The random stream named ``name`` in this run (agents, mechanism coins, the bus)."""
        return derive_rng(self.seed, name)

    def add(self, agent: Agent, *, principal: bool = False, groups: tuple[str, ...] = ()) -> Agent:
        if any(a.id == agent.id for a in self.agents):
            raise ValueError(f"agent id {agent.id!r} is used twice")
        self.agents.append(agent)
        self._groups[agent.id] = tuple(groups) or tuple(agent.groups)
        if principal:
            self.principals.append(agent)
        return agent

    def wallet(self, account: str) -> Wallet:
        return Wallet(self.ledger, account)

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
            agent.attach(self.bus.register(agent.id, self._groups[agent.id]), self.rng(agent.id), self.record)
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
            if agent.id not in self._dead:
                self._start(agent)
        principals = self.principals or self.agents
        while not all(self._principal_done(a) for a in principals):
            self._change.clear()
            await self._change.wait()
            for a in self.agents:  # a failed agent ends the run now, not when the principals are done
                task = a._task
                if a not in principals and task is not None and task.done() and not task.cancelled():
                    exc = task.exception()
                    if exc is not None:
                        raise RuntimeError(f"agent {a.id!r} failed: {exc!r}") from exc
        self._draining = True
        if self.drain_seconds:
            await asyncio.sleep(self.drain_seconds)
        for agent in self.agents:
            agent.stop()
        tasks = [a._task for a in self.agents if a._task is not None]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, res in zip(tasks, results):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                raise RuntimeError(f"agent {task.get_name()!r} failed: {res!r}") from res
        for finish in self.finishers:
            finish(self)

    # -- agents' lives: start, crash, restart ----------------------------------------------
    def _start(self, agent: Agent) -> None:
        agent.start().add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task) -> None:
        self._change.set()

    def _principal_done(self, agent: Agent) -> bool:
        """Finished its run, or dead with no restart to come; an agent that failed ends the run."""
        task = agent._task
        failure = task.exception() if task is not None and task.done() and not task.cancelled() else None
        if failure is not None:
            raise failure
        if agent.finished:
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
        self._change.set()

    # -- checkpoints -----------------------------------------------------------------------
    def _idle(self, rounds: int) -> None:
        """The auctioneer is between rounds: checkpoint if one is due and the market is quiescent
        (nothing in flight, every inbox empty), so that agent states are the whole state."""
        if (self.log is None or self.checkpoint_every <= 0 or rounds < self._next_checkpoint
                or self._draining or not self.bus.quiescent()):
            return
        self._next_checkpoint = (rounds // self.checkpoint_every + 1) * self.checkpoint_every
        self.log.append(Checkpoint(self.now(), pack_state(self._state())))
        self.log.sync()  # a resume point must survive a crash of the machine too

    def _state(self) -> dict[str, Any]:
        """The whole market's state, as a checkpoint holds it (before packing)."""
        return {
            "agents": {a.id: a.get_state() for a in self.agents},
            "ledger": self.ledger.get_state(),
            "bus": self.bus.get_state(),
            "summary": self.summary.get_state(),
            "world": {"next_checkpoint": self._next_checkpoint, "fault_step": self._fault_step,
                      "dead": self._dead},
        }

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

    def _replay_metrics(self) -> None:
        """Scenario metrics are functions of the records: rebuild them from the kept part of the log."""
        if not self.metrics or self.log is None:
            return
        for _, record, _torn in iter_frames(self.log.path):
            if record is None:
                break
            for m in self.metrics:
                m.observe(record)
