"""Checkpoints in the event log: a codec for market state in MessagePack, and finding the last one.

State is plain dicts, lists and numbers plus NumPy arrays and 128-bit generator states, which
MessagePack cannot hold as such: ``pack_state`` tags them, ``unpack_state`` restores them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from market.runtime.eventlog import EventLogError, iter_frames
from market.runtime.records import Checkpoint, Header

_ARRAY = "__ndarray__"  # {_ARRAY: [dtype, shape, little-endian bytes]}
_BIGINT = "__int__"  # {_BIGINT: decimal string}: ints outside 64 bits (PCG64 state and increment)


def pack_state(obj: Any) -> Any:
    """``obj`` with arrays, NumPy scalars, tuples and big ints made MessagePack-safe (lossless)."""
    if isinstance(obj, dict):
        return {k: pack_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [pack_state(v) for v in obj]
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        return {_ARRAY: [a.dtype.newbyteorder("<").str, list(a.shape), a.astype(a.dtype.newbyteorder("<")).tobytes()]}
    if isinstance(obj, np.generic):
        return pack_state(obj.item())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (float, str, bytes)):
        return obj
    if isinstance(obj, int):
        return obj if -(2**63) <= obj < 2**64 else {_BIGINT: str(obj)}
    raise TypeError(f"checkpoint state: got a {type(obj).__name__} ({obj!r:.60}), expected plain values or arrays")


def unpack_state(obj: Any) -> Any:
    """The inverse of ``pack_state`` (tuples come back as lists)."""
    if isinstance(obj, dict):
        if len(obj) == 1:
            if _ARRAY in obj:
                dtype, shape, data = obj[_ARRAY]
                wire_dtype = np.dtype(dtype)
                return np.frombuffer(data, dtype=wire_dtype).reshape(shape).astype(wire_dtype.newbyteorder("="))
            if _BIGINT in obj:
                return int(obj[_BIGINT])
        return {k: unpack_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack_state(v) for v in obj]
    return obj


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a killed run goes on from: the log up to ``offset`` bytes is kept, the rest re-made."""

    offset: int  # end of the last checkpoint frame (or of the header, if there is none)
    t: float  # simulated time of the checkpoint
    state: dict[str, Any] | None  # None: no checkpoint was written, the run starts over
    config: dict[str, Any]
    seed: int


def last_checkpoint(path: Path) -> Resume:
    """Scan a (possibly torn) log for its header and its last checkpoint."""
    header: Header | None = None
    found: tuple[int, Checkpoint] | None = None
    header_end = 0
    for offset, record, torn in iter_frames(Path(path)):
        if record is None:
            break
        if isinstance(record, Header):
            header, header_end = record, offset
        elif isinstance(record, Checkpoint):
            found = (offset, record)
    if header is None:
        raise EventLogError(f"{path}: no header frame: the run cannot be resumed (start it again)")
    if found is None:
        return Resume(header_end, 0.0, None, header.config, header.seed)
    offset, ckpt = found
    return Resume(offset, ckpt.t, unpack_state(ckpt.state), header.config, header.seed)
