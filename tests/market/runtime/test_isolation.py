"""Isolation of agents: a port and a wallet reach nothing else by attributes, an agent's exception
crashes that agent alone, payments a wallet refuses are logged, and every sender has a bus budget."""

from __future__ import annotations

import asyncio
import functools
import types
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from agents.providers import Provider
from agents.users import ProcurementUser
from market.core.ledger import EXTERNAL, Ledger
from market.core.wire import Bid, Error, Feedback, Query
from market.runtime.agent import Agent
from market.runtime.bus import BUS_ID, Bus, BusError, Port, RateLimit
from market.runtime.eventlog import read_log
from market.runtime.kernel import run
from market.runtime.records import AgentFault, Footer, LedgerTransfer, MessageSent, Rejected, RoundClosed
from market.runtime.run import resume_scenario, run_scenario
from market.runtime.world import AgentFailed, PaymentRefused, Wallet, World

# -- the attribute walk ----------------------------------------------------------------------

_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), type, types.ModuleType, np.generic,
           types.CodeType)
# Not followed, and why: a function's closure cells and globals, and a frame's locals, are the
# interpreter's introspection (like the garbage collector), outside the "no attribute path" guarantee;
# the event loop is the process's, reachable by any coroutine through asyncio.get_running_loop().
_INTROSPECTION = (types.FrameType, types.TracebackType, asyncio.AbstractEventLoop)


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, _LEAVES) or isinstance(obj, _INTROSPECTION):
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            yield from ((f"[{i}]", x) for i, x in enumerate(obj.ravel()))
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"[{k!r}]", v
            yield f"<key {k!r}>", k
        return
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        yield from ((f"[{i}]", x) for i, x in enumerate(obj))
        return
    if isinstance(obj, (types.MethodType, types.BuiltinMethodType, types.MethodWrapperType)):
        yield "__self__", obj.__self__
        return
    if isinstance(obj, types.FunctionType):
        yield "__defaults__", obj.__defaults__
        yield "__kwdefaults__", obj.__kwdefaults__
        yield "__dict__", obj.__dict__
        return
    if isinstance(obj, functools.partial):
        yield from (("func", obj.func), ("args", obj.args), ("keywords", obj.keywords))
        return
    names = {n for n in dir(obj) if not (n.startswith("__") and n.endswith("__"))}
    for klass in type(obj).__mro__:
        slots = vars(klass).get("__slots__", ())
        names.update([slots] if isinstance(slots, str) else slots)
    names.update(getattr(obj, "__dict__", {}) or {})
    for name in sorted(names):
        try:
            value = getattr(obj, name)
        except Exception:  # a property that needs what this object does not have (e.g. cffi)
            continue
        yield name, value


def reachable(root: Any, depth: int = 8) -> list[tuple[str, Any]]:
    """Every (path, object) reachable from ``root`` through attributes, slots, __dict__ entries,
    containers and bound methods' __self__, breadth first, ``depth`` levels deep."""
    seen = {id(root)}
    keep = [root]  # objects made on access (bound methods) must live until the walk ends, or ids repeat
    found: list[tuple[str, Any]] = []
    frontier = [("", root)]
    for _ in range(depth):
        nxt = []
        for path, obj in frontier:
            for name, child in _children(obj):
                if id(child) in seen:
                    continue
                seen.add(id(child))
                keep.append(child)
                found.append((f"{path}.{name}", child))
                nxt.append((f"{path}.{name}", child))
        frontier = nxt
    return found


def forbidden(root: Any, own: tuple[Any, ...], depth: int = 8) -> list[str]:
    """Paths from ``root`` to a bus, a ledger, a world, or a port or agent that is not in ``own``."""
    bad = []
    for path, obj in reachable(root, depth):
        if isinstance(obj, (Bus, Ledger, World)) or (isinstance(obj, (Port, Agent)) and obj not in own):
            bad.append(f"{path}: {type(obj).__name__}")
    return bad


