"""The event log: append-only, numbered, CRC-checked, hash-chained MessagePack frames of typed records.

The file is ``MAGIC`` then frames. A frame is a 20-byte head and a payload (one record, ``records.py``):
``<4s SYNC><u32 sequence><u32 length><u32 crc32(payload)><u32 crc32(the 16 bytes before)>``.

Why the head checks itself: a crash mid-write (kill -9) leaves a *torn* tail, a frame the file ends
inside; damage anywhere else is *corruption*. With the head's own CRC and the sequence number, a bad
length field is caught where it is, so it cannot pass for a frame that runs past the end of the file.
The reader's rule: the file may end only between frames or inside the last frame, and then only if
every byte of that frame that is there is what the writer would have written so far (a head whose
checks pass, or a prefix of one that fits). Anything else raises ``EventLogError`` naming the byte
offset and the frame number, and where the next intact frame starts, if one does.

Why the chain: CRCs catch accidents, not edits (anyone can recompute them). Every frame, checkpoints
and footer included, is folded into a running BLAKE2b-256 digest ``d_i = H(d_{i-1} + frame_i)`` with
``d_0 = H(magic)``; the final digest is written beside the log (``events.digest``) and printed. Keyed
(``read_key_file``), the chain is keyed BLAKE2b: only the key holder can make a digest that matches.

Compact logs (``run.log = "compact"``, magic ``COMPACT_MAGIC``). A plain log spends a 20-byte head and
a record's type and names on every bus message (about 100 bytes per provider per round), so a long run's
log grows into gigabytes. A compact log has the same frames, chain and checks, but most frames hold a
*block*: ``["blk", records, raw bytes, zlib(packed record, packed record, ...)]``, the records exactly
as a plain log packs them, back to back. The header stays a plain frame (the format is read before
anything is inflated); each checkpoint and the footer are blocks of their own, one record each (a resumed
run cuts right after a checkpoint, and ``StoredCheckpoint`` reads one back by its offsets), and so is any
record bigger than a block. Readers give back the same records in the same order: for a record inside a
block, the end offset is the block's. A reader holds one block's bytes and one record at a time (a block
inflates to at most ``BLOCK_RAW_MAX`` bytes; the writer closes one at ``BLOCK_BYTES``). What the writer has
not closed into a block yet is lost in a crash, as buffered bytes are: a resumed run starts from its
last checkpoint, which always ends a block.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from market.runtime.records import (
    LOG_SCHEMA,
    Checkpoint,
    EventLogError,
    Footer,
    Header,
    Record,
    decode_record,
    encode_record,
)

# EventLogError is the reader's error too: callers catch it from here.
__all__ = ["BLOCK_BYTES", "COMPACT_MAGIC", "MAGIC", "ChainResult", "EventLogError", "EventLogWriter", "LogContents",
           "chain_digest", "cut_log", "decode_frame", "frame_bytes", "is_compact", "iter_frames", "read_key_file",
           "read_log", "wants_compact"]

MAGIC = b"LLMMKT\x00\x02"  # the last byte is the frame format: it follows LOG_SCHEMA
# A compact log: the frames of schema 2, and frames that hold blocks of records (3). An older package
# refuses it as a log newer than it reads, by this byte.
COMPACT_MAGIC = b"LLMMKT\x00\x03"
_MAGIC_PREFIX = MAGIC[:-1]
BLOCK = "blk"  # the first item of a block's payload; no record type has this name
BLOCK_BYTES = 256 * 1024  # the writer closes a block once its packed records reach this many bytes
# What a reader inflates of one block at most (a bound on its memory, whatever a forged block claims); a
# record bigger than this (a checkpoint of a huge market) is written as a plain frame instead.
BLOCK_RAW_MAX = 256 * 1024 * 1024
BLOCK_LEVEL = 6  # zlib level: 6 writes 10% fewer bytes than 1 for twice the (small) CPU; 9 gains under 1%
# Records that are alone in their frame in a compact log: found, read back and cut at by their offsets.
_ALONE = (Header, Checkpoint, Footer)
SYNC = b"\xd5LF\x1c"
_HEAD16 = struct.Struct("<4sIII")  # sync, sequence, length, crc32(payload)
_U32 = struct.Struct("<I")
HEAD_SIZE = _HEAD16.size + _U32.size
_SEQ_MOD = 1 << 32
_CHUNK = 1 << 20


def _key(key: bytes | None) -> bytes:
    """BLAKE2b takes keys up to 64 bytes; a longer key file is hashed down to 64 (as HMAC does)."""
    if key is None:
        return b""
    return key if len(key) <= 64 else hashlib.blake2b(key, digest_size=64).digest()


def _hasher(key: bytes) -> Any:
    """An empty (keyed) BLAKE2b-256; each link copies it, which is twice as fast as making a keyed one."""
    return hashlib.blake2b(digest_size=32, key=key)


def _link(base: Any, prev: bytes, frame: bytes) -> bytes:
    """``H_key(prev + frame)``: the digest after ``frame``."""
    h = base.copy()
    h.update(prev)
    h.update(frame)
    return h.digest()


def _start(key: bytes, magic: bytes = MAGIC) -> bytes:
    return hashlib.blake2b(magic, digest_size=32, key=key).digest()


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The chain over a log's whole frames: ``digest`` (hex) after ``frames`` frames, ending at byte ``bytes``.
    ``torn`` says why the file goes on past ``bytes`` (a torn last frame), None if it ends there."""

    digest: str
    frames: int
    bytes: int
    torn: str | None = None
    keyed: bool = False


