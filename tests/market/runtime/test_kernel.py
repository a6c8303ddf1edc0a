"""Virtual time: sleeps, timeouts and timers fire at the right simulated instants, at CPU speed."""

from __future__ import annotations

import asyncio
import time

import pytest

from market.runtime.kernel import KernelError, VirtualTimeLoop, run


def test_sleep_timeout_and_call_later_happen_at_simulated_instants():
    seen = []

    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        await asyncio.sleep(86_400)
        seen.append(loop.time())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(10)
        seen.append(loop.time())
        fut = loop.create_future()
        loop.call_later(2.5, fut.set_result, "x")
        assert await fut == "x"
        seen.append(loop.time())
        return loop.time()

    t0 = time.process_time()
    assert run(main()) == 86_407.5
    assert seen == [86_400.0, 86_405.0, 86_407.5]
    assert time.process_time() - t0 < 1.0


def test_concurrent_sleepers_wake_in_time_order():
    order = []

    async def sleeper(name, dt):
        await asyncio.sleep(dt)
        order.append((name, asyncio.get_running_loop().time()))

    async def main():
        await asyncio.gather(sleeper("c", 3.0), sleeper("a", 1.0), sleeper("b", 2.0))

    run(main())
    assert order == [("a", 1.0), ("b", 2.0), ("c", 3.0)]


def test_deadlock_is_reported_not_hung():
    async def main():
        await asyncio.get_running_loop().create_future()

    with pytest.raises(KernelError, match="deadlock"):
        run(main())


def test_a_simulated_day_of_market_runs_in_seconds():
    from market.runtime.run import run_scenario

    t0 = time.process_time()
    _, summary, _ = run_scenario(
        "quickstart", seed=1, rounds=1000, overrides=["market.interarrival=86.4"]
    )
    assert summary["sim_seconds"] >= 86_313.0  # the last query at 999 x 86.4 s
    assert summary["rounds"] == 1000
    assert time.process_time() - t0 < 30.0


async def test_a_run_started_inside_a_running_loop_gets_its_own_thread():
    """As in a Jupyter kernel: the caller's loop is running, the simulation still runs (and is the same)."""
    from market.runtime.run import run_scenario

    _, inside, _ = run_scenario("quickstart", seed=4, rounds=50)
    assert inside["rounds"] == 50
    assert inside == run_scenario_outside(4)


def run_scenario_outside(seed):
    import concurrent.futures

    from market.runtime.run import run_scenario

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: run_scenario("quickstart", seed=seed, rounds=50)[1]).result()


@pytest.mark.parametrize("delay", [float("nan"), float("inf"), 1e300])
def test_a_timer_that_cannot_be_kept_is_refused_not_waited_for(delay):
    async def main():
        await asyncio.sleep(delay)

    with pytest.raises(KernelError, match=r"^timer: got a (delay|time) of "):
        run(main())


def test_a_delay_too_small_to_move_the_clock_still_moves_it():
    async def main():
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(1e-3)  # below one float64 step at t = 1e14 (0.0156 s)
        return before, loop.time()

    before, after = run(main(), start=1e14)
    assert after > before


@pytest.mark.parametrize("start", [float("nan"), -1.0, 1e300])
def test_a_start_time_outside_the_clock_is_refused(start):
    async def main():
        return None

    with pytest.raises(KernelError, match=r"^start: got "):
        run(main(), start=start)


def _stock_heap_order(whens: list[float]) -> list[int]:
    """The order stock asyncio fires timers scheduled at ``whens`` (its heap compares times alone)."""
    import heapq

    loop = asyncio.new_event_loop()
    try:
        heap: list[asyncio.TimerHandle] = []
        for i, when in enumerate(whens):
            heapq.heappush(heap, asyncio.TimerHandle(when, print, (i,), loop))
        return [heapq.heappop(heap)._args[0] for _ in range(len(heap))]
    finally:
        loop.close()


def test_timers_due_at_the_same_instant_fire_in_the_order_they_were_scheduled():
    whens = [1.0 if i % 3 else (0.5, 2.0)[i % 2] for i in range(60)]
    fifo = sorted(range(len(whens)), key=lambda i: (whens[i], i))
    assert _stock_heap_order(whens) != fifo  # what stock asyncio does: ties broken by the heap's shape
    fired = []

    async def main():
        loop = asyncio.get_running_loop()
        handles = [loop.call_at(when, fired.append, i) for i, when in enumerate(whens)]
        handles[7].cancel()
        await asyncio.sleep(3.0)

    run(main())
    assert fired == [i for i in fifo if i != 7]


def test_sleepers_due_together_wake_in_the_order_they_went_to_sleep():
    woke = []

    async def sleeper(name: int, start: float) -> None:
        await asyncio.sleep(start)
        await asyncio.sleep(10.0 - start)  # every sleeper is due at t = 10
        woke.append(name)

    async def main():
        await asyncio.gather(*(sleeper(i, (0.0, 4.0, 8.0)[i % 3]) for i in range(30)))

    run(main())
    # those that went to sleep first (start 0, then 4, then 8) wake first; within a start, by task order
    assert woke == sorted(range(30), key=lambda i: (i % 3, i))


def test_many_cancelled_timers_are_swept_and_the_rest_still_fire_in_order():
    fired = []

    async def main():
        loop = asyncio.get_running_loop()
        handles = [loop.call_at(1.0 + (i % 5), fired.append, i) for i in range(400)]
        for h in handles[::4] + handles[1::4] + handles[2::4]:
            h.cancel()
        await asyncio.sleep(0.5)
        assert len(loop._scheduled) == 100  # swept at the next iteration: 300 of 400 were cancelled
        await asyncio.sleep(10.0)

    run(main())
    assert fired == sorted(range(3, 400, 4), key=lambda i: (i % 5, i))


def test_a_loop_in_debug_mode_runs_the_same():
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        fut = loop.create_future()
        loop.call_later(2.0, fut.set_result, "x")
        loop.call_soon(lambda: None)
        return await fut, loop.time()

    assert run(main()) == ("x", 2.0)
