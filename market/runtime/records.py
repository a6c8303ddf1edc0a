"""Event-log records: one frozen dataclass per record type, and their MessagePack codec.

On disk a record is the array ``[type, field_1, ..., field_k]`` (the header ``["header", {...}]``);
``encode_record`` gives that list, ``decode_record`` checks a decoded one and raises ``EventLogError``
naming the record type, the field, the value and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, TypeVar

from market.core.wire import Message, decode

# Version of the record layouts below and of the frame format around them (eventlog.MAGIC's last byte;
# 2: numbered, hash-chained frames). A log written under another schema is refused, not guessed at.
LOG_SCHEMA = 2


class EventLogError(ValueError):
    """The log cannot be read: wrong magic, a corrupt frame before the end, or a record that does not fit its type."""


class Record:
    """Base of every record type; subclasses are frozen, slotted dataclasses registered with ``@record``."""

    record_type: ClassVar[str]
    __slots__ = ()


R = TypeVar("R", bound=Record)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(record_type: str, field: str, value: Any, expected: str) -> EventLogError:
    return EventLogError(f"{record_type!r} record, field {field!r}: got {_shown(value)}, expected {expected}")


# --- field checks, chosen by each field's annotation -------------------------------------------

Check = Callable[[str, str, Any], Any]  # (record type, field, value) -> value as the record holds it


def _number(rt: str, name: str, v: Any) -> Any:
    # An int stays an int: re-encoding must give the bytes that were read.
    if type(v) is int or (type(v) is float and math.isfinite(v)):
        return v
    raise _refuse(rt, name, v, "a finite number")


def _exact(cls: type, expected: str) -> Check:
    def check(rt: str, name: str, v: Any) -> Any:
        if type(v) is cls:
            return v
        raise _refuse(rt, name, v, expected)

    return check


def _ints(rt: str, name: str, v: Any) -> tuple[int, ...]:
    if type(v) not in (list, tuple):
        raise _refuse(rt, name, v, "an array of integers")
    for i, x in enumerate(v):
        if type(x) is not int:
            raise _refuse(rt, f"{name}[{i}]", x, "an integer")
    return tuple(v)


_CHECKS: dict[str, Check] = {
    "float": _number,
    "int": _exact(int, "an integer"),
    "str": _exact(str, "a string"),
    "bytes": _exact(bytes, "bytes"),
    "dict[str, Any]": _exact(dict, "a map"),
    "tuple[int, ...]": _ints,
}

# --- registration and codec ---------------------------------------------------------------------

RECORDS: dict[str, type[Record]] = {}
_ENCODERS: dict[type, Callable[[Any], list]] = {}
_SPECS: dict[type, tuple[tuple[str, Check], ...]] = {}
_AS_MAP: set[type] = set()


def record(record_type: str, *, as_map: bool = False) -> Callable[[type[R]], type[R]]:
    """Register a frozen, slotted dataclass as a record type. ``as_map``: the fields are written as
    one MessagePack map ``[type, {name: value}]`` instead of one array item each."""

    def wrap(dc: type[R]) -> type[R]:
        params = getattr(dc, "__dataclass_params__", None)
        if params is None or not params.frozen or "__slots__" not in vars(dc):
            raise TypeError(f"{dc.__name__}: a record type must be a frozen, slotted dataclass")
        declared = fields(dc)  # type: ignore[arg-type]
        if any(f.default is not MISSING or f.default_factory is not MISSING for f in declared) \
                or hasattr(dc, "__post_init__"):
            raise TypeError(f"{dc.__name__}: record fields take no defaults and no __post_init__ (every field is "
                            "written, and __init__ is replaced below)")
        dc.record_type = record_type
        unknown = [f"{f.name}: {f.type}" for f in declared if f.type not in _CHECKS]
        if unknown:
            raise TypeError(f"{dc.__name__}: no record check for the annotations {unknown}; expected one of "
                            f"{list(_CHECKS)}")
        spec = tuple((f.name, _CHECKS[str(f.type)]) for f in declared)
        # Arrays are held as tuples (immutable) and written as lists, as the reader gives them back.
        values = [f"list(r.{f.name})" if str(f.type).startswith("tuple") else f"r.{f.name}" for f in declared]
        if as_map:
            items = "{" + ", ".join(f"{name!r}: {v}" for (name, _), v in zip(spec, values)) + "}"
            _AS_MAP.add(dc)
        else:
            items = ", ".join(values)
        # Straight-line code: the writer encodes every bus message, so no loop over fields here.
        env: dict[str, Any] = {}
        exec(f"def encode(r):\n    return [{record_type!r}, {items}]\n", env)
        # A frozen dataclass's __init__ sets each field through object.__setattr__; the slots' own
        # descriptors do the same in 60% of the time (0.26 against 0.43 us for a "msg" record), and
        # every bus message builds one. Still frozen: assignment after __init__ raises as before.
        names = [name for name, _ in spec]
        setters = {f"_set_{name}": getattr(dc, name).__set__ for name in names}
        exec(f"def __init__(self, {', '.join(names)}):\n"
             + "".join(f"    _set_{name}(self, {name})\n" for name in names), setters)
        setters["__init__"].__qualname__ = f"{dc.__qualname__}.__init__"
        dc.__init__ = setters["__init__"]  # type: ignore[method-assign]
        RECORDS[record_type] = dc
        _ENCODERS[dc] = env["encode"]
        _SPECS[dc] = spec
        return dc

    return wrap


def encode_record(rec: Record) -> list:
    """The record as the log holds it: ``[type, *fields]`` (``[type, {fields}]`` for the header)."""
    return _ENCODERS[type(rec)](rec)


def decode_record(obj: Any) -> Record:
    """Check a decoded MessagePack array and build its record; raises ``EventLogError`` on anything else."""
    if type(obj) not in (list, tuple) or not obj or type(obj[0]) is not str:
        raise EventLogError(f"got {_shown(obj)}, expected a record [type, ...] with type in {RECORD_TYPES}")
    rt = obj[0]
    cls = RECORDS.get(rt)
    if cls is None:
        raise EventLogError(f"record type {rt!r}: expected one of {RECORD_TYPES}")
    spec = _SPECS[cls]
    names = [name for name, _ in spec]
    if cls in _AS_MAP:
        if len(obj) != 2 or type(obj[1]) is not dict or list(obj[1]) != names:
            raise EventLogError(f"{rt!r} record: got {_shown(obj[1:])}, expected one map with the keys {names}, "
                                "in that order")
        values = list(obj[1].values())
    else:
        values = obj[1:]
        if len(values) != len(spec):
            raise EventLogError(f"{rt!r} record: got {len(values)} fields {_shown(values)}, expected {len(spec)}: "
                                f"{names}")
    rec = cls(*[check(rt, name, v) for (name, check), v in zip(spec, values)])
    if isinstance(rec, Header) and not 1 <= rec.schema <= LOG_SCHEMA:
        if rec.schema > LOG_SCHEMA:
            raise _refuse(rt, "schema", rec.schema, f"at most {LOG_SCHEMA}: the log was written by a newer "
                                                    "version of the package; read it with that version")
        raise _refuse(rt, "schema", rec.schema, f"a schema version in [1, {LOG_SCHEMA}]")
    return rec


# --- the record types, in the order a run writes them ------------------------------------------


@record("header", as_map=True)
@dataclass(frozen=True, slots=True)
class Header(Record):
    """First record of every log: what is needed to run the same market again."""

    schema: int  # LOG_SCHEMA of the writer
    package_version: str
    config: dict[str, Any]  # the resolved config
    seed: int


@record("msg")
@dataclass(frozen=True)
class MessageSent(Record):
    """One per message sent on the bus (a multicast is one record, ``dst`` naming the group).

    ``message()`` gives the frame decoded. The bus has decoded every frame it carries already and hands
    that message on with the record (``attach_message``), so observers that read bids and queries
    (regret, inspectors) do not decode each frame a second time; a record read back from a log decodes
    its frame on first use and keeps the result. The message is not a field: it is never written, and
    equality, the codec and the log's bytes see the five fields only.
    """

    __slots__ = ("t", "src", "dst", "kind", "frame", "_message")

    t: float
    src: str
    dst: str
    kind: str  # the wire message kind
    frame: bytes  # the wire frame (``market.core.wire.decode`` reads it)

    def message(self) -> Message:
        """The frame as a wire message (raises ``WireError`` if it does not decode, as ``decode`` does)."""
        try:
            return self._message  # type: ignore[attr-defined]
        except AttributeError:
            msg = decode(self.frame)
            _set_message(self, msg)
            return msg

    def attach_message(self, msg: Message) -> MessageSent:
        """Keep ``msg``, the decoded frame, with the record (the bus's own decoding); returns the record."""
        _set_message(self, msg)
        return self

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.t, self.src, self.dst, self.kind, self.frame)  # the fields; the message is decoded again

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        MessageSent.__init__(self, *state)


