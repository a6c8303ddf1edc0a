"""A forged log cannot pass for the one a run wrote: the hash chain over its frames gives it away.

The forgery of issue 15: rewrite a finished log (mint money, redirect 50 payments, delete a round,
change the header's mechanism), recompute every frame's CRCs and sequence numbers and the footer with
the package's own SummaryAccumulator. Such a log reads without a single error, but its chain digest
differs from the one the run printed and wrote. A forger who also rewrites events.digest and
summary.json is caught by the digest the user kept (the printed line); with a key file, they cannot
make a keyed digest that matches at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from market.lab.cli import main
from market.runtime.eventlog import EventLogWriter, chain_digest, read_log
from market.runtime.records import Footer, Header, LedgerTransfer, Record, RoundClosed
from market.runtime.run import scenario_observers
from market.runtime.summary import SummaryAccumulator

KEY = b"the run's own secret key\n"
PRINTED = re.compile(r"^log digest: ([0-9a-f]{64}) \((\d+) frames, (keyed|unkeyed)\)$", re.M)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    (root / "key").write_bytes(KEY)
    printed = {}  # a module fixture: stdout is captured by hand
    for name, extra in (("plain", ()), ("keyed", ("--key-file", str(root / "key")))):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["run", "quickstart", "--rounds", "300", "--out", str(root / name), *extra]) == 0
        found = PRINTED.findall(buf.getvalue())
        assert len(found) == 1 and found[0][2] == ("keyed" if extra else "unkeyed")
        printed[name] = found[0][0]
    return root, printed


def _mint(records: list[Record]) -> list[Record]:
    """One more million minor units into the user's opening budget."""
    i = next(i for i, r in enumerate(records) if isinstance(r, LedgerTransfer))
    records[i] = replace(records[i], amount_minor=records[i].amount_minor + 10**6)
    return records


def _redirect(records: list[Record]) -> list[Record]:
    """50 payments to whoever won go to provider-0 instead."""
    idx = [i for i, r in enumerate(records)
           if isinstance(r, LedgerTransfer) and r.memo == "payment" and r.dst != "provider-0"][:50]
    assert len(idx) == 50
    for i in idx:
        records[i] = replace(records[i], dst="provider-0")
    return records


def _delete_round(records: list[Record]) -> list[Record]:
    i = next(i for i, r in enumerate(records) if isinstance(r, RoundClosed) and r.round == 150)
    return records[:i] + records[i + 1:]


def _mechanism(records: list[Record]) -> list[Record]:
    h = records[0]
    assert isinstance(h, Header) and h.config["mechanism"]["name"] != "pay-as-bid"
    records[0] = replace(h, config={**h.config, "mechanism": {**h.config["mechanism"], "name": "pay-as-bid"}})
    return records


def _forge(src: Path, dst: Path, change) -> str:
    """Rewrite ``src``'s log into ``dst`` the way a forger with the package would: changed records, every
    frame re-made (CRCs, sequence numbers) by the package's writer, the footer recomputed, and
    events.digest and summary.json rewritten to match. Returns the forger's (unkeyed) digest."""
    records = [r for r in read_log(src / "events.msgpack").records if not isinstance(r, Footer)]
    records = change(records)
    header = records[0]
    assert isinstance(header, Header)
    acc, metrics = SummaryAccumulator(), scenario_observers(header.config, header.seed)
    for r in records:
        acc.observe(r)
        for m in metrics:
            m.observe(r)
    summary = acc.result()
    summary["metrics"] = {k: v for m in metrics for k, v in m.result().items()}
    dst.mkdir()
    w = EventLogWriter(dst / "events.msgpack")
    for r in [*records, Footer(summary)]:
        w.append(r)
    w.close()
    (dst / "events.digest").write_text(w.digest + "\n")
    (dst / "summary.json").write_text(json.dumps({**summary, "log": {"digest": w.digest}}))
    return w.digest


FORGERIES = {"mint": _mint, "redirect-50-payments": _redirect, "delete-a-round": _delete_round,
             "change-the-mechanism": _mechanism}


def test_the_printed_digest_is_the_chain_of_the_log_and_is_written_beside_it(runs):
    root, printed = runs
    d = root / "plain"
    chain = chain_digest(d / "events.msgpack")
    log = json.loads((d / "summary.json").read_text())["log"]
    assert chain.digest == printed["plain"] == (d / "events.digest").read_text().strip() == log["digest"]
    assert (d / "events.digest").read_text() == chain.digest + "\n"
    assert log == {"digest": chain.digest, "frames": chain.frames, "bytes": (d / "events.msgpack").stat().st_size,
                   "keyed": False}


@pytest.mark.parametrize("name", FORGERIES)
def test_a_forged_log_reads_cleanly_but_its_chain_differs_from_every_digest_the_run_left(runs, tmp_path, name):
    root, printed = runs
    original = root / "plain"
    forged = tmp_path / name
    forger_digest = _forge(original, forged, FORGERIES[name])
    read_log(forged / "events.msgpack")  # CRCs, sequence numbers, records: all in order
    got = chain_digest(forged / "events.msgpack").digest
    assert got == forger_digest  # the forger can recompute an unkeyed chain...
    assert got != printed["plain"]  # ...but not the digest the user kept from the run's output
    assert got != (original / "events.digest").read_text().strip()
    assert got != json.loads((original / "summary.json").read_text())["log"]["digest"]


@pytest.mark.parametrize("name", FORGERIES)
def test_with_a_key_file_a_forger_without_the_key_cannot_make_a_matching_digest(runs, tmp_path, name):
    root, printed = runs
    original = root / "keyed"
    assert chain_digest(original / "events.msgpack", KEY).digest == printed["keyed"]  # the untouched log holds
    assert chain_digest(original / "events.msgpack").digest != printed["keyed"]  # the key is needed to check it
    forged = tmp_path / name
    forger_digest = _forge(original, forged, FORGERIES[name])
    # the forger wrote their own events.digest; whoever holds the key recomputes the keyed chain instead
    assert forger_digest == (forged / "events.digest").read_text().strip() != printed["keyed"]
    assert chain_digest(forged / "events.msgpack", KEY).digest != printed["keyed"]
    for guess in (b"", b"key", KEY.strip()):
        assert chain_digest(forged / "events.msgpack", guess or None).digest != printed["keyed"]


def test_a_key_file_that_is_empty_or_missing_is_a_one_line_error_naming_it(tmp_path, capsys):
    (tmp_path / "empty").write_bytes(b"")
    for key, words in ((tmp_path / "empty", "is empty"), (tmp_path / "nope", "cannot be read")):
        assert main(["run", "quickstart", "--rounds", "5", "--out", str(tmp_path / "run"),
                     "--key-file", str(key)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"key file {key}: {words}" in err
        assert not (tmp_path / "run").exists()  # refused before anything was written