class Prober(Agent):
    """Walks the attribute graph of itself, its port and its wallet while its task runs."""

    def __init__(self, agent_id: str, wallet: Wallet) -> None:
        super().__init__(agent_id)
        self.wallet = wallet
        self.found: dict[str, list[str]] = {}
        self.loops: list[str] = []

    async def run(self) -> None:
        await self.sleep(1.5)  # other agents are running and waiting: their futures are all set up
        own = (self, self.port)
        self.found = {"port": forbidden(self.port, own), "wallet": forbidden(self.wallet, own),
                      "agent": forbidden(self, own)}
        self.loops = [p for p, o in reachable(self.port) + reachable(self.wallet)
                      if isinstance(o, asyncio.AbstractEventLoop)]


def _tiny_market(world: World, extra: list[Agent]) -> None:
    from market.core.mechanisms.baselines import Myerson
    from market.core.mechanisms.priors import UniformCost
    from market.runtime.auctioneer import ReverseAuctioneer

    theta = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    mech = Myerson(theta, UniformCost(0.0, 1.0))
    providers = ["p0", "p1", "p2"]
    world.ledger.open("user", balance=10**9)
    world.add(ReverseAuctioneer("auctioneer", mech, providers, world.ledger, world.record, world.rng("m")))
    for pid in providers:
        world.ledger.open(pid, overdraft=None)
        world.add(Provider(pid, UniformCost(0.0, 1.0), world.wallet(pid)), groups=("providers",))
    world.add(ProcurementUser("user", 4, providers, lambda i, x, rng: 1.0, lambda rng: np.array([1.0, 0.0])),
              principal=True)
    for a in extra:
        world.add(a)


def test_no_attribute_path_from_a_port_a_wallet_or_an_agent_reaches_the_bus_the_ledger_or_another_agent():
    world = World({}, seed=1)
    world.ledger.open("prober")
    prober = Prober("prober", world.wallet("prober"))
    _tiny_market(world, [prober])
    world.drain_seconds = 2.0
    world.run()
    assert prober.found == {"port": [], "wallet": [], "agent": []}
    assert prober.loops == []  # not even the event loop is an attribute of the port or the wallet
    # the walk does go everywhere an attribute leads: the port's inbox, the wallet's functions, the task
    paths = dict(reachable(prober))
    assert {".port._inbox", ".port._send", ".wallet._pay", "._record", "._task"} <= set(paths)


def test_the_walk_would_have_found_the_old_private_paths():
    """The check is not vacuous: an object holding a bus or a ledger in a private slot is caught."""

    class Leaky:
        __slots__ = ("_bus", "_inner")

        def __init__(self, bus: Any, ledger: Ledger) -> None:
            self._bus = bus
            self._inner = {"deep": [(ledger.transfer,)]}  # a bound method, three containers down

    async def main() -> list[str]:
        bus = Bus(asyncio.get_running_loop(), np.random.default_rng(0))
        return forbidden(Leaky(bus, Ledger()), ())

    assert sorted(run(main())) == ["._bus: Bus", "._inner.['deep'].[0].[0].__self__: Ledger"]


def test_the_sender_is_the_registered_id_whatever_the_port_says():
    async def main() -> None:
        bus = Bus(asyncio.get_running_loop(), np.random.default_rng(0))
        hub = bus.register("auctioneer")
        mallory = bus.register("mallory")
        bus.register("victim")
        mallory.id = "victim"  # the port's id is the agent's to read; the bus never trusts it
        mallory.send("auctioneer", Bid(0, 0.5))
        assert (await hub.recv()).src == "mallory"
        with pytest.raises(AttributeError):
            mallory._bus  # type: ignore[attr-defined]  # noqa: B018

    run(main())


# -- crashes ---------------------------------------------------------------------------------


