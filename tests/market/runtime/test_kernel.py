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
