"""The event log: append-only, length-prefixed, CRC32-checked MessagePack frames of typed records.

A frame is ``<u32 length><u32 crc32(payload)><payload>``; each payload is one record (``records.py``:
the types, their fields and their codec). The reader checks every record and the header's schema
version, and tolerates a torn last frame (a crash mid-write): it reports it instead of failing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from market.runtime.records import EventLogError, Record, decode_record, encode_record

# EventLogError is the reader's error too: callers catch it from here.
__all__ = ["MAGIC", "EventLogError", "EventLogWriter", "LogContents", "iter_frames", "read_log"]

MAGIC = b"LLMMKT\x00\x01"
_FRAME = struct.Struct("<II")


class EventLogWriter:
    """Appends records to a log file; every record is also passed to ``observers`` (as the record)."""

    def __init__(self, path: Path, observers: list[Any] | None = None, *, append: bool = False) -> None:
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "ab" if append else "wb", buffering=1 << 20)
        if not append:
            self._file.write(MAGIC)
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._observers = list(observers or [])
        self.records = 0

    def append(self, record: Record) -> None:
        payload = self._pack(encode_record(record))
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

    records: list[Record] = field(default_factory=list)
    torn: str | None = None
    valid_bytes: int = 0  # offset just past the last whole frame


def iter_frames(path: Path) -> Iterator[tuple[int, Record, None] | tuple[int, None, str]]:
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
                obj = up.unpack()
            except Exception as exc:
                raise EventLogError(f"{path}: undecodable frame at byte {offset}: {exc}") from None
            if up.tell() != length:
                raise EventLogError(f"{path}: frame at byte {offset}: {length - up.tell()} bytes after its record")
            try:
                record = decode_record(obj)
            except EventLogError as exc:
                raise EventLogError(f"{path}: frame at byte {offset}: {exc}") from None
            offset += _FRAME.size + length
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