def read_key_file(path: Path) -> bytes:
    """The bytes of a key file, as they are (a trailing newline is part of the key)."""
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise EventLogError(f"key file {path}: cannot be read ({exc.strerror or exc})") from None
    if not key:
        raise EventLogError(f"key file {path}: is empty, expected at least 1 byte of key")
    return key


def frame_bytes(seq: int, payload: bytes) -> bytes:
    """Frame number ``seq`` holding ``payload`` (a packed record), as the writer puts it on disk."""
    head = _HEAD16.pack(SYNC, seq % _SEQ_MOD, len(payload), zlib.crc32(payload))
    return head + _U32.pack(zlib.crc32(head)) + payload


def decode_frame(frame: bytes, *, compact: bool = False) -> Record:
    """The record of one whole frame read back by its offsets (a checkpoint found by an earlier scan), with
    the reader's checks: marker, head CRC, length, payload CRC and the record's fields; in a ``compact`` log,
    a block of that one record. Its sequence number is not checked here: the scan that gave the offsets did."""
    if len(frame) < HEAD_SIZE:
        raise EventLogError(f"frame of {len(frame)} bytes, expected at least the {HEAD_SIZE}-byte head")
    sync, _, length, pcrc = _HEAD16.unpack_from(frame)
    (hcrc,) = _U32.unpack_from(frame, _HEAD16.size)
    if sync != SYNC or zlib.crc32(frame[:_HEAD16.size]) != hcrc:
        raise EventLogError("frame head: marker or CRC mismatch")
    payload = frame[HEAD_SIZE:]
    if len(payload) != length or zlib.crc32(payload) != pcrc:
        raise EventLogError(f"frame payload: {len(payload)} bytes against a length of {length}, or a CRC mismatch")
    try:
        obj = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:
        raise EventLogError(f"undecodable frame: {exc}") from None
    if compact and type(obj) is list and obj and obj[0] == BLOCK:
        count, items = _block_records(obj)
        records = list(_checked("frame", items, count))
        if len(records) != 1:
            raise EventLogError(f"frame: a block of {len(records)} records, expected one")
        return records[0]
    return decode_record(obj)


