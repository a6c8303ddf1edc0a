"""Virtual-time asyncio: an event loop whose clock is simulated.

``asyncio.sleep``, ``asyncio.timeout`` and ``loop.call_later`` work unchanged; when nothing is
ready the loop jumps straight to the next timer instead of waiting, so a simulated day costs only
the CPU time its work needs. Nothing here reads the wall clock.

A timer that cannot be kept is refused with a ``KernelError`` rather than left to hang the run: a
non-finite or absurdly late time (the clock would jump past ``MAX_CLOCK``). A positive delay too small
to move the clock where it stands (``t + delay == t`` in float64) moves it by one step of float64
instead, so that a timer that asked for time to pass never fires at the same instant.

Timers due at the same instant fire in the order they were scheduled: the timer heap holds
(time, sequence number, handle), where stock asyncio orders by time alone and breaks ties by the heap's
shape. The loop's iteration (``_run_once``) is asyncio's, less what a clock that never waits does not need
(no I/O poll, no debug timing of callbacks): callbacks run in the same order, the clock moves by the same
float64 steps, so a run's log is the same bytes.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import heapq
import math
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar, TypeVarTuple, Unpack

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# The latest simulated time a run may reach, in seconds (about 31.7 million years): far beyond any run the
# config allows (rounds x interarrival), and where float64 still resolves a hundredth of a second.
MAX_CLOCK = 1.0e15

# As asyncio's loop: the longest single step of the clock (a longer wait is taken in steps of a day, which
# fixes the float64 arithmetic of the clock), and when cancelled timers are swept out of the heap at once.
_MAX_STEP = 24 * 3600
_SWEEP_MIN_TIMERS = 100
_SWEEP_CANCELLED_FRACTION = 0.5


class _Handle(asyncio.Handle):
    """A callback ready to run. asyncio's ``Handle.__init__`` asks the loop for its debug flag on every
    call; this one is built once per task wake-up, so it sets its fields and nothing else (with
    ``PYTHONASYNCIODEBUG`` the loop builds asyncio's own, which records where it was made)."""

    __slots__ = ()

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop,
                 context: contextvars.Context | None) -> None:
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._loop = loop
        self._source_traceback = None
        self._repr = None
        self._context = context if context is not None else contextvars.copy_context()


class _Timer(asyncio.TimerHandle):
    """A timer, built as ``_Handle`` is; it sits in the loop's heap inside a (time, sequence, timer) entry."""

    __slots__ = ()
    _scheduled: bool  # asyncio's slot, left out of its type stubs

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...],
                 loop: asyncio.AbstractEventLoop, context: contextvars.Context | None) -> None:
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._loop = loop
        self._source_traceback = None
        self._repr = None
        self._context = context if context is not None else contextvars.copy_context()
        self._when = when
        self._scheduled = False


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

    # Kept by asyncio's BaseEventLoop and left out of its type stubs: the run loop below works on them.
    _debug: bool
    _closed: bool
    _stopping: bool
    _ready: collections.deque[asyncio.Handle]
    _scheduled: list[tuple[float, int, _Timer]]
    _timer_cancelled_count: int
    _check_thread: Callable[[], None]
    _check_callback: Callable[[Any, str], None]
    _check_closed: Callable[[], None]

    def __init__(self, start: float = 0.0) -> None:
        _check_start(start)
        self._now = float(start)
        self._timer_seq = 0  # breaks ties between timers due at the same instant: first scheduled, first run
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
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        self._check_closed()
        timer = _Timer(when, callback, args, self, context)
        self._timer_seq += 1
        heapq.heappush(self._scheduled, (when, self._timer_seq, timer))
        timer._scheduled = True
        return timer

    def call_soon(self, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts],
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        if self._debug:
            return super().call_soon(callback, *args, context=context)
        if self._closed:
            self._check_closed()
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def _run_once(self) -> None:
        """One iteration of the loop, as asyncio's, on a heap of (time, sequence, timer) entries: sweep
        cancelled timers, move the clock to the next timer if nothing is ready (a deadlock if there is
        none), make every timer now due ready, then run what was ready, in order."""
        scheduled = self._scheduled
        count = len(scheduled)
        if count > _SWEEP_MIN_TIMERS and self._timer_cancelled_count / count > _SWEEP_CANCELLED_FRACTION:
            kept = []
            for entry in scheduled:
                if entry[2]._cancelled:
                    entry[2]._scheduled = False
                else:
                    kept.append(entry)
            heapq.heapify(kept)
            self._scheduled = scheduled = kept
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(scheduled)[2]._scheduled = False
        ready = self._ready
        if not ready and not self._stopping:
            if not scheduled:
                raise KernelError(
                    f"deadlock at t={self._now:.6f}s: every task is waiting and no timer is pending"
                )
            step = scheduled[0][0] - self._now  # min(max(0, step), _MAX_STEP) as asyncio, without two calls
            if step > 0:
                self._now += step if step < _MAX_STEP else _MAX_STEP
        now = self._now
        resolution = math.ulp(now)  # the _clock_resolution property, inlined
        end = now + (resolution if resolution > 1e-9 else 1e-9)
        while scheduled and scheduled[0][0] < end:
            timer = heapq.heappop(scheduled)[2]
            timer._scheduled = False
            ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

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
