"""Hostile agents: every attack is refused and logged with the offender's id, no allocation or payment
changes, nothing sealed leaks, and a flood is rate-limited while the market keeps its pace."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agents.hostile import HOSTILES, Hostile
from market.runtime.bus import DEFAULT_LIMIT
from market.runtime.config import ConfigError
from market.runtime.eventlog import read_log
from market.runtime.records import LedgerTransfer, MessageSent, Rejected, RoundClosed
from market.runtime.run import replay, run_scenario
from market.runtime.world import World

ROUNDS = 300


def run_with(tmp_path, name, agents):
    seen: dict[str, Hostile] = {}
    real_add = World.add

    def keep(self, agent, **kw):  # keep the hostile agents to look at what they received
        if isinstance(agent, Hostile):
            seen[agent.id] = agent
        return real_add(self, agent, **kw)

    World.add = keep
    try:
        sets = [f"hostile.agents={agents!r}".replace("'", '"'), f"run.rounds={ROUNDS}"]
        _, summary, _ = run_scenario("hostile", overrides=sets, out=tmp_path / name)
    finally:
        World.add = real_add
    return read_log(tmp_path / name / "events.msgpack").records, summary, seen


def outcomes(records):
    """Rounds (winner, payments, resampling, who bid) and every ledger transfer, whenever they happened."""
    return [replace(r, t=0.0) for r in records if isinstance(r, (RoundClosed, LedgerTransfer))]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def runs(runs_dir):
    base = runs_dir
    clean = run_with(base, "clean", [])
    each = {name: run_with(base, name, [name]) for name in HOSTILES}
    every = run_with(base, "all", list(HOSTILES))
    return clean, each, every


@pytest.mark.parametrize("name", sorted(HOSTILES))
def test_no_hostile_agent_changes_an_allocation_or_a_payment(runs, name):
    (clean, _, _), each, _ = runs
    records, summary, _ = each[name]
    assert outcomes(records) == outcomes(clean)
    assert summary["rounds"] == ROUNDS


def test_all_of_them_together_change_nothing_either(runs):
    (clean, clean_summary, _), _, (records, summary, _) = runs
    assert outcomes(records) == outcomes(clean)
    for key in ("balances", "wins", "rounds", "unsold", "received", "paid"):
        assert summary[key] == clean_summary[key]
    assert summary["metrics"] == clean_summary["metrics"]


@pytest.mark.parametrize("name", sorted(HOSTILES))
def test_every_attack_is_refused_and_logged_with_the_offenders_id(runs, name):
    _, each, _ = runs
    records, summary, agents = each[name]
    me = f"hostile-{name}"
    sent = [r for r in records if isinstance(r, MessageSent) and r.src == me]
    rejects = [r for r in records if isinstance(r, Rejected) and r.offender == me]
    assert agents[me].attempts == ROUNDS // 10 and rejects
    assert set(summary["rejects_by_offender"]) == {me}  # nobody else is ever blamed
    to_market = [r for r in sent if r.dst == "auctioneer"]
    # everything it got through the bus to the auctioneer was refused there; the bus refused the rest
    assert len(rejects) >= len(to_market)
    # the auctioneer and the bus answer each refusal with an error; providers and users log theirs unanswered
    silent = [r for r in rejects if r.code in ("unexpected_sender", "unexpected_kind")]
    assert agents[me].refusals and sum(agents[me].refusals.values()) == len(rejects) - len(silent)
    if name == "replayer":  # it replays calls for bids to the providers: each provider logs the forgery
        assert silent and all(r.field == "src" and "expected it from 'auctioneer'" in r.detail for r in silent)


@pytest.mark.parametrize("name", sorted(HOSTILES))
def test_no_hostile_agent_learns_a_sealed_bid_or_another_providers_result(runs, name):
    _, each, _ = runs
    _, _, agents = each[name]
    received = set(agents[f"hostile-{name}"].received)
    # calls for bids are public to providers; errors are the replies to its own attempts
    assert received <= {"call_for_bids", "error"}


def test_the_eavesdropper_in_the_providers_group_hears_only_calls_for_bids(runs):
    _, each, _ = runs
    spy = each["eavesdropper"][2]["hostile-eavesdropper"]
    assert spy.received["call_for_bids"] == ROUNDS
    assert spy.refusals["sealed"] > 0 and spy.refusals["unknown_agent"] > 0


def test_a_flood_is_rate_limited_and_the_market_keeps_its_pace(runs):
    (clean, _, _), each, _ = runs
    records, summary, agents = each["flooder"]
    # 300 frames at each attack against the bus's budget of 64 a window: one record per flooded window,
    # with the count of the frames refused; none of them is logged or reaches the auctioneer
    limited = [r for r in records if isinstance(r, Rejected) and r.code == "rate_limited"]
    assert summary["rejects"]["rate_limited"] == len(limited) == ROUNDS // 10
    refused = 300 - DEFAULT_LIMIT.frames
    assert all(r.offender == "hostile-flooder" and r.detail.startswith(f"{refused} frames refused") for r in limited)
    sent = [r for r in records if isinstance(r, MessageSent) and r.src == "hostile-flooder"]
    assert len(sent) == ROUNDS // 10 * DEFAULT_LIMIT.frames
    assert agents["hostile-flooder"].refusals["rate_limited"] == ROUNDS // 10  # one answer per window, not per frame
    rounds = [r.t for r in records if isinstance(r, RoundClosed)]
    assert rounds == [r.t for r in clean if isinstance(r, RoundClosed)]  # every round closes when it did


def test_malformed_frames_never_reach_the_auctioneer(runs):
    _, each, _ = runs
    records, summary, _ = each["garbler"]
    assert summary["rejects"] == {"malformed": ROUNDS // 10 * 10}
    assert not [r for r in records if isinstance(r, MessageSent) and r.src == "hostile-garbler"]


def test_hostile_runs_replay_and_conserve_money(runs, runs_dir):
    path = runs_dir / "all"  # not a glob of the base temp dir: other modules' dirs may be called "hostile..." too
    footer, recomputed, torn = replay(path)
    assert torn is None and footer == recomputed
    assert sum(recomputed["balances"].values()) == 0


def test_unknown_hostile_names_are_refused():
    with pytest.raises(ConfigError, match=r"hostile.agents\[0\]: hostile agent: unknown name 'troll'; known: eav"):
        run_scenario("hostile", overrides=['hostile.agents=["troll"]', "run.rounds=4"])
