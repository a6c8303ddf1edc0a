"""Attacks on the isolation of agents, as a hostile or careless agent would try them (issue 15):
bidding in another provider's name through the port's private attributes, moving money out of the user's
account through the wallet's, flooding another agent with legal frames, and raising an exception.
Each is refused or contained, and the log shows it."""

from __future__ import annotations

import functools
from typing import Any

from agents.providers import Provider
from market.core.wire import Bid, Query
from market.runtime import world as world_module
from market.runtime.bus import DEFAULT_LIMIT, Bus, Port
from market.runtime.eventlog import read_log
from market.runtime.records import AgentFault, Footer, LedgerTransfer, MessageSent, Rejected, RoundClosed
from market.runtime.run import run_scenario
from market.runtime.world import World

ROUNDS = 60


def _run(tmp_path, name: str, patch: dict[str, type], rounds: int = ROUNDS) -> tuple[list, dict, dict[str, Any]]:
    """The quickstart with some agents' classes swapped for attacking subclasses; returns the log's
    records, the summary and the attacking agents."""
    real_add = World.add
    attackers: dict[str, Any] = {}

    def add(self, agent, **kw):
        if agent.id in patch:
            agent.__class__ = patch[agent.id]
            attackers[agent.id] = agent
        return real_add(self, agent, **kw)

    World.add = add  # type: ignore[method-assign]
    try:
        _, summary, _ = run_scenario("quickstart", rounds=rounds, out=tmp_path / name)
    finally:
        World.add = real_add  # type: ignore[method-assign]
    return read_log(tmp_path / name / "events.msgpack").records, summary, attackers


def _attribute_values(obj: Any) -> list[Any]:
    """Every attribute of ``obj``, private ones and slots included."""
    names = set(dir(obj))
    for klass in type(obj).__mro__:
        slots = vars(klass).get("__slots__", ())
        names.update([slots] if isinstance(slots, str) else slots)
    values = []
    for name in names - {"__class__"}:
        try:
            values.append(getattr(obj, name))
        except Exception:
            continue
    return values


class Impersonator(Provider):
    """provider-0, which tries to bid in provider-1's name before each of its own bids."""

    tried = 0
    reached: list[str] = []

    def send(self, dst: str, msg: Any) -> bool:
        if type(msg) is Bid:
            type(self).tried += 1
            try:  # the issue's path
                victim = self.port._bus._ports["provider-1"]  # type: ignore[attr-defined]
                victim.send("auctioneer", Bid(msg.round, 0.0))
                type(self).reached.append("port._bus._ports")
            except AttributeError:
                pass
            for level1 in _attribute_values(self.port):  # any attribute, two levels down
                for obj in [level1, *_attribute_values(level1)]:
                    if isinstance(obj, Bus) or (isinstance(obj, Port) and obj is not self.port):
                        type(self).reached.append(type(obj).__name__)
        return super().send(dst, msg)


def test_a_provider_cannot_bid_in_another_providers_name(tmp_path):
    records, summary, _ = _run(tmp_path, "impersonate", {"provider-0": Impersonator})
    assert Impersonator.tried == ROUNDS and Impersonator.reached == []
    # provider-1's own bids are never taken for duplicates, and every round has all five bids
    assert not [r for r in records if isinstance(r, Rejected) and r.code == "duplicate"]
    assert all(r.extra["present"] == [True] * 5 for r in records if isinstance(r, RoundClosed))
    bids = [r for r in records if isinstance(r, MessageSent) and r.kind == "bid"]
    assert len(bids) == 5 * ROUNDS


class Thief(Provider):
    """A provider that tries to move money out of the user's account through its wallet."""

    tried = 0
    reached: list[str] = []

    def send(self, dst: str, msg: Any) -> bool:
        if type(msg) is Bid:
            type(self).tried += 1
            try:  # the issue's path
                self.wallet._ledger.transfer("user", self.id, 10**6, "payment")  # type: ignore[attr-defined]
                type(self).reached.append("wallet._ledger")
            except AttributeError:
                pass
            for level1 in _attribute_values(self.wallet):
                for obj in [level1, *_attribute_values(level1)]:
                    if type(obj).__name__ in ("Ledger", "World"):
                        type(self).reached.append(type(obj).__name__)
            # the wallet pays out of its own account only, and not as an auction payment
            try:
                self.wallet.pay("user", 1, "payment")
            except world_module.PaymentRefused:
                pass
        return super().send(dst, msg)


