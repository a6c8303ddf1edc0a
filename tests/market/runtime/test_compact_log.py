"""Compact event logs (``run.log = "compact"``): the same records as a plain log, a fraction of the bytes,
and everything a plain log allows: the chain, torn versus corrupt, verify with its resimulation, resuming a
killed run byte for byte, and reading in memory bounded by one block (tracemalloc)."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import msgpack
import numpy as np
import pytest

from market.core.wire import Bid, encode
from market.runtime.checkpoint import last_checkpoint, pack_state, scan_checkpoints
from market.runtime.eventlog import (
    BLOCK_BYTES,
    COMPACT_MAGIC,
    HEAD_SIZE,
    MAGIC,
    EventLogError,
    EventLogWriter,
    chain_digest,
    frame_bytes,
    is_compact,
    iter_frames,
    read_log,
)
from market.runtime.records import (
    LOG_SCHEMA,
    Checkpoint,
    Footer,
    Header,
    LedgerTransfer,
    MessageSent,
    RoundClosed,
    encode_record,
)
from market.runtime.run import replay, resume_scenario, run_scenario
from market.runtime.verify import verify_run

COMPACT = {"run": {"seed": 0, "log": "compact"}}


def _records(n: int) -> list:
    """A header asking for a compact log, ``n`` small rounds, a checkpoint in the middle, a footer."""
    out: list = [Header(LOG_SCHEMA, "0.0", COMPACT, 0)]
    for r in range(n):
        t = 1.0 + r * 0.37
        out += [MessageSent(t, f"p{i}", "auctioneer", "bid", encode(Bid(r, 0.25 + i / 7 + r / 1e4))) for i in range(3)]
        out.append(LedgerTransfer(t, "user", "p0", 1000 + r, "payment"))
        out.append(RoundClosed(t, r, r, "p0", (1000 + r, 0, 0), {"resampled": [0.5, 0.25, 0.125]}))
        if r == n // 2:
            out.append(Checkpoint(t, {"marker": r}))
    out.append(Footer({"rounds": n}))
    return out


def _write(path: Path, records: list, header: Header | None = None) -> None:
    w = EventLogWriter(path, _fsync=False)
    for rec in records if header is None else [header, *records[1:]]:
        w.append(rec)
    w.close()


def _frame_starts(data: bytes) -> list[int]:
    at, starts = len(MAGIC), []
    while at < len(data):
        starts.append(at)
        at += HEAD_SIZE + int.from_bytes(data[at + 8:at + 12], "little")
    return starts


def test_a_compact_log_reads_back_the_records_a_plain_one_holds_in_a_fraction_of_the_bytes(tmp_path):
    records = _records(3000)
    compact, plain = tmp_path / "compact", tmp_path / "plain"
    _write(compact, records)
    _write(plain, records, Header(LOG_SCHEMA, "0.0", {"run": {"seed": 0}}, 0))
    assert compact.read_bytes()[:len(MAGIC)] == COMPACT_MAGIC and is_compact(compact) and not is_compact(plain)
    assert read_log(compact).records == records
    assert read_log(plain).records[1:] == records[1:]
    ends = [end for end, _, _ in iter_frames(compact)]
    assert ends == sorted(ends) and ends[-1] == compact.stat().st_size
    chain = chain_digest(compact)
    assert chain.bytes == compact.stat().st_size and chain.torn is None
    # header, the checkpoint and the footer alone, the rest in blocks of BLOCK_BYTES packed bytes
    packed = sum(len(msgpack.packb(encode_record(r), use_bin_type=True)) for r in records[1:-1])
    assert 3 + packed // BLOCK_BYTES <= chain.frames <= 3 + packed // BLOCK_BYTES + 3
    assert compact.stat().st_size < plain.stat().st_size / 3


def test_the_checkpoint_ends_a_block_and_is_read_back_from_its_own_frame(tmp_path):
    path = tmp_path / "events.msgpack"
    _write(path, _records(200))
    scan = scan_checkpoints(path)
    assert len(scan.checkpoints) == 1 and scan.finished
    facts, stored = scan.checkpoints[0]
    assert stored.state == {"marker": 100} and facts.rounds == 101
    data = path.read_bytes()
    assert facts.start in _frame_starts(data) and facts.end in _frame_starts(data)  # whole frames: a cut point


def test_any_truncation_is_a_torn_tail_after_the_whole_frames_before_it(tmp_path):
    full = tmp_path / "full"
    _write(full, _records(300))
    data = full.read_bytes()
    starts = _frame_starts(data)
    path = tmp_path / "cut"
    for cut in sorted({len(MAGIC) + 3, *(s + d for s in starts for d in (0, 5, HEAD_SIZE + 7))}):
        if cut >= len(data):
            continue
        path.write_bytes(data[:cut])
        contents = read_log(path)
        whole = max(s for s in [*starts, len(data)] if s <= cut)
        assert contents.valid_bytes == whole, cut
        assert (contents.torn is None) == (cut == whole)
        assert contents.records == read_log(full).records[:len(contents.records)]


def test_damage_inside_a_block_is_corruption_at_its_frame(tmp_path):
    path = tmp_path / "events.msgpack"
    _write(path, _records(300))
    data = path.read_bytes()
    starts = _frame_starts(data)
    block = starts[1]  # the first block, after the header
    for at in range(block, starts[2], max(1, (starts[2] - block) // 97)):
        bad = bytearray(data)
        bad[at] ^= 0x41
        path.write_bytes(bytes(bad))
        with pytest.raises(EventLogError, match=f"corrupt log at byte {block}, frame 1:"):
            read_log(path)


def _rewrite_block(path: Path, data: bytes, payload: list) -> None:
    """The log with its first block replaced by ``payload`` (frame and CRCs made anew: a forger's edit)."""
    starts = _frame_starts(data)
    path.write_bytes(data[:starts[1]] + frame_bytes(1, msgpack.packb(payload, use_bin_type=True)) + data[starts[2]:])


def test_a_block_must_hold_what_it_says_and_no_record_that_belongs_in_a_frame_of_its_own(tmp_path):
    import zlib

    path = tmp_path / "events.msgpack"
    _write(path, _records(300))
    data = path.read_bytes()
    raw = msgpack.packb(encode_record(LedgerTransfer(1.0, "a", "b", 1, "m")), use_bin_type=True)
    ckpt = msgpack.packb(encode_record(Checkpoint(1.0, {})), use_bin_type=True)
    head = msgpack.packb(encode_record(Header(LOG_SCHEMA, "0.0", COMPACT, 0)), use_bin_type=True)
    cases = [
        (["blk", 2, len(raw), zlib.compress(raw)], "record 1 of 2 does not decode"),
        (["blk", 1, len(raw) + 1, zlib.compress(raw)], "inflates to"),
        (["blk", 1, len(raw), zlib.compress(raw + b"x")], "expected exactly"),
        (["blk", 1, len(raw), b"not zlib"], "does not inflate"),
        (["blk", 1, 1 << 30, zlib.compress(raw)], "expected 1 to"),
        (["blk", 2, len(ckpt) + len(raw), zlib.compress(ckpt + raw)], "'ckpt' record in a block of 2"),
        (["blk", 1, len(head), zlib.compress(head)], "'header' record in a block of 1"),
        (["blk", 1, len(raw)], "expected \\['blk'"),
    ]
    for payload, why in cases:
        _rewrite_block(path, data, payload)
        with pytest.raises(EventLogError, match=why):
            read_log(path)
    # a block in a plain log is no record at all
    plain = tmp_path / "plain"
    _write(plain, _records(300), Header(LOG_SCHEMA, "0.0", {"run": {"seed": 0}}, 0))
    pdata = plain.read_bytes()
    plain.write_bytes(pdata[:_frame_starts(pdata)[1]] + frame_bytes(1, msgpack.packb(
        ["blk", 1, len(raw), zlib.compress(raw)], use_bin_type=True)))
    with pytest.raises(EventLogError, match="record type 'blk'"):
        read_log(plain)


def test_the_magic_and_the_header_must_agree_on_the_format(tmp_path):
    path = tmp_path / "events.msgpack"
    _write(path, _records(50))
    data = path.read_bytes()
    path.write_bytes(MAGIC + data[len(MAGIC):])  # a compact log's frames under a plain log's magic
    with pytest.raises(EventLogError, match="the magic says a plain event log, the header's run.log a compact one"):
        read_log(path)
    plain = tmp_path / "plain"
    _write(plain, _records(50), Header(LOG_SCHEMA, "0.0", {"run": {"seed": 0}}, 0))
    plain.write_bytes(COMPACT_MAGIC + plain.read_bytes()[len(MAGIC):])  # one bit of the magic flipped
    with pytest.raises(EventLogError, match="the magic says a compact event log"):
        read_log(plain)


# -- a long log is read one block at a time --------------------------------------------------------

ROUNDS = 2_500
STATE_BYTES = 256 * 1024
CHECKPOINTS = 20
BOUND = 12 * STATE_BYTES  # a few copies of one checkpoint, or of one block, while it passes


@pytest.fixture(scope="module")
def long_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("long") / "events.msgpack"
    w = EventLogWriter(path, _fsync=False)
    w.append(Header(LOG_SCHEMA, "0.0", COMPACT, 0))
    rng = np.random.default_rng(0)
    for r in range(ROUNDS):
        t = float(r)
        for i, amount in enumerate(rng.random(5)):
            w.append(MessageSent(t, f"p{i}", "auctioneer", "bid", encode(Bid(r, float(amount)))))
        w.append(RoundClosed(t, r, r, "p0", (1, 0, 0, 0, 0), {}))
        if (r + 1) % (ROUNDS // CHECKPOINTS) == 0:
            w.append(Checkpoint(t, pack_state({"world": {"marker": r, "big": rng.random(STATE_BYTES // 8)}})))
    w.append(Footer({"rounds": ROUNDS}))
    w.close()
    return path


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_walking_scanning_and_replaying_a_long_compact_log_hold_one_block_at_a_time(long_log: Path) -> None:
    sample = 3000
    kept, held = _peak(lambda: [item[1] for _, item in zip(range(sample), iter_frames(long_log))])
    whole = held / sample * (2 + ROUNDS * 6 + CHECKPOINTS)  # every record held at once: what streaming avoids
    assert whole > 4 * BOUND, f"holding the whole log would take about {whole:.0f} bytes: the bound would not tell"
    del kept
    count, peak = _peak(lambda: sum(1 for _ in iter_frames(long_log)))
    assert count == 2 + ROUNDS * 6 + CHECKPOINTS
    assert peak < BOUND, f"walking held {peak} bytes at its peak, expected under {BOUND}"
    scan, peak = _peak(lambda: scan_checkpoints(long_log))
    assert len(scan.checkpoints) == CHECKPOINTS and peak < BOUND  # type: ignore[attr-defined]
    (footer, recomputed, torn), peak = _peak(lambda: replay(long_log))  # type: ignore[misc]
    assert torn is None and recomputed["rounds"] == ROUNDS and peak < BOUND
    chain, peak = _peak(lambda: chain_digest(long_log))
    assert chain.bytes == long_log.stat().st_size and peak < BOUND  # type: ignore[attr-defined]


# -- a real run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_pair(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("compact")
    sets = ["run.checkpoint_every=40", "mechanism.name=rosa-trcm-ucb"]
    run_scenario("quickstart", rounds=120, out=base / "plain", overrides=sets)
    run_scenario("quickstart", rounds=120, out=base / "compact", overrides=[*sets, "run.log=compact"])
    return base / "plain", base / "compact"


def test_a_compact_run_has_the_plain_runs_records_and_summary_and_passes_verify(run_pair):
    plain, compact = run_pair
    a = [r for _, r, _ in iter_frames(plain / "events.msgpack")]
    b = [r for _, r, _ in iter_frames(compact / "events.msgpack")]
    assert isinstance(b[0], Header) and b[0].config["run"]["log"] == "compact"
    assert "log" not in a[0].config["run"]  # a config without the key logs as before
    assert a[1:] == b[1:]  # every record but the header's config is the same, in the same order
    assert (compact / "events.msgpack").stat().st_size * 3 < (plain / "events.msgpack").stat().st_size
    report = verify_run(compact, resimulate=True)
    assert report.ok, [c.detail for c in report.failed()]
    assert "records in" in report.checks[0].detail


def test_a_killed_compact_run_resumes_to_the_bytes_of_the_uninterrupted_one(run_pair, tmp_path):
    _, compact = run_pair
    run = Path(shutil.copytree(compact, tmp_path / "run"))
    log = run / "events.msgpack"
    whole = log.read_bytes()
    cut = last_checkpoint(log).offset
    log.write_bytes(whole[:cut + 200])  # killed inside the block after its last checkpoint
    for name in ("summary.json", "events.digest"):
        (run / name).unlink()
    assert not verify_run(run).ok
    resume_scenario(run)
    assert log.read_bytes() == whole
    assert verify_run(run).ok
