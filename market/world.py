"""A run: one process, one virtual-time loop, one bus, one ledger, one event log.

Builders add agents to a ``World``; ``run`` starts them, waits for the principal agents (those
whose end is the end of the run, e.g. users with a fixed number of queries), lets messages in
flight land, stops everyone, and writes the footer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from . import __version__
from .agent import Agent, derive_rng
from .bus import Bus
from .config import dump_toml
from .eventlog import LOG_SCHEMA, EventLogWriter
from .kernel import run as run_virtual
from .ledger import Ledger, Transfer
from .summary import SummaryAccumulator


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


class World:
    """Everything one run needs. ``out_dir=None`` runs without writing files (experiments, benches)."""

    def __init__(
        self,
        config: dict[str, Any],
        seed: int,
        out_dir: Path | None = None,
        *,
        auctioneer_id: str = "auctioneer",
    ) -> None:
        self.config = config
        self.seed = int(seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.auctioneer_id = auctioneer_id
        self.summary = SummaryAccumulator()
        # Scenario metrics computed from the same records (e.g. regret against the hidden truth);
        # replay rebuilds them from the builder module's ``observers(config, seed)``.
        self.metrics: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.log: EventLogWriter | None = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.log = EventLogWriter(self.out_dir / "events.msgpack", observers=[self.summary, self])
            self.log.append(["header", {
                "schema": LOG_SCHEMA, "package_version": __version__, "config": config, "seed": self.seed,
            }])
        self.ledger = Ledger(on_transfer=self._on_transfer)
        self.agents: list[Agent] = []
        self.principals: list[Agent] = []
        self._groups: dict[str, tuple[str, ...]] = {}
        self.graph: nx.Graph | None = None
        self.drain_seconds = 0.0
        self.bus: Bus | None = None
        self.finishers: list[Callable[[World], None]] = []

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

    def record(self, rec: list) -> None:
        """Append a record to the log (and the summary); without a log, feed the summary only."""
        if self.log is not None:
            self.log.append(rec)
        else:
            self.summary.observe(rec)
            self.observe(rec)

    def observe(self, rec: list) -> None:
        for m in self.metrics:
            m.observe(rec)

    def result(self) -> dict[str, Any]:
        """The summary, with the scenario's metrics (if any) under ``metrics``."""
        summary = self.summary.result()
        if self.metrics:
            summary["metrics"] = {k: v for m in self.metrics for k, v in m.result().items()}
        return summary

    def _on_transfer(self, t: Transfer) -> None:
        self.record(["xfer", self.now(), t.src, t.dst, t.amount, t.memo])

    # -- running ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run to the end; returns the summary (also written as the log's footer)."""
        try:
            run_virtual(self._main())
            summary = self.result()
            if self.log is not None:
                self.log.append(["footer", summary])
                self.log.close()
                (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
                (self.out_dir / "config.toml").write_text(dump_toml(self.config))
            return summary
        finally:
            if self.log is not None:
                self.log.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.bus = Bus(loop, self.rng("bus"), auctioneer=self.auctioneer_id, graph=self.graph,
                       record=self.record)
        for agent in self.agents:
            agent.attach(self.bus.register(agent.id, self._groups[agent.id]), self.rng(agent.id))
        tasks = [agent.start() for agent in self.agents]
        principals = [a._task for a in self.principals] or tasks
        done, _ = await asyncio.wait(principals, return_when=asyncio.ALL_COMPLETED)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
        if self.drain_seconds:
            await asyncio.sleep(self.drain_seconds)
        for agent in self.agents:
            agent.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for agent, res in zip(self.agents, results):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                raise RuntimeError(f"agent {agent.id!r} failed: {res!r}") from res
        for finish in self.finishers:
            finish(self)