def wants_compact(header: Header) -> bool:
    """Does the header's config ask for a compact log (``run.log = "compact"``)?"""
    run = header.config.get("run")
    return isinstance(run, dict) and run.get("log") == "compact"


class EventLogWriter:
    """Appends records to a log file; every record is also passed to ``observers`` (as the record).

    The first record, the header, decides the format: a compact log (blocks of records, see the module
    docstring) if its config says ``run.log = "compact"`` (``wants_compact``), a plain one otherwise; the
    magic is written with it. So the log of a config is always written the same way, and readers check
    the magic against the header.

    ``append=True`` goes on from a log cut at a frame boundary; ``chain_state`` is then the
    ``chain_digest`` of the kept bytes (same key), so that the chain and the sequence continue, and the
    format is the file's own. ``_chain=False`` and ``_fsync=False`` exist for ``llm-market bench integrity``.
    """

    def __init__(self, path: Path, observers: list[Any] | None = None, *, append: bool = False,
                 key: bytes | None = None, chain_state: ChainResult | None = None,
                 _chain: bool = True, _fsync: bool = True) -> None:
        self.path = Path(path)
        self._key = _key(key)
        self._base = _hasher(self._key)
        self.keyed = key is not None
        self.compact = False
        self._started = append
        if append:
            if chain_state is None:
                raise EventLogError(f"{self.path}: appending needs the chain state of the kept bytes (chain_digest)")
            if chain_state.keyed != self.keyed:
                raise EventLogError(f"{self.path}: the chain state is {'' if chain_state.keyed else 'un'}keyed, the "
                                    f"writer {'' if self.keyed else 'un'}keyed: continue a chain as it was begun")
            if chain_state.torn is not None or self.path.stat().st_size != chain_state.bytes:
                raise EventLogError(f"{self.path}: appending at byte {chain_state.bytes}, but the file holds "
                                    f"{self.path.stat().st_size} bytes; cut it at the last whole frame first")
            with open(self.path, "rb") as f:
                magic = f.read(len(MAGIC))
            if magic not in (MAGIC, COMPACT_MAGIC):
                raise EventLogError(f"{self.path}: appending to a file whose magic is {magic!r}, expected {MAGIC!r} "
                                    f"or {COMPACT_MAGIC!r}")
            self.compact = magic == COMPACT_MAGIC
            self._digest = bytes.fromhex(chain_state.digest)
            self.records = chain_state.frames
            self.bytes = chain_state.bytes
        self._file: BinaryIO = open(self.path, "ab" if append else "wb", buffering=1 << 20)
        if not append:
            self._digest = _start(self._key)  # a plain log's, until the first record fixes the format
            self.records = 0
            self.bytes = len(MAGIC)
        self._chain = _chain
        self._fsync = _fsync
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._write = self._file.write
        self._observers = list(observers or [])
        self._block: list[bytes] = []  # packed records of the open block (compact logs)
        self._block_bytes = 0

    def _begin(self, record: Record) -> None:
        """The magic, once the first record says which format (a new log only)."""
        self.compact = isinstance(record, Header) and wants_compact(record)
        magic = COMPACT_MAGIC if self.compact else MAGIC
        self._write(magic)
        self._digest = _start(self._key, magic)
        self._started = True

    def _frame(self, payload: bytes) -> None:
        # frame_bytes and _link inlined: in a plain log this runs for every record (about n + 11 per round)
        head = _HEAD16.pack(SYNC, self.records % _SEQ_MOD, len(payload), zlib.crc32(payload))
        frame = head + _U32.pack(zlib.crc32(head)) + payload
        self._write(frame)
        if self._chain:
            h = self._base.copy()
            h.update(self._digest)
            h.update(frame)
            self._digest = h.digest()
        self.records += 1
        self.bytes += len(frame)

    def append(self, record: Record) -> None:
        if not self._started:
            self._begin(record)
        payload = self._pack(encode_record(record))
        if not self.compact:
            self._frame(payload)
        elif isinstance(record, Header) or len(payload) > BLOCK_RAW_MAX:
            self.end_block()
            self._frame(payload)
        elif isinstance(record, _ALONE) or len(payload) >= BLOCK_BYTES:
            self.end_block()
            self._block.append(payload)
            self.end_block()
        else:
            self._block.append(payload)
            self._block_bytes += len(payload)
            if self._block_bytes >= BLOCK_BYTES:
                self.end_block()
        for obs in self._observers:
            obs.observe(record)

    def end_block(self) -> None:
        """Write the open block as one frame (compact logs; nothing to do if none is open)."""
        if not self._block:
            return
        raw = b"".join(self._block)
        self._frame(self._pack([BLOCK, len(self._block), len(raw), zlib.compress(raw, BLOCK_LEVEL)]))
        self._block.clear()
        self._block_bytes = 0

    @property
    def frames(self) -> int:
        return self.records

    @property
    def digest(self) -> str:
        """The chain's digest (hex) after the last frame written (a compact log's open block is not in it)."""
        return self._digest.hex()

    @property
    def chain(self) -> ChainResult:
        return ChainResult(self.digest, self.records, self.bytes, None, self.keyed)

    def flush(self) -> None:
        """Close the open block and hand what is written to the system."""
        self.end_block()
        self._file.flush()

    def sync(self) -> None:
        """Flush and fsync: what is written survives a crash of the machine, not only of the process."""
        self.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            if self._started:
                self.end_block()
            else:  # nothing appended: an empty log (no header says otherwise: plain)
                self._write(MAGIC)
            self._file.close()


