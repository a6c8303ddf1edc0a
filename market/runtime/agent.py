"""What an agent is: an asyncio task with a port on the bus, its own random stream and a clean stop.

Subclasses implement ``run``. The generator comes from (run seed, stable agent id) through
``SeedSequence``, so adding an agent never changes another agent's randomness.

What the world gives an agent is all it holds of the market: its ``Port`` (sends as its own id), its
wallet if it has an account (pays out of that account only), and a record function that takes
``Rejected`` records only. None of them has an attribute that leads to the bus, the ledger, the world
or another agent (see ``market.runtime.bus``: the guarantee covers attribute paths, not the
interpreter's introspection). An exception that escapes ``run`` crashes this agent alone (see
``market.runtime.world``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from market.core.wire import Message
from market.runtime.bus import Envelope, Port
from market.runtime.records import Record, Rejected

OPEN_ROUNDS = 256  # rounds an agent keeps waiting for an outcome; older ones are forgotten (the frame was lost)


def remember_round(open_rounds: dict[int, Any], round_index: int, entry: Any) -> None:
    """Record what an agent needs when round ``round_index``'s outcome arrives, forgetting the oldest
    entries beyond OPEN_ROUNDS: without that, every outcome lost on the wire would be kept for good.
    An outcome that arrives after OPEN_ROUNDS newer rounds opened is treated as lost."""
    open_rounds[round_index] = entry
    while len(open_rounds) > OPEN_ROUNDS:
        del open_rounds[next(iter(open_rounds))]


class Agent:
    """Base class of market participants. ``groups`` lists the bus groups the agent joins."""

    groups: tuple[str, ...] = ()

    def __init__(self, agent_id: str) -> None:
        self.id = agent_id
        self.port: Port  # given by attach(), before the agent runs
        self.rng: np.random.Generator | None = None
        self._task: asyncio.Task | None = None
        self._record: Callable[[Record], None] | None = None
        self.finished = False  # run() returned by itself (not stopped, not crashed)

    # -- wiring (done by the world) ---------------------------------------------------------
    def attach(self, port: Port, rng: np.random.Generator, record: Callable[[Record], None] | None = None) -> None:
        """Wire the agent: ``record`` is what ``refuse`` logs through (the world's takes Rejected records only)."""
        self.port = port
        self.rng = rng
        self._record = record

    def start(self) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(self._main(), name=self.id)
        return self._task

    async def _main(self) -> None:
        try:
            await self.run()
            self.finished = True
        finally:
            self.on_stop()

    # -- what subclasses use ----------------------------------------------------------------
    async def run(self) -> None:
        """The agent's behaviour; returns when the agent is done."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def on_stop(self) -> None:
        """Called once when the agent's task ends, however it ends."""

    def refuse(self, src: str, msg: Message, expected: str | None = None) -> None:
        """Log a well-formed frame this agent will not act on as a reject record naming the sender and the kind:
        ``expected`` is whom the agent takes this kind from (None: it takes no such frame at all). The frame
        is dropped and the agent goes on; no reply is sent, so a flooder gets no traffic back."""
        if self._record is None:
            return
        if expected is None:
            code, field, detail = "unexpected_kind", "kind", f"{msg.kind} from {src!r}: {self.id} takes no such frame"
        else:
            code, field, detail = "unexpected_sender", "src", f"{msg.kind} from {src!r}: expected it from {expected!r}"
        self._record(Rejected(self.now(), src, code, field, detail))

    def send(self, dst: str, msg: Message) -> bool:
        return self.port.send(dst, msg)

    def broadcast(self, group: str, msg: Message) -> bool:
        return self.port.broadcast(group, msg)

    async def recv(self, timeout: float | None = None, *, until: float | None = None) -> Envelope:
        return await self.port.recv(timeout, until=until)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def stop(self) -> None:
        """Ask the agent to finish: its task is cancelled and ``on_stop`` runs."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    # -- checkpoints -----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The agent's state for a checkpoint; subclasses extend it. Checkpoints are taken while
        every task waits, and a restored agent starts ``run`` afresh: so ``run`` must keep in
        attributes (covered here) whatever it needs to carry on, not in local variables."""
        return {"rng": self.rng.bit_generator.state if self.rng is not None else None}

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("rng") is not None:
            assert self.rng is not None, f"{self.id}: set_state before attach"
            self.rng.bit_generator.state = state["rng"]