def test_a_provider_cannot_move_money_out_of_the_users_account(tmp_path):
    records, summary, _ = _run(tmp_path, "thief", {"provider-2": Thief})
    assert Thief.tried == ROUNDS and Thief.reached == []
    transfers = [r for r in records if isinstance(r, LedgerTransfer) and r.src == "user"]
    paid_in_rounds = sum(sum(r.payments_minor) for r in records if isinstance(r, RoundClosed))
    assert sum(t.amount_minor for t in transfers) == paid_in_rounds  # every unit the user lost, a round explains
    assert summary["rejects"]["payment_refused"] == ROUNDS and sum(summary["balances"].values()) == 0


FLOOD = 1000
BIG_CONTEXT = (0.5,) * 3000  # a legal query of about 27 KB


class Flooder(Provider):
    """provider-3, which sends 1,000 legal frames to provider-1 (not to the auctioneer) in round 10."""

    def send(self, dst: str, msg: Any) -> bool:
        if type(msg) is Bid and msg.round == 10:
            for i in range(FLOOD):
                self.port.send("provider-1", Query(i, BIG_CONTEXT))
        return super().send(dst, msg)


def test_a_flood_of_legal_frames_to_another_agent_grows_the_log_by_a_bounded_amount(tmp_path, monkeypatch):
    _run(tmp_path, "clean", {})
    _, _, _ = _run(tmp_path, "flood", {"provider-3": Flooder})
    clean = (tmp_path / "clean" / "events.msgpack").stat().st_size
    flooded = (tmp_path / "flood" / "events.msgpack").stat().st_size
    records = read_log(tmp_path / "flood" / "events.msgpack").records
    limited = [r for r in records if isinstance(r, Rejected) and r.code == "rate_limited"]
    through = [r for r in records if isinstance(r, MessageSent) and r.src == "provider-3" and r.kind == "query"]
    assert [r.offender for r in limited] == ["provider-3"]  # one record for the window, with the count
    assert limited[0].detail.startswith(f"{FLOOD - len(through)} frames refused")
    assert sum(len(r.frame) for r in through) <= DEFAULT_LIMIT.bytes and len(through) < DEFAULT_LIMIT.frames
    # what got through is bounded by one window's byte budget, plus the frames' log overhead
    assert flooded - clean < DEFAULT_LIMIT.bytes + 64 * DEFAULT_LIMIT.frames
    # without the budget the same flood is logged in full
    monkeypatch.setattr(world_module, "Bus", functools.partial(Bus, limit=None))
    _run(tmp_path, "unbounded", {"provider-3": Flooder})
    unbounded = (tmp_path / "unbounded" / "events.msgpack").stat().st_size
    assert unbounded - clean > FLOOD * len(BIG_CONTEXT) * 8


class Raises(Provider):
    def send(self, dst: str, msg: Any) -> bool:
        if type(msg) is Bid and msg.round == 5:
            raise RuntimeError("strategy blew up")
        return super().send(dst, msg)


def test_one_agents_exception_does_not_end_the_run(tmp_path):
    records, summary, _ = _run(tmp_path, "raise", {"provider-4": Raises})
    assert isinstance(records[-1], Footer) and (tmp_path / "raise" / "summary.json").exists()
    assert summary["rounds"] == ROUNDS and summary["faults"] == {"crashed": 1}
    assert [(r.agent, r.event) for r in records if isinstance(r, AgentFault)] == [("provider-4", "crashed")]
    after = [r.winner for r in records if isinstance(r, RoundClosed) and r.round > 5 and r.winner]
    assert len(after) > ROUNDS // 2 and "provider-4" not in after  # the four others kept winning rounds
