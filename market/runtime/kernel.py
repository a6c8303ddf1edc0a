"""Virtual-time asyncio: an event loop whose clock is simulated.

``asyncio.sleep``, ``asyncio.timeout`` and ``loop.call_later`` work unchanged; when nothing is
ready the loop jumps straight to the next timer instead of waiting, so a simulated day costs only
the CPU time its work needs. Nothing here reads the wall clock.

A timer that cannot be kept is refused with a ``KernelError`` rather than left to hang the run: a
non-finite or absurdly late time (the clock would jump past ``MAX_CLOCK``). A positive delay too small
to move the clock where it stands (``t + delay == t`` in float64) moves it by one step of float64
instead, so that a timer that asked for time to pass never fires at the same instant.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import math
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar, TypeVarTuple, Unpack

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# The latest simulated time a run may reach, in seconds (about 31.7 million years): far beyond any run the
# config allows (rounds x interarrival), and where float64 still resolves a hundredth of a second.
MAX_CLOCK = 1.0e15


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
        _check_start(start)
        self._now = float(start)
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    # The resolution decides which timers count as due (those before time() + resolution): fixed at 1 ns so
    # that runs do not depend on the host's monotonic clock, and at least one float64 step of the clock, so
    # that late in a long run (t > 4.5e6 s, where a step exceeds 1 ns) a timer due now still counts as due
    # and the loop does not spin at one instant.
    @property
    def _clock_resolution(self) -> float:
        return max(1e-9, math.ulp(self._now))

    @_clock_resolution.setter
    def _clock_resolution(self, value: float) -> None:
        pass  # the base loop sets the host's resolution: the virtual clock keeps its own

    def _advance(self, dt: float) -> None:
        self._now += dt

    def call_at(self, when: float, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts],
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if not math.isfinite(when) or when > MAX_CLOCK:
            raise KernelError(f"timer: got a time of {when!r} s at t={self._now!r} s, expected a finite time of at "
                              f"most {MAX_CLOCK:g} s")
        return super().call_at(when, callback, *args, context=context)

    def call_later(self, delay: float, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts],
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if delay is None or not math.isfinite(delay):
            raise KernelError(f"timer: got a delay of {delay!r} s at t={self._now!r} s, expected a finite delay")
        if delay > 0 and self._now + delay == self._now:
            return self.call_at(math.nextafter(self._now, math.inf), callback, *args, context=context)
        return super().call_later(delay, callback, *args, context=context)


def run(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop and close the loop.

    Called where a loop already runs in this thread (a Jupyter kernel, an async test), the run
    gets a thread of its own: one thread cannot run two loops at once.
    """
    try:
        _check_start(start)
    except KernelError:
        main.close()  # never to run: closed, so that it is not reported as never awaited
        raise
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main, start)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_here, main, start).result()


def _check_start(start: float) -> None:
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start) \
            or not 0.0 <= start <= MAX_CLOCK:
        raise KernelError(f"start: got {start!r}, expected a finite simulated time in [0, {MAX_CLOCK:g}] s")


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