_set_message = MessageSent._message.__set__  # type: ignore[attr-defined]


@record("drop")
@dataclass(frozen=True, slots=True)
class MessageDropped(Record):
    """A delivery that did not happen; ``reason``: "loss", "partition", "duplicate" (recognised) or "dead"."""

    t: float
    src: str
    dst: str
    kind: str
    reason: str


@record("xfer")
@dataclass(frozen=True, slots=True)
class LedgerTransfer(Record):
    """One per ledger transfer."""

    t: float
    src: str
    dst: str
    amount_minor: int
    memo: str


@record("round")
@dataclass(frozen=True, slots=True)
class RoundClosed(Record):
    """A round's outcome: who serves (``winner`` empty: nobody) and each provider's payment, in minor units."""

    t: float
    round: int
    query_id: int
    winner: str
    payments_minor: tuple[int, ...]
    extra: dict[str, Any]  # what the mechanism adds (resampled bids, shown ad, ...)


@record("reject")
@dataclass(frozen=True, slots=True)
class Rejected(Record):
    """Input the market refused, with who sent it."""

    t: float
    offender: str
    code: str
    field: str
    detail: str


@record("feedback")
@dataclass(frozen=True, slots=True)
class FeedbackAccepted(Record):
    """A user's rating the market accepted (and learned from)."""

    t: float
    round: int
    user: str
    reward: float


@record("expire")
@dataclass(frozen=True, slots=True)
class Expired(Record):
    """Something awaited from ``party`` never came; ``what`` names it (e.g. "feedback")."""

    t: float
    round: int
    party: str
    what: str


@record("fault")
@dataclass(frozen=True, slots=True)
class AgentFault(Record):
    """A scheduled ``event`` ("crash" or "restart") of an agent."""

    t: float
    agent: str
    event: str


@record("ckpt")
@dataclass(frozen=True, slots=True)
class Checkpoint(Record):
    """The whole market's state at a quiescent point (``market.runtime.checkpoint`` packs it)."""

    t: float
    state: dict[str, Any]


@record("footer")
@dataclass(frozen=True, slots=True)
class Footer(Record):
    """Last record of a finished run: its summary."""

    summary: dict[str, Any]


RECORD_TYPES = tuple(RECORDS)
