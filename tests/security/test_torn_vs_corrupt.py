"""Corruption mid-file is not taken for a crash; a crash's torn tail still is one.

Issue 15: one flipped bit in a frame's length field mid-file read as a torn tail: replay said "the run
did not finish" and ignored the rest, and --resume silently threw 1.18 MB away and resumed from an
earlier checkpoint. Now the damaged frame is reported at its byte offset and frame number, replay and
--resume refuse, and nothing is cut. A real torn tail resumes as before, the cut bytes moved aside (not
deleted), and ends with the very log and digest of an uninterrupted run.
"""

from __future__ import annotations

import json

import pytest

from market.lab.cli import main
from market.runtime.eventlog import HEAD_SIZE, MAGIC, EventLogError, chain_digest, iter_frames, read_log
from market.runtime.records import Checkpoint
from market.runtime.run import replay

ARGS = ["--rounds", "300", "--set", "run.checkpoint_every=50"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    d = tmp_path_factory.mktemp("whole")
    assert main(["run", "quickstart", "--out", str(d), *ARGS]) == 0
    return d


def _starts(data: bytes) -> list[int]:
    starts, at = [], len(MAGIC)
    while at < len(data):
        starts.append(at)
        at += HEAD_SIZE + int.from_bytes(data[at + 8:at + 12], "little")
    return starts


@pytest.mark.parametrize("where", ["mid-file", "last frame"])
def test_a_bit_flip_in_a_length_field_is_corruption_at_its_offset_and_nothing_is_cut(whole, tmp_path, capsys, where):
    data = (whole / "events.msgpack").read_bytes()
    starts = _starts(data)
    k = len(starts) // 2 if where == "mid-file" else len(starts) - 1
    bad = bytearray(data)
    bad[starts[k] + 8 + 3] ^= 0x10  # the length's high byte: the frame now claims to run past the end
    d = tmp_path / "run"
    d.mkdir()
    (d / "events.msgpack").write_bytes(bytes(bad))
    words = f"corrupt log at byte {starts[k]}, frame {k}: CRC mismatch in the frame head"
    for read in (read_log, chain_digest, replay):
        with pytest.raises(EventLogError, match=words):
            read(d / "events.msgpack" if read is not replay else d)
    capsys.readouterr()
    assert main(["replay", str(d)]) == 1  # replay's "log" check fails, naming the offset
    out = capsys.readouterr().out
    assert out.count(words) == 1 and out.startswith("log: ")
    assert main(["run", "quickstart", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count(words) == 1 and len(err.strip().splitlines()) == 1
    err += out
    if where == "mid-file":
        assert f"the next intact frame starts at byte {starts[k + 1]}" in err
    # --resume refused before touching anything: no bytes cut, none moved aside
    assert (d / "events.msgpack").read_bytes() == bytes(bad) and sorted(p.name for p in d.iterdir()) == [
        "events.msgpack"]


def test_a_torn_tail_resumes_moving_the_cut_bytes_aside_and_ends_as_the_uninterrupted_run(whole, tmp_path, capsys):
    data = (whole / "events.msgpack").read_bytes()
    records = read_log(whole / "events.msgpack").records
    assert sum(isinstance(r, Checkpoint) for r in records) >= 4
    starts = _starts(data)
    cut = starts[len(starts) * 2 // 3] + HEAD_SIZE + 3  # kill -9 mid-write: the file ends inside a frame
    d = tmp_path / "killed"
    d.mkdir()
    (d / "events.msgpack").write_bytes(data[:cut])
    contents = read_log(d / "events.msgpack")
    assert contents.torn is not None and "torn frame at byte" in contents.torn
    assert main(["replay", str(d)]) == 1
    assert "torn (torn frame at byte" in capsys.readouterr().out
    kept_at = [o for o, _ in _checkpoint_ends(d)][-1]

    assert main(["run", "quickstart", "--resume", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"resume: kept {kept_at} bytes up to the checkpoint at round " in out
    assert f"moved {cut - kept_at} bytes after it to events.msgpack.cut-1" in out
    assert (d / "events.msgpack.cut-1").read_bytes() == data[kept_at:cut]  # moved, not deleted
    assert (d / "events.msgpack").read_bytes() == data
    want = json.loads((whole / "summary.json").read_text())["log"]
    assert json.loads((d / "summary.json").read_text())["log"] == want
    assert (d / "events.digest").read_text() == (whole / "events.digest").read_text() == want["digest"] + "\n"
    assert f"log digest: {want['digest']} ({want['frames']} frames, unkeyed)" in out


def _checkpoint_ends(d):
    return [(o, r) for o, r, _ in iter_frames(d / "events.msgpack") if isinstance(r, Checkpoint)]


def test_a_keyed_run_resumed_with_its_key_ends_with_the_keyed_digest_of_an_uninterrupted_one(tmp_path, capsys):
    key = tmp_path / "key"
    key.write_bytes(b"k3y")
    assert main(["run", "quickstart", "--out", str(tmp_path / "whole"), "--key-file", str(key), *ARGS]) == 0
    data = (tmp_path / "whole" / "events.msgpack").read_bytes()
    d = tmp_path / "killed"
    d.mkdir()
    (d / "events.msgpack").write_bytes(data[:len(data) // 2])
    assert main(["run", "quickstart", "--resume", str(d), "--key-file", str(key)]) == 0
    assert (d / "events.msgpack").read_bytes() == data
    assert (d / "events.digest").read_text() == (tmp_path / "whole" / "events.digest").read_text()
    assert chain_digest(d / "events.msgpack", b"k3y").digest == (d / "events.digest").read_text().strip()
    assert json.loads((d / "summary.json").read_text())["log"]["keyed"] is True
