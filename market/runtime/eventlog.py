"""The event log: append-only, length-prefixed, CRC32-checked MessagePack frames.

A frame is ``<u32 length><u32 crc32(payload)><payload>``; each payload is one record, a MessagePack
array whose first item names the record type (see ``RECORD_TYPES``). The reader tolerates a torn
last frame (a crash mid-write) and reports it instead of failing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

MAGIC = b"LLMMKT\x00\x01"
LOG_SCHEMA = 1
_FRAME = struct.Struct("<II")

# header   ["header", {schema, package_version, config, seed}]
# msg      ["msg", t, src, dst, kind, frame_bytes]        one per message sent on the bus
# drop     ["drop", t, src, dst, kind, reason]            a delivery that did not happen: "loss",
#                                                         "partition", "duplicate" (recognised), "dead"
# xfer     ["xfer", t, src, dst, amount_minor, memo]      one per ledger transfer
# round    ["round", t, round, query_id, winner, payments_minor, extra]
# reject   ["reject", t, offender, code, field, detail]  refused input, with who sent it
# feedback ["feedback", t, round, user, reward]         a user's rating the market accepted (and learned from)
# expire   ["expire", t, round, party, what]             something awaited never came (e.g. feedback)
# fault    ["fault", t, agent, event]                     a scheduled "crash" or "restart" of an agent
# ckpt     ["ckpt", t, state]                             periodic checkpoint of the whole market
# footer   ["footer", summary]
RECORD_TYPES = ("header", "msg", "drop", "xfer", "round", "reject", "feedback", "expire", "fault", "ckpt",
                "footer")
_KNOWN = frozenset(RECORD_TYPES)


class EventLogError(ValueError):
    """The log cannot be read: wrong magic, or a corrupt frame before the end."""


class EventLogWriter:
    """Appends records to a log file; every record is also passed to ``observers``."""

    def __init__(self, path: Path, observers: list[Any] | None = None, *, append: bool = False) -> None:
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "ab" if append else "wb", buffering=1 << 20)
        if not append:
            self._file.write(MAGIC)
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._observers = list(observers or [])
        self.records = 0

    def append(self, record: list | tuple) -> None:
        payload = self._pack(record)
        self._file.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
        self.records += 1
        for obs in self._observers:
            obs.observe(record)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@dataclass
class LogContents:
    """What ``read_log`` found. ``torn`` describes a cut-off last frame, if any."""

    records: list[list] = field(default_factory=list)
    torn: str | None = None
    valid_bytes: int = 0  # offset just past the last whole frame


def iter_frames(path: Path) -> Iterator[tuple[int, list, None] | tuple[int, None, str]]:
    """Yield ``(end_offset, record, None)`` per whole frame, then at most one
    ``(offset, None, why)`` if the file ends in a torn frame. Streams: memory stays flat."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            if len(head) < len(MAGIC) and MAGIC.startswith(head):
                yield 0, None, f"file ends inside the magic header ({len(head)} bytes)"
                return
            raise EventLogError(f"{path}: not an event log (magic {head!r}, expected {MAGIC!r})")
        offset = len(MAGIC)
        unpack = msgpack.Unpacker
        while True:
            hdr = f.read(_FRAME.size)
            if not hdr:
                return
            if len(hdr) < _FRAME.size:
                yield offset, None, f"torn frame header at byte {offset} ({len(hdr)} of {_FRAME.size} bytes)"
                return
            length, crc = _FRAME.unpack(hdr)
            payload = f.read(length)
            if len(payload) < length:
                yield offset, None, f"torn frame at byte {offset}: {len(payload)} of {length} payload bytes"
                return
            if zlib.crc32(payload) != crc:
                if f.read(1):
                    raise EventLogError(f"{path}: CRC mismatch in the frame at byte {offset}, before the end")
                yield offset, None, f"torn frame at byte {offset}: CRC mismatch in the last frame"
                return
            try:
                up = unpack(raw=False, use_list=True, strict_map_key=False)
                up.feed(payload)
                record = up.unpack()
            except Exception as exc:
                raise EventLogError(f"{path}: undecodable frame at byte {offset}: {exc}") from None
            if type(record) is not list or not record or type(record[0]) is not str or record[0] not in _KNOWN \
                    or up.tell() != length:
                shown = repr(record)[:60]
                raise EventLogError(f"{path}: frame at byte {offset}: got {shown}, expected one record "
                                    f"[type, ...] with type in {RECORD_TYPES}")
            offset += _FRAME.size + length
            yield offset, record, None


def read_log(path: Path) -> LogContents:
    """Read a whole log into memory (small logs, tests); use ``iter_frames`` to stream."""
    out = LogContents(valid_bytes=len(MAGIC))
    for offset, record, torn in iter_frames(Path(path)):
        if record is None:
            out.torn = torn
            out.valid_bytes = min(out.valid_bytes, offset)
        else:
            out.records.append(record)
            out.valid_bytes = offset
    return out
