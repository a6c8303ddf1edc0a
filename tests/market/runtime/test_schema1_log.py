"""A schema-1 log written before records were typed still reads, replays and resumes.

``schema1_log/`` was written by the package at commit 391cd47 (records as bare lists) with
``llm-market run faults --rounds 10 --set run.checkpoint_every=5 --set 'hostile.agents=["impersonator"]'
--set hostile.period=9.0 --set 'faults.partitions=[{node="provider-1", start=2.0, end=4.0}]'
--set 'faults.crashes=[{agent="provider-2", at=5.5, restart=7.5, restore="last"}]'``: ten rounds that hold
every record type.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from market.runtime.checkpoint import last_checkpoint
from market.runtime.eventlog import EventLogWriter, read_log
from market.runtime.records import RECORD_TYPES, Checkpoint, Footer, Header
from market.runtime.run import replay

OLD = Path(__file__).resolve().parent / "schema1_log"


def test_it_holds_every_record_type_and_reads_whole():
    contents = read_log(OLD / "events.msgpack")
    assert contents.torn is None and contents.valid_bytes == (OLD / "events.msgpack").stat().st_size
    counts = Counter(type(r).record_type for r in contents.records)
    assert set(counts) == set(RECORD_TYPES)
    header, footer = contents.records[0], contents.records[-1]
    assert isinstance(header, Header) and header.schema == 1 and header.seed == 0
    assert header.config["scenario"]["name"] == "faults" and header.config["run"]["rounds"] == 10
    assert isinstance(footer, Footer) and footer.summary == json.loads((OLD / "summary.json").read_text())


def test_its_records_re_encode_to_the_very_same_bytes(tmp_path):
    path = tmp_path / "events.msgpack"
    w = EventLogWriter(path)
    for rec in read_log(OLD / "events.msgpack").records:
        w.append(rec)
    w.close()
    assert path.read_bytes() == (OLD / "events.msgpack").read_bytes()


def test_replay_recomputes_its_footer():
    footer, recomputed, torn = replay(OLD)
    assert torn is None and footer is not None
    assert set(recomputed) == set(footer)
    # Counts, ledger and feedback come from the records alone and must match exactly. The scenario's
    # metrics (regret) recompute quality dot products, whose last bit depends on the BLAS kernel of the
    # machine that replays (see tests/golden): equal on the writer's kernel, within rounding elsewhere.
    exact = set(footer) - {"metrics"}
    assert {k: recomputed[k] for k in exact} == {k: footer[k] for k in exact}
    assert recomputed["metrics"] == pytest.approx(footer["metrics"], rel=1e-12, abs=1e-12)
    assert recomputed["rounds"] == 10 and recomputed["drops"] > 0 and recomputed["faults"] == {"crash": 1, "restart": 1}


def test_its_last_checkpoint_is_found_for_resume():
    point = last_checkpoint(OLD / "events.msgpack")
    records = read_log(OLD / "events.msgpack").records
    ckpts = [r for r in records if isinstance(r, Checkpoint)]
    assert len(ckpts) == 2 and point.t == ckpts[-1].t
    assert point.config == records[0].config and point.seed == 0
    assert set(point.state) == {"agents", "ledger", "bus", "summary", "world"}
