"""What the world needs from an agent, as a Protocol, with the timing of every call.

``market.runtime.agent.Agent`` is the base class every built-in participant extends and the one a user's agent
should extend: it implements all of this except ``run``. The Protocol states the contract the world
(``market.runtime.world``) relies on, so that a checker (``market.conformance.check_agent``) can name what an
object lacks, and a reader need not infer the order of calls from the world's code.

The life of an agent in a run:

1. built by the scenario's builder and added to the world (``world.add``), nothing attached yet;
2. ``attach(port, rng, record)`` once, before the loop starts: its bus port, its own generator (derived from the
   run seed and ``id``, so adding an agent never moves another's stream) and the log's record function;
3. ``get_state()`` right after attaching: the state a crash with ``restore = "reset"`` goes back to;
4. on a resumed run, ``set_state(state)`` with the state a checkpoint holds, still before ``start``;
5. ``start()`` creates the task that awaits ``run()``; ``run`` talks only through the port (``send``, ``recv``)
   and sleeps in simulated time; it may return (the agent is done, ``finished`` becomes True) or run until
   stopped;
6. ``get_state()`` at every checkpoint, taken while every task waits (no frame in flight, every inbox empty);
7. ``stop()`` at the end of the run or when a fault crashes it; a crashed agent restarted later gets
   ``set_state`` (its last or its initial state) and ``start`` again, so ``run`` starts afresh: whatever it needs to
   carry on must be in attributes ``get_state`` covers, not in local variables of ``run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from market.runtime.bus import Port
from market.runtime.records import Record


@runtime_checkable
class AgentLike(Protocol):
    """A market participant as the world drives it (``Agent`` implements it; subclasses write ``run``).

    id: its stable id on the bus and in the ledger ("provider-0"); groups: the bus groups it joins (a call for
    bids goes to the group "providers"); finished: True once ``run`` returned by itself.
    """

    id: str
    groups: tuple[str, ...]
    finished: bool

    def attach(self, port: Port, rng: np.random.Generator, record: Callable[[Record], None] | None = None) -> None:
        """Wire the agent to its port, generator and the log, once, before the loop runs."""
        ...

    def start(self) -> asyncio.Task:
        """Start ``run`` as a task on the running loop (at the start and after a restart)."""
        ...

    async def run(self) -> None:
        """The agent's behaviour: receive, decide, send; no clock and no generator but its own ``rng``."""
        ...

    def stop(self) -> None:
        """Cancel the task (end of the run or a crash); the agent's clean-up runs once."""
        ...

    def get_state(self) -> dict[str, Any]:
        """Its state as plain values and arrays, asked when every task waits (checkpoints, crashes)."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned, after ``attach`` and before ``start``."""
        ...
