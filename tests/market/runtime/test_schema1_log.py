"""A schema-1 log (unnumbered, unchained frames) is refused with what to do, by every reader.

``schema1_log/`` was written by the package at commit 391cd47 with ``llm-market run faults --rounds 10
--set run.checkpoint_every=5 ...``. Schema 2 frames carry a sequence number and a self-checking head
and are hash-chained; a schema-1 log has neither, so it could be neither told torn from corrupt nor
checked against a digest: it is not read, and its config.toml is what runs it again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from market.lab.cli import main
from market.runtime.checkpoint import last_checkpoint
from market.runtime.eventlog import EventLogError, chain_digest, read_log
from market.runtime.run import replay

OLD = Path(__file__).resolve().parent / "schema1_log"
WORDS = "schema-1 event log; this package reads schema 2"


@pytest.mark.parametrize("reader", [read_log, chain_digest, last_checkpoint])
def test_every_reader_refuses_it_naming_the_schema(reader):
    with pytest.raises(EventLogError, match=WORDS) as info:
        reader(OLD / "events.msgpack")
    assert "run the scenario again" in str(info.value) and "config.toml" in str(info.value)


def test_replay_refuses_it_in_one_line(capsys):
    with pytest.raises(EventLogError, match=WORDS):
        replay(OLD)
    assert main(["replay", str(OLD)]) == 2
    err = capsys.readouterr().err
    assert WORDS in err and len(err.strip().splitlines()) == 1
