"""Virtual-time asyncio: an event loop whose clock is simulated.

``asyncio.sleep``, ``asyncio.timeout`` and ``loop.call_later`` work unchanged; when nothing is
ready the loop jumps straight to the next timer instead of waiting, so a simulated day costs only
the CPU time its work needs. Nothing here reads the wall clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class KernelError(RuntimeError):
    """The simulation cannot go on (e.g. every task waits and no timer is pending)."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector with no I/O: ``select(timeout)`` advances the virtual clock by ``timeout``.

    The event loop asks the selector to block until the next timer is due; here that wait
    costs nothing, it only moves simulated time forward.
    """

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list:
        if timeout is None:
            raise KernelError(
                f"deadlock at t={self._loop.time():.6f}s: every task is waiting and no timer is pending"
            )
        if timeout > 0:
            self._loop._advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return dict(self._keys)

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose ``time()`` is simulated seconds starting at ``start``."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        super().__init__(_VirtualSelector(self))
        # The resolution decides which timers count as due; fix it so that runs do not depend
        # on the host's monotonic clock.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    def _advance(self, dt: float) -> None:
        self._now += dt


def run(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop and close the loop.

    Called where a loop already runs in this thread (a Jupyter kernel, an async test), the run
    gets a thread of its own: one thread cannot run two loops at once.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main, start)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_here, main, start).result()


def _run_here(main: Coroutine[Any, Any, T], start: float) -> T:
    loop = VirtualTimeLoop(start)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_remaining(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: VirtualTimeLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
