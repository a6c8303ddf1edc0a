"""A forged log: frames rewritten with their checks recomputed, the footer recomputed with the package's own
``SummaryAccumulator`` and observers, summary.json and config.toml rewritten to match. Each frame passes its
CRC and the footer is what the records add up to, so ``replay`` once said OK; ``verify`` reconciles the
records with each other, with the builder and with the config, and ``--resimulate`` runs the market again.

The forger reads records with ``iter_frames`` and writes them with ``EventLogWriter``: whatever the frame
format, the rewritten frames are well formed.

Detected by reconciliation alone: minted money (from outside the market, or in an opening balance),
redirected payments (also with the round's winner rewritten), a deleted round (renumbered or not) and a
changed mechanism (the mechanism, run again on the logged bids, gives other winners and payments). Not
detected by reconciliation: a changed feedback reward under a mechanism that does not learn from feedback
(Myerson with known qualities): the records stay consistent with each other; only the resimulation, or the
hash chain against a digest kept elsewhere (the one ``run`` printed), shows it.

The forger here also remakes the chain's digest beside the log (``events.digest``, summary.json's "log"):
the strongest forger who has the files but not the digest kept elsewhere nor a chain key.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from market.core.ledger import EXTERNAL, MINOR_PER_UNIT
from market.lab.cli import main
from market.runtime.config import dump_toml
from market.runtime.eventlog import EventLogWriter, iter_frames
from market.runtime.records import (
    Expired,
    FeedbackAccepted,
    Footer,
    Header,
    LedgerTransfer,
    Record,
    RoundClosed,
)
from market.runtime.run import replay, run_scenario
from market.runtime.summary import SummaryAccumulator
from market.runtime.verify import verify_run
from scenarios import procurement

ROUNDS = 300
Mutation = Callable[[list[Record]], list[Record]]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A quickstart run of 300 rounds, finished: header, records, footer, summary.json, config.toml."""
    out = tmp_path_factory.mktemp("quickstart") / "run"
    run_scenario("quickstart", rounds=ROUNDS, out=out)
    return out