@dataclass
class LogContents:
    """What ``read_log`` found. ``torn`` describes a cut-off last frame, if any."""

    records: list[Record] = field(default_factory=list)
    torn: str | None = None
    valid_bytes: int = 0  # offset just past the last whole frame


def _next_intact(f: BinaryIO, start: int) -> int | None:
    """Offset of the first whole, checked frame at or after ``start`` (head and payload CRCs hold), or None.
    Payload bytes checked are capped at twice the file's size, so that a file of fake heads cannot make
    the search quadratic."""
    budget = 2 * os.fstat(f.fileno()).st_size + _CHUNK
    f.seek(start)
    window = b""
    base = start
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return None
        window += chunk
        at = window.find(SYNC)
        while at >= 0:
            if at + HEAD_SIZE > len(window):
                break
            head = window[at:at + _HEAD16.size]
            (crc,) = _U32.unpack_from(window, at + _HEAD16.size)
            if zlib.crc32(head) == crc:
                _, _, length, pcrc = _HEAD16.unpack(head)
                budget -= length
                if budget < 0:
                    return None
                pos = f.tell()
                f.seek(base + at + HEAD_SIZE)
                payload = f.read(length)
                f.seek(pos)
                if len(payload) == length and zlib.crc32(payload) == pcrc:
                    return base + at
            at = window.find(SYNC, at + 1)
        keep = max(0, len(window) - HEAD_SIZE)
        base += keep
        window = window[keep:]


def _corrupt(path: Path, f: BinaryIO, offset: int, seq: int, what: str) -> EventLogError:
    nxt = _next_intact(f, offset + 1)
    after = (f"; the next intact frame starts at byte {nxt}" if nxt is not None
             else "; no intact frame found after it")
    return EventLogError(f"{path}: corrupt log at byte {offset}, frame {seq}: {what}{after}")