def _quickstart(tmp_path, name: str, patch: dict[str, type], *, fail_fast: bool = False, rounds: int = 30):
    """The quickstart with some agents' classes swapped for subclasses that misbehave."""
    real_add = World.add

    def add(self, agent, **kw):
        if agent.id in patch:
            agent.__class__ = patch[agent.id]
        return real_add(self, agent, **kw)

    World.add = add  # type: ignore[method-assign]
    try:
        _, summary, _ = run_scenario("quickstart", rounds=rounds, out=tmp_path / name, fail_fast=fail_fast)
    finally:
        World.add = real_add  # type: ignore[method-assign]
    return read_log(tmp_path / name / "events.msgpack").records, summary


class RaisesInRound5(Provider):
    def send(self, dst: str, msg: Any) -> bool:
        if type(msg) is Bid and msg.round == 5:
            raise ValueError("no bid for round 5")
        return super().send(dst, msg)


def test_a_provider_that_raises_in_round_5_is_crashed_and_the_market_goes_on(tmp_path):
    records, summary = _quickstart(tmp_path, "p2", {"provider-2": RaisesInRound5})
    assert isinstance(records[-1], Footer) and (tmp_path / "p2" / "summary.json").exists()
    faults = [r for r in records if isinstance(r, AgentFault)]
    assert [(f.agent, f.event) for f in faults] == [("provider-2", "crashed")]
    why = [r for r in records if isinstance(r, Rejected) and r.code == "agent_exception"]
    assert [(r.offender, r.field, r.detail) for r in why] == [("provider-2", "ValueError", "no bid for round 5")]
    assert summary["rounds"] == 30 and summary["faults"] == {"crashed": 1}
    rounds = [r for r in records if isinstance(r, RoundClosed)]
    for r in rounds[5:]:  # the crashed provider is an abstention; the others keep bidding
        assert r.extra["present"] == [True, True, False, True, True]
    assert all(r.extra["present"] == [True] * 5 for r in rounds[:5])
    assert summary["drops_by_reason"]["dead"] > 0  # calls for bids to the crashed provider are dropped


def test_a_run_with_a_crashed_agent_resumes_from_any_checkpoint_to_the_same_log(tmp_path, monkeypatch):
    real_add = World.add

    def add(self, agent, **kw):
        if agent.id == "provider-2":
            agent.__class__ = RaisesInRound5
        return real_add(self, agent, **kw)

    monkeypatch.setattr(World, "add", add)
    sets = ["run.rounds=40", "run.checkpoint_every=10"]
    run_scenario("quickstart", overrides=sets, out=tmp_path / "whole")
    whole = (tmp_path / "whole" / "events.msgpack").read_bytes()
    checkpoints = [r.t for r in read_log(tmp_path / "whole" / "events.msgpack").records
                   if type(r).__name__ == "Checkpoint"]
    assert checkpoints == [9.5, 19.5, 29.5, 39.5]  # all after the crash in round 5
    # a resumed provider-2 that ran again would bid in the rounds after the cut: the bytes would differ
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 100):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "events.msgpack").write_bytes(whole[:cut])
        resume_scenario(d)
        assert (d / "events.msgpack").read_bytes() == whole


class RaisesAtQuery7(ProcurementUser):
    def send(self, dst: str, msg: Any) -> bool:
        if type(msg) is Query and msg.query_id == 7:
            raise KeyError("query 7")
        return super().send(dst, msg)


def test_a_user_that_raises_ends_its_own_part_and_the_run_ends_with_a_footer(tmp_path):
    records, summary = _quickstart(tmp_path, "user", {"user": RaisesAtQuery7})
    assert isinstance(records[-1], Footer)
    assert summary["rounds"] == 7 and summary["faults"] == {"crashed": 1}
    why = [r for r in records if isinstance(r, Rejected) and r.code == "agent_exception"]
    assert [(r.offender, r.field) for r in why] == [("user", "KeyError")] and "query 7" in why[0].detail


