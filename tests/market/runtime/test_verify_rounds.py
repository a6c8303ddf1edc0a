"""verify's "rounds" check with overlapping auctions: a round may close before an older one only while that
one's call for bids is out and it has not closed; each closes once and none is skipped by the end. A market
of one auction at a time must still close them in order."""

from __future__ import annotations

import pytest

from market.core.wire import CallForBids, encode
from market.runtime.eventlog import iter_frames
from market.runtime.records import LOG_SCHEMA, Header, MessageSent, RoundClosed
from market.runtime.run import run_scenario
from market.runtime.verify import Frame, LogFacts, Rounds, verify_run


def _call(r: int) -> MessageSent:
    msg = CallForBids(round=r, query_id=r, context=(0.5, 0.5), deadline=1.0, user="u")
    return MessageSent(0.0, "auctioneer", "group:providers", "call_for_bids", encode(msg))


def _close(r: int) -> RoundClosed:
    return RoundClosed(0.0, r, r, "p0", (0,), {})


def _check(records: list) -> str | None:
    check = Rounds(LogFacts(Header(LOG_SCHEMA, "0", {"run": {"rounds": 3}}, 0), None))
    for i, rec in enumerate(records):
        check.observe(Frame(i, i), rec)
    return check.result().detail if not check.result().ok else None


def test_in_order_and_overlapping_closes_pass() -> None:
    assert _check([_call(0), _close(0), _call(1), _close(1), _call(2), _close(2)]) is None
    assert _check([_call(0), _call(1), _call(2), _close(2), _close(0), _close(1)]) is None  # 2 before 0 and 1


@pytest.mark.parametrize(("records", "why"), [
    ([_close(1)], "round record 1, expected round 0"),  # round 0 was never called: no overlap to explain it
    ([_call(0), _close(0), _close(2)], "round record 2, expected round 1"),  # 1 not open: a gap
    ([_call(0), _call(1), _close(1), _close(1)], "round record 1, expected round 0"),  # closed twice
    ([_call(0), _close(0), _close(0)], "round record 0, expected round 1"),
    ([_call(0), _call(1), _close(1)], "round 0 never closed, but 1 later ones did"),
])
def test_a_gap_a_repeat_or_a_close_before_an_unopened_round_fails(records: list, why: str) -> None:
    detail = _check(records)
    assert detail is not None and why in detail, detail


def test_a_crowd_run_whose_auctions_close_out_of_order_passes_verify(tmp_path) -> None:
    out = tmp_path / "run"
    run_scenario("crowd", rounds=150, out=out, overrides=[
        "market.users=200", "market.providers=30", "market.max_bidders=5", "crowd.rates=[1.0, 5.0]",
        "run.log=compact"])
    closed = [r.round for _, r, _ in iter_frames(out / "events.msgpack") if isinstance(r, RoundClosed)]
    assert sorted(closed) == list(range(150)) and closed != sorted(closed)
    report = verify_run(out)
    assert report.ok, [c.detail for c in report.failed()]