def _magic(path: Path, f: BinaryIO) -> tuple[bytes, str | None]:
    """Check the magic; returns it (``MAGIC`` or ``COMPACT_MAGIC``) and a torn note if the file ends inside it."""
    head = f.read(len(MAGIC))
    if head in (MAGIC, COMPACT_MAGIC):
        return head, None
    if len(head) < len(MAGIC) and (MAGIC.startswith(head) or COMPACT_MAGIC.startswith(head)):
        return MAGIC, f"file ends inside the magic header ({len(head)} bytes)"
    if len(head) == len(MAGIC) and head.startswith(_MAGIC_PREFIX):
        version = head[-1]
        if version < MAGIC[-1]:
            raise EventLogError(f"{path}: a schema-{version} event log; this package reads schema {LOG_SCHEMA} "
                                "(numbered, hash-chained frames) only: run the scenario again with this version "
                                "(its config.toml holds the resolved config and seed)")
        raise EventLogError(f"{path}: a schema-{version} event log, newer than this package's {LOG_SCHEMA} (and "
                            f"{COMPACT_MAGIC[-1]}, compact): read it with the version of the package that wrote it")
    raise EventLogError(f"{path}: not an event log (magic {head!r}, expected {MAGIC!r} or {COMPACT_MAGIC!r})")


def _block_records(obj: list[Any]) -> tuple[int, Iterator[Any]]:
    """How many packed records a decoded block ``["blk", count, raw bytes, zlib data]`` holds, and the records
    unpacked one at a time (not yet checked as records: ``_checked`` does); ``EventLogError`` names what does
    not fit. One at a time, so that a reader holds the block's bytes and one record, not all its records."""
    if len(obj) != 4 or type(obj[1]) is not int or type(obj[2]) is not int or type(obj[3]) is not bytes:
        raise EventLogError(f"block: got {len(obj)} items, expected ['blk', records, raw bytes, zlib data]")
    count, size, data = obj[1], obj[2], obj[3]
    if not 1 <= size <= BLOCK_RAW_MAX or not 1 <= count <= size:
        raise EventLogError(f"block: {count} records in {size} bytes, expected 1 to {BLOCK_RAW_MAX} bytes holding "
                            "at least one record")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(data, size)  # at most ``size`` bytes, whatever the data claims
    except zlib.error as exc:
        raise EventLogError(f"block: its zlib data does not inflate ({exc})") from None
    if len(raw) != size or inflate.unconsumed_tail or not inflate.eof or inflate.unused_data:
        ends = "ends" if inflate.eof else "goes on"
        raise EventLogError(f"block: its zlib data inflates to {len(raw)} bytes and {ends}"
                            f"{' with bytes after its end' if inflate.unused_data else ''}, expected exactly {size}")
    up = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=False, max_buffer_size=size)
    up.feed(raw)
    return count, _unpacked(up, count, size)


def _unpacked(up: msgpack.Unpacker, count: int, size: int) -> Iterator[Any]:
    for i in range(count):
        try:
            item = up.unpack()
        except Exception as exc:
            raise EventLogError(f"block: record {i} of {count} does not decode ({type(exc).__name__})") from None
        yield item
    if up.tell() != size:
        raise EventLogError(f"block: {size - up.tell()} bytes after its {count} records")


def _checked(where: str, objs: Iterator[Any], count: int | None) -> Iterator[Record]:
    """Each decoded item of a frame as its record, checked; in a block of ``count`` records (None: a plain
    frame), no header, and a checkpoint or footer only alone (they are read back and cut at by offsets)."""
    for i, item in enumerate(objs):
        inside = where if count is None else f"{where}, record {i} of its block"
        try:
            record = decode_record(item)
        except EventLogError as exc:
            raise EventLogError(f"{inside}: {exc}") from None
        if count is not None and isinstance(record, _ALONE) and (count > 1 or isinstance(record, Header)):
            raise EventLogError(f"{inside}: a {record.record_type!r} record in a block of {count}, expected it "
                                f"alone in its frame{' (a plain one)' if isinstance(record, Header) else ''}")
        yield record


def _errors_at(where: str, records: Iterator[Record]) -> Iterator[Record]:
    """``records`` with a block's own errors (``_block_records``) named by the frame they are in."""
    try:
        yield from records
    except EventLogError as exc:
        text = str(exc)
        raise EventLogError(text if text.startswith(where) else f"{where}: {text}") from None