def test_fail_fast_ends_the_run_at_the_first_exception_with_the_fault_logged_and_no_footer(tmp_path):
    with pytest.raises(AgentFailed, match=r"agent 'provider-2' failed: ValueError: no bid for round 5"):
        _quickstart(tmp_path, "ff", {"provider-2": RaisesInRound5}, fail_fast=True)
    records = read_log(tmp_path / "ff" / "events.msgpack").records
    assert not any(isinstance(r, Footer) for r in records)
    assert [(r.agent, r.event) for r in records if isinstance(r, AgentFault)] == [("provider-2", "crashed")]
    assert not (tmp_path / "ff" / "summary.json").exists()


def test_fail_fast_is_a_flag_of_llm_market_run(tmp_path, capsys, monkeypatch):
    from market.lab import cli

    real_add = World.add

    def add(self, agent, **kw):
        if agent.id == "provider-2":
            agent.__class__ = RaisesInRound5
        return real_add(self, agent, **kw)

    monkeypatch.setattr(World, "add", add)
    code = cli.main(["run", "quickstart", "--rounds", "20", "--out", str(tmp_path / "r"), "--fail-fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == ["run failed: agent 'provider-2' failed: ValueError: no bid for round 5"]


class LogsAForgedTransfer(Provider):
    def on_stop(self) -> None:
        assert self._record is not None
        self._record(LedgerTransfer(0.0, "user", self.id, 10**9, "payment"))


def test_an_agent_logs_only_rejects_a_forged_transfer_crashes_it(tmp_path):
    records, summary = _quickstart(tmp_path, "forge", {"provider-1": LogsAForgedTransfer}, rounds=5)
    assert not [r for r in records if isinstance(r, LedgerTransfer) and r.amount_minor == 10**9]
    why = [r for r in records if isinstance(r, Rejected) and r.code == "agent_exception"]
    assert [(r.offender, r.field) for r in why] == [("provider-1", "TypeError")]
    assert sum(summary["balances"].values()) == 0 and isinstance(records[-1], Footer)


# -- wallets ---------------------------------------------------------------------------------


class Payer(Agent):
    def __init__(self, agent_id: str, wallet: Wallet, payments: list[tuple[Any, Any, Any]], *, catch: bool) -> None:
        super().__init__(agent_id)
        self.wallet, self.payments, self.catch = wallet, payments, catch
        self.errors: list[str] = []

    async def run(self) -> None:
        await self.sleep(0.5)
        for dst, amount, memo in self.payments:
            try:
                self.wallet.pay(dst, amount, memo)
            except PaymentRefused as exc:
                if not self.catch:
                    raise
                self.errors.append(str(exc))


@pytest.mark.parametrize(("dst", "amount", "memo", "field"), [
    ("nobody", 5, "tip", "dst"),
    ("user", -5, "tip", "amount"),
    ("user", 5.0, "tip", "amount"),
    ("user", 10**12, "tip", "amount"),  # beyond the payer's balance (no overdraft)
    ("user", 5, "payment", "memo"),  # passing for an auction payment
    ("user", 5, "x" * 65, "memo"),
    ("user", 5, "tip\n", "memo"),
])
def test_a_bad_wallet_payment_is_refused_logged_and_the_run_goes_on(dst, amount, memo, field):
    world = World({}, seed=1)
    world.ledger.open("payer", balance=1000)
    payer = Payer("payer", world.wallet("payer"), [(dst, amount, memo), ("user", 7, "tip")], catch=True)
    _tiny_market(world, [payer])
    world.drain_seconds = 2.0
    summary = world.run()
    assert len(payer.errors) == 1 and payer.errors[0].startswith(f"{field}: ")
    assert summary["rejects"]["payment_refused"] == 1 and summary["rejects_by_offender"]["payer"] == 1
    assert summary["paid"]["payer"] == {"tip": 7} and world.ledger.balance("payer") == 993
    assert world.ledger.total() == 0


def test_an_uncaught_payment_refusal_crashes_the_payer_alone():
    world = World({}, seed=1)
    world.ledger.open("payer", balance=1000)
    payer = Payer("payer", world.wallet("payer"), [("nobody", 5, "tip"), ("user", 7, "tip")], catch=False)
    _tiny_market(world, [payer])
    world.drain_seconds = 2.0
    summary = world.run()
    assert summary["faults"] == {"crashed": 1} and summary["rounds"] == 4
    assert world.ledger.balance("payer") == 1000 and "payer" not in summary["paid"]


def test_a_wallet_pays_only_out_of_its_own_account_whatever_its_account_attribute_says():
    world = World({}, seed=0)
    world.ledger.open("user", balance=100)
    world.ledger.open("mallory")
    wallet = world.wallet("mallory")
    wallet.account = "user"
    with pytest.raises(PaymentRefused, match="amount"):
        wallet.pay("mallory", 50, "tip")  # still mallory's account, which holds nothing
    assert world.ledger.balance("user") == 100
    wallet.pay(EXTERNAL, 0, "tip")  # a zero payment is allowed, as before (a zero serving cost)


# -- bus budgets -----------------------------------------------------------------------------


def _records_bus(limit: RateLimit) -> tuple[Bus, list]:
    records: list = []
    return Bus(asyncio.get_running_loop(), np.random.default_rng(0), record=records.append, limit=limit), records


def test_frames_over_the_budget_are_refused_counted_once_per_window_and_never_logged():
    async def main() -> None:
        bus, records = _records_bus(RateLimit(frames=3, bytes=10**6, window=1.0))
        bus.register("auctioneer")
        a, b = bus.register("a"), bus.register("b")
        sent = [a.send("b", Feedback(i, 1.0)) for i in range(10)]
        assert sent == [True] * 3 + [False] * 7
        assert b.pending() == 3
        errors = [e for e in [a.recv_nowait() for _ in range(a.pending())] if e.src == BUS_ID]
        assert [e.msg.code for e in errors] == ["rate_limited"]  # answered once, not per frame
        assert not [r for r in records if isinstance(r, Rejected)]  # counted at the window's end
        await asyncio.sleep(1.0)
        assert a.send("b", Feedback(10, 1.0))  # a new window, a new budget
        limited = [r for r in records if isinstance(r, Rejected)]
        assert [(r.offender, r.code, r.t) for r in limited] == [("a", "rate_limited", 1.0)]
        assert limited[0].detail.startswith("7 frames refused in [0, 1) s")
        assert len([r for r in records if isinstance(r, MessageSent)]) == 4

    run(main())


def test_the_byte_budget_refuses_large_frames_and_flush_reports_what_is_pending():
    async def main() -> None:
        bus, records = _records_bus(RateLimit(frames=100, bytes=200, window=1.0))
        bus.register("auctioneer")
        a = bus.register("a")
        bus.register("b")
        big = Error("x", "y", "z" * 150)
        assert a.send("b", big)
        assert not a.send("b", big)
        assert a.send("b", Feedback(0, 1.0))  # a small frame still fits
        bus.flush()
        assert [r.detail.split(" s:")[0] for r in records if isinstance(r, Rejected)] == \
            ["1 frames refused in [0, 1)"]
        assert a.send("b", big)  # flush starts every budget afresh (checkpoints call it)

    run(main())


def test_the_auctioneer_has_no_budget_and_a_bad_budget_is_refused():
    async def main() -> None:
        bus, _ = _records_bus(RateLimit(frames=1, bytes=10**6, window=1.0))
        hub = bus.register("auctioneer", ())
        bus.register("p", ("providers",))
        assert all(hub.send("p", Feedback(i, 1.0)) for i in range(50))
        for bad in (RateLimit(0, 10, 1.0), RateLimit(1, 0, 1.0), RateLimit(1, 10, 0.0),
                    RateLimit(1, 10, float("inf")), RateLimit(1.5, 10, 1.0)):  # type: ignore[arg-type]
            with pytest.raises(BusError, match="limit: got"):
                Bus(asyncio.get_running_loop(), np.random.default_rng(0), limit=bad)

    run(main())