def forge(src: Path, dst: Path, mutate: Mutation) -> Path:
    """Copy the run in ``src`` to ``dst`` with its records (footer excluded) passed through ``mutate``,
    the footer, summary.json and config.toml recomputed from the forged records."""
    records = mutate([rec for _, rec, _ in iter_frames(src / "events.msgpack") if not isinstance(rec, Footer)])
    header = records[0]
    assert isinstance(header, Header)
    dst.mkdir(parents=True)
    acc = SummaryAccumulator()
    observers = procurement.SCENARIO.observers(header.config, header.seed)
    writer = EventLogWriter(dst / "events.msgpack", observers=[acc, *observers])
    for rec in records:
        writer.append(rec)
    summary = acc.result()
    summary["metrics"] = {k: v for m in observers for k, v in m.result().items()}
    writer.append(Footer(summary))
    writer.close()
    chain = writer.chain
    summary["log"] = {"digest": chain.digest, "frames": chain.frames, "bytes": chain.bytes, "keyed": chain.keyed}
    (dst / "events.digest").write_text(chain.digest + "\n")
    (dst / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (dst / "config.toml").write_text(dump_toml(header.config))
    return dst


# -- the forgeries ------------------------------------------------------------------------------------


def mint_from_outside(records: list[Record]) -> list[Record]:
    """10^6 credits from outside the market to provider-0, as a payment, after round 150."""
    at = next(i for i, r in enumerate(records) if isinstance(r, RoundClosed) and r.round == 150)
    t = records[at].t  # type: ignore[attr-defined]
    gift = LedgerTransfer(t, EXTERNAL, "provider-0", 10**6 * MINOR_PER_UNIT, "payment")
    return records[:at + 1] + [gift] + records[at + 1:]


def mint_in_the_opening(records: list[Record]) -> list[Record]:
    """The user's opening balance raised by 10^6 credits."""
    return [replace(r, amount_minor=r.amount_minor + 10**6 * MINOR_PER_UNIT)
            if isinstance(r, LedgerTransfer) and r.memo == "opening balance" else r for r in records]


def _other(provider: str) -> str:
    i = int(provider.rsplit("-", 1)[1])
    return f"provider-{(i + 1) % 5}"


def redirect_payments(records: list[Record]) -> list[Record]:
    """50 payments paid to another provider than the winner."""
    out, moved = [], 0
    for r in records:
        if isinstance(r, LedgerTransfer) and r.memo == "payment" and moved < 50:
            r = replace(r, dst=_other(r.dst))
            moved += 1
        out.append(r)
    assert moved == 50
    return out


def redirect_payments_and_winners(records: list[Record]) -> list[Record]:
    """50 payments paid to another provider, and those rounds' records rewritten to name it the winner,
    its index paid: the transfers and the round records agree."""
    out: list[Record] = []
    moved = 0
    pending: LedgerTransfer | None = None
    for r in records:
        if isinstance(r, LedgerTransfer) and r.memo == "payment" and moved < 50:
            pending = r = replace(r, dst=_other(r.dst))
            moved += 1
        elif isinstance(r, RoundClosed) and pending is not None:
            j = int(pending.dst.rsplit("-", 1)[1])
            pays = [0] * len(r.payments_minor)
            pays[j] = pending.amount_minor
            r = replace(r, winner=pending.dst, payments_minor=tuple(pays))
            pending = None
        out.append(r)
    return out


def _delete_round(records: list[Record], k: int, renumber: bool) -> list[Record]:
    """Round k's record and its payment gone (299 rounds where the header says 300)."""
    at = next(i for i, r in enumerate(records) if isinstance(r, RoundClosed) and r.round == k)
    before = records[at - 1]
    drop = {at, at - 1} if isinstance(before, LedgerTransfer) and before.memo == "payment" else {at}
    out: list[Record] = []
    for i, r in enumerate(records):
        if i in drop:
            continue
        if renumber and isinstance(r, (RoundClosed, FeedbackAccepted, Expired)) and r.round > k:
            r = replace(r, round=r.round - 1)
        out.append(r)
    return out


def delete_a_round(records: list[Record]) -> list[Record]:
    return _delete_round(records, 120, renumber=True)


def delete_a_round_leaving_a_gap(records: list[Record]) -> list[Record]:
    return _delete_round(records, 120, renumber=False)


def change_the_mechanism(records: list[Record]) -> list[Record]:
    """The header says pay-as-bid where the run was a Myerson auction (config.toml says so too)."""
    header = records[0]
    assert isinstance(header, Header) and header.config["mechanism"]["name"] == "myerson"
    config = json.loads(json.dumps(header.config))
    config["mechanism"]["name"] = "pay-as-bid"
    return [replace(header, config=config), *records[1:]]


FORGERIES = {
    "minted from outside": (mint_from_outside, "transfers"),
    "minted in the opening": (mint_in_the_opening, "money"),
    "50 payments redirected": (redirect_payments, "transfers"),
    "50 payments and winners redirected": (redirect_payments_and_winners, "mechanism"),
    "a round deleted": (delete_a_round, "rounds"),
    "a round deleted, a gap left": (delete_a_round_leaving_a_gap, "rounds"),
    "the mechanism changed": (change_the_mechanism, "mechanism"),
}


@pytest.mark.parametrize("name", FORGERIES)
def test_a_consistent_forgery_still_passes_every_frame_check_and_the_summary(finished_run, tmp_path, name):
    """The attack as it was: the package's own replay recomputes the forged footer exactly."""
    mutate, _ = FORGERIES[name]
    forged = forge(finished_run, tmp_path / "forged", mutate)
    footer, recomputed, torn = replay(forged)
    assert torn is None and footer == recomputed


@pytest.mark.parametrize("name", FORGERIES)
def test_verify_and_replay_detect_each_forgery_by_reconciliation(finished_run, tmp_path, name, capsys):
    mutate, check = FORGERIES[name]
    forged = forge(finished_run, tmp_path / "forged", mutate)
    report = verify_run(forged)
    failed = {c.name: c.detail for c in report.failed()}
    assert not report.ok and check in failed, [c.line() for c in report.checks]
    assert "frame " in failed[check]  # the first offending frame is named
    assert {"log", "chain", "summary", "summary.json", "config.toml"}.isdisjoint(failed)  # consistent forgery
    capsys.readouterr()
    assert main(["verify", str(forged)]) == 1
    assert f"{check}: FAILED: " in capsys.readouterr().out
    assert main(["replay", str(forged)]) == 1
    assert f"{check}: FAILED: " in capsys.readouterr().out


def change_a_reward(records: list[Record]) -> list[Record]:
    return [replace(r, reward=r.reward + 0.5) if isinstance(r, FeedbackAccepted) and r.round == 7 else r
            for r in records]


def test_a_reward_changed_under_a_mechanism_that_ignores_it_is_consistent_so_only_resimulation_shows_it(
        finished_run, tmp_path):
    """The limit of reconciliation: Myerson with known qualities does not learn from feedback, so one
    changed reward leaves every record consistent with every other."""
    forged = forge(finished_run, tmp_path / "forged", change_a_reward)
    assert verify_run(forged).ok
    report = verify_run(forged, resimulate=True)
    assert [c.name for c in report.failed()] == ["resimulate"]
    kept = (finished_run / "events.digest").read_text().strip()  # the digest run printed, kept elsewhere
    assert [c.name for c in verify_run(forged, digest=kept).failed()] == ["chain"]


@pytest.mark.parametrize("name", [*FORGERIES, "a reward changed"])
def test_resimulation_detects_every_forgery(finished_run, tmp_path, name, capsys):
    mutate = change_a_reward if name == "a reward changed" else FORGERIES[name][0]
    forged = forge(finished_run, tmp_path / "forged", mutate)
    report = verify_run(forged, resimulate=True)
    resim = next(c for c in report.checks if c.name == "resimulate")
    assert not resim.ok and "differs from a fresh run" in resim.detail and "at byte " in resim.detail
    capsys.readouterr()
    assert main(["verify", str(forged), "--resimulate"]) == 1
    assert "resimulate: FAILED: " in capsys.readouterr().out


def test_the_untouched_run_passes_every_check_and_its_resimulation(finished_run, tmp_path, capsys):
    copy = Path(shutil.copytree(finished_run, tmp_path / "copy"))
    report = verify_run(copy, resimulate=True)
    assert report.ok, [c.line() for c in report.failed()]
    assert [c.name for c in report.checks] == ["log", "chain", "transfers", "money", "rounds", "mechanism", "summary",
                                               "summary.json", "config.toml", "resimulate"]
    assert main(["verify", str(copy), "--resimulate"]) == 0
    assert main(["replay", str(copy)]) == 0