def _frames(path: Path, key: bytes | None = None) -> Iterator[tuple[int, bytes, Iterator[Record] | None, str | None]]:
    """The one frame walker: ``(end_offset, digest after it, its records, None)`` per whole frame (one record,
    or a compact log's block of them, to be read before the walk goes on), then at most one
    ``(offset, digest so far, None, why)`` for a torn tail. Raises on corruption."""
    k = _key(key)
    base = _hasher(k)
    with open(path, "rb") as f:
        magic, torn = _magic(path, f)
        compact = magic == COMPACT_MAGIC
        digest = _start(k, magic)
        if torn is not None:
            yield 0, digest, None, torn
            return
        size = os.fstat(f.fileno()).st_size
        offset = len(MAGIC)
        seq = 0
        footer = False
        unpack = msgpack.Unpacker
        while True:
            head = f.read(HEAD_SIZE)
            if not head:
                return
            expected = seq % _SEQ_MOD
            if footer:
                raise _corrupt(path, f, offset, seq, "bytes after the footer (the last record of a run)")
            if len(head) < HEAD_SIZE:
                good = _HEAD16.pack(SYNC, expected, 0, 0)
                n = min(len(head), 8)  # sync and sequence are known in advance; length and CRCs are not
                if head[:n] != good[:n]:
                    raise _corrupt(path, f, offset, seq, f"{len(head)} bytes at the end that do not start a frame")
                yield offset, digest, None, (f"torn frame head at byte {offset}, frame {seq} "
                                             f"({len(head)} of {HEAD_SIZE} bytes)")
                return
            sync, got_seq, length, pcrc = _HEAD16.unpack_from(head)
            (hcrc,) = _U32.unpack_from(head, _HEAD16.size)
            if sync != SYNC:
                raise _corrupt(path, f, offset, seq, f"frame marker {sync!r}, expected {SYNC!r}")
            if zlib.crc32(head[:_HEAD16.size]) != hcrc:
                raise _corrupt(path, f, offset, seq, "CRC mismatch in the frame head (sequence or length damaged)")
            if got_seq != expected:
                raise _corrupt(path, f, offset, seq, f"sequence number {got_seq}, expected {expected} "
                                                     "(a frame was removed, repeated or moved)")
            if offset + HEAD_SIZE + length > size:
                yield offset, digest, None, (f"torn frame at byte {offset}, frame {seq}: "
                                             f"{size - offset - HEAD_SIZE} of {length} payload bytes")
                return
            payload = f.read(length)
            if zlib.crc32(payload) != pcrc:
                raise _corrupt(path, f, offset, seq, "CRC mismatch in the payload")
            digest = _link(base, digest, head + payload)
            where = f"{path}: frame at byte {offset}, frame {seq}"
            try:
                up = unpack(raw=False, use_list=True, strict_map_key=False)
                up.feed(payload)
                obj = up.unpack()
            except Exception as exc:
                raise EventLogError(f"{path}: undecodable frame at byte {offset}, frame {seq}: {exc}") from None
            if up.tell() != length:
                raise EventLogError(f"{where}: {length - up.tell()} bytes after its record")
            block = compact and type(obj) is list and bool(obj) and obj[0] == BLOCK
            if block:
                if seq == 0:
                    raise EventLogError(f"{where}: got a block, expected the header")
                try:
                    count, items = _block_records(obj)
                except EventLogError as exc:
                    raise EventLogError(f"{where}: {exc}") from None
                del obj, payload, up  # the block's bytes are the generator's now
                records = _errors_at(where, _checked(where, items, count))
                if count == 1:  # a checkpoint or the footer, perhaps: read now (the footer ends the log)
                    (record,) = records
                    footer = isinstance(record, Footer)
                    records = iter((record,))
                offset += HEAD_SIZE + length
                seq += 1
                yield offset, digest, records, None
                continue
            (record,) = _checked(where, iter([obj]), None)
            if isinstance(record, Header) != (seq == 0):
                what = "got a second header" if seq else f"got a {record.record_type!r} record, expected the header"
                raise EventLogError(f"{where}: {what}")
            if isinstance(record, Header) and record.schema != LOG_SCHEMA:
                raise EventLogError(f"{path}: frame at byte {offset}: header of schema {record.schema} in a "
                                    f"schema-{LOG_SCHEMA} log")
            if isinstance(record, Header) and wants_compact(record) != compact:
                said = "compact" if wants_compact(record) else "plain"
                raise EventLogError(f"{path}: the magic says a {'compact' if compact else 'plain'} event log, the "
                                    f"header's run.log a {said} one (the magic or the header is damaged)")
            footer = isinstance(record, Footer)
            offset += HEAD_SIZE + length
            seq += 1
            records = iter((record,))
            yield offset, digest, records, None


def iter_frames(path: Path) -> Iterator[tuple[int, Record, None] | tuple[int, None, str]]:
    """Yield ``(end_offset, record, None)`` per record, then at most one ``(offset, None, why)`` if the file
    ends in a torn frame. A record inside a compact log's block has the block's end offset. Streams: memory
    stays flat (one frame, or one block, at a time). Corruption (anything but a torn tail) raises
    ``EventLogError`` with the offset and frame number."""
    for offset, _, records, torn in _frames(Path(path)):
        if records is None:
            assert torn is not None
            yield offset, None, torn
        else:
            for record in records:
                yield offset, record, None


def read_log(path: Path) -> LogContents:
    """Read a whole log into memory (small logs, tests); use ``iter_frames`` to stream."""
    out = LogContents(valid_bytes=len(MAGIC))
    for offset, record, torn in iter_frames(Path(path)):
        if record is None:
            out.torn = torn
            out.valid_bytes = min(out.valid_bytes, offset)
        elif record is not None:
            out.records.append(record)
            out.valid_bytes = offset
    return out


def is_compact(path: Path) -> bool:
    """Does the file at ``path`` start with a compact log's magic? (False for anything else, a plain log
    or a file that cannot be read: the readers say what is wrong with it.)"""
    try:
        with open(path, "rb") as f:
            return f.read(len(COMPACT_MAGIC)) == COMPACT_MAGIC
    except OSError:
        return False


def chain_digest(path: Path, key: bytes | None = None) -> ChainResult:
    """The chain over every whole frame of the log as it is on disk (checked frame by frame, records
    decoded and checked too); a torn tail is reported in ``torn``, corruption raises ``EventLogError``."""
    end, frames, torn = len(MAGIC), 0, None
    digest = _start(_key(key))
    for offset, digest, records, why in _frames(Path(path), key):
        if records is None:
            torn = why
            end = min(end, offset)
        else:
            for _ in records:  # decoded and checked, as every reader does
                pass
            end, frames = offset, frames + 1
    return ChainResult(digest.hex(), frames, end, torn, key is not None)


def cut_log(path: Path, offset: int) -> tuple[int, Path | None]:
    """Cut the log at ``offset``, first moving the bytes after it to ``<log>.cut-N`` (N the first free
    number, the file made exclusively): nothing is thrown away. Returns (bytes moved, where to)."""
    path = Path(path)
    size = path.stat().st_size
    if offset > size:
        raise EventLogError(f"{path}: cannot cut at byte {offset}: the file holds {size} bytes")
    if offset == size:
        return 0, None
    n = 1
    while True:
        to = path.with_name(f"{path.name}.cut-{n}")
        try:
            out = open(to, "xb")
        except FileExistsError:
            n += 1
            continue
        break
    with out, open(path, "r+b") as f:
        f.seek(offset)
        while chunk := f.read(_CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())
    return size - offset, to
