"""The market's wire format: message dataclasses and their MessagePack codec.

A frame is the MessagePack array ``[SCHEMA_VERSION, kind, field_1, ..., field_k]``. ``decode``
checks the schema, the kind, every field's type, finiteness and range, and raises ``WireError``
naming the field, the value and what was expected. Never pickle.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, TypeVar, dataclass_transform

import msgpack

SCHEMA_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_VECTOR_LEN = 4096
MAX_TEXT_LEN = 1024
MAX_DESCRIPTION_LEN = 256


class WireError(ValueError):
    """A frame that cannot be a message: says which field, which value, and what was expected."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"field {field!r}: got {shown}, expected {expected}")
        self.field = field
        self.value = value
        self.expected = expected


# --- field types: each knows how to check a decoded value (as generated code) ----------------


@dataclass(frozen=True, slots=True)
class Field:
    """The wire type of one message field. ``check`` returns the normalised value or raises."""

    type: str  # "int" | "float" | "bool" | "text" | "vector" | "ints" | "int_rows"
    lo: float = -math.inf
    hi: float = math.inf
    max_len: int = MAX_VECTOR_LEN

    @property
    def expected(self) -> str:
        return {
            "int": f"an integer in [{self.lo}, {self.hi}]",
            "float": f"a finite number in [{self.lo}, {self.hi}]",
            "bool": "a boolean",
            "text": f"a string of at most {self.max_len} characters",
            "vector": f"a float64 array of at most {self.max_len} finite entries",
            "ints": f"an array of at most {self.max_len} integers in [{self.lo}, {self.hi}]",
            "int_rows": f"an array of at most {self.max_len} integer arrays",
        }[self.type]

    def check(self, name: str, v: Any) -> Any:
        t = self.type
        if t == "int":
            if type(v) is int and self.lo <= v <= self.hi:
                return v
        elif t == "float":
            if type(v) is float and self.lo <= v <= self.hi and v - v == 0.0:
                return v
            if type(v) is int and self.lo <= v <= self.hi:
                return float(v)
        elif t == "bool":
            if type(v) is bool:
                return v
        elif t == "text":
            if type(v) is str and len(v) <= self.max_len:
                return v
        elif t == "vector":
            if type(v) is bytes and not len(v) % 8 and len(v) <= 8 * self.max_len:
                out = _vector_struct(len(v) // 8).unpack(v)
                if all(map(math.isfinite, out)):
                    return out
                i = next(i for i, x in enumerate(out) if not math.isfinite(x))
                raise WireError(f"{name}[{i}]", out[i], "a finite number")
        elif t == "ints":
            if type(v) in (tuple, list) and len(v) <= self.max_len:
                for i, x in enumerate(v):
                    if type(x) is not int or not self.lo <= x <= self.hi:
                        raise WireError(f"{name}[{i}]", x, f"an integer in [{self.lo}, {self.hi}]")
                return tuple(v)
        elif t == "int_rows":
            if type(v) in (tuple, list) and len(v) <= self.max_len:
                row = Field("ints", 0, 2**31 - 1, 256)
                return tuple(row.check(f"{name}[{i}]", r) for i, r in enumerate(v))
        raise WireError(name, v, self.expected)


_STRUCTS: dict[int, struct.Struct] = {}


def _vector_struct(n: int) -> struct.Struct:
    s = _STRUCTS.get(n)
    if s is None:
        s = _STRUCTS[n] = struct.Struct(f"<{n}d")
    return s


def pack_vector(v: Any) -> bytes:
    """A float vector's wire form: little-endian float64s in one bin."""
    return _vector_struct(len(v)).pack(*v)


ROUND = Field("int", 0, 2**63 - 1)
MONEY = Field("float", 0.0, 1e12)
REWARD = Field("float", -1e12, 1e12)
TIME = Field("float", 0.0, 1e15)
AGENT_ID = Field("text", max_len=128)
VECTOR = Field("vector")
FLAG = Field("bool")

# --- codec ------------------------------------------------------------------------------------

_ENCODERS: dict[type, Callable[[Any], bytes]] = {}
_DECODERS: dict[str, Callable[[tuple], Any]] = {}
_packer = msgpack.Packer(use_bin_type=True)


def _make_encoder(cls: type[Message]) -> Callable[[Any], bytes]:
    parts = []
    for name, spec in cls.fields:
        parts.append(f"pack_vector(m.{name})" if spec.type == "vector" else f"m.{name}")
    src = f"def enc(m):\n    return pack([{SCHEMA_VERSION}, {cls.kind!r}, {', '.join(parts)}])\n"
    env = {"pack": _packer.pack, "pack_vector": pack_vector}
    exec(src, env)
    return env["enc"]


def _make_decoder(cls: type[Message]) -> Callable[[tuple], Any]:
    """Generate a straight-line checker for one kind: decode is on the bus's hot path.

    The generated code tests the common case inline and falls back to ``Field.check`` (which
    raises the precise ``WireError``) for anything unusual.
    """
    lines = ["def dec(o):", f"    if len(o) != {len(cls.fields) + 2}:",
             f"        raise WireError({cls.kind!r}, f'<{{len(o) - 2}} fields>', '{len(cls.fields)} fields')"]
    env: dict[str, Any] = {
        "WireError": WireError, "cls": cls, "isfinite": math.isfinite, "vstruct": _vector_struct,
        "structs": _STRUCTS,
    }
    args = []
    for i, (name, spec) in enumerate(cls.fields):
        v = f"v{i}"
        env[f"f{i}"] = spec
        lines.append(f"    {v} = o[{i + 2}]")
        if spec.type == "int":
            fast = f"type({v}) is int and {spec.lo!r} <= {v} <= {spec.hi!r}"
        elif spec.type == "float":
            fast = f"type({v}) is float and {spec.lo!r} <= {v} <= {spec.hi!r} and {v} - {v} == 0.0"
        elif spec.type == "bool":
            fast = f"type({v}) is bool"
        elif spec.type == "text":
            fast = f"type({v}) is str and len({v}) <= {spec.max_len}"
        elif spec.type == "vector":
            lines.append(f"    if type({v}) is bytes and not len({v}) % 8 and len({v}) <= {8 * spec.max_len}:")
            lines.append(f"        u{i} = (structs.get(len({v}) >> 3) or vstruct(len({v}) >> 3)).unpack({v})")
            lines.append(f"        if not all(map(isfinite, u{i})):")
            lines.append(f"            f{i}.check({name!r}, {v})")
            lines.append("    else:")
            lines.append(f"        f{i}.check({name!r}, {v})")
            args.append(f"u{i}")
            continue
        else:
            fast = "False"
        lines.append(f"    if not ({fast}):")
        lines.append(f"        {v} = f{i}.check({name!r}, {v})")
        args.append(v)
    lines.append(f"    return cls({', '.join(args)})")
    src = "\n".join(lines).replace("inf", "float('inf')") + "\n"
    exec(src, env)
    return env["dec"]


# --- messages ---------------------------------------------------------------------------------

KINDS: dict[str, type[Message]] = {}


class Message:
    """Base of every message kind; subclasses are frozen, slotted dataclasses.

    Messages are immutable values (numbers, strings, tuples), so one decoded frame can be handed
    to several recipients without any of them seeing another's changes.
    """

    kind: ClassVar[str]
    sealed: ClassVar[bool] = False  # sealed kinds may only be sent to the auctioneer
    fields: ClassVar[tuple[tuple[str, Field], ...]]
    __dataclass_fields__: ClassVar[dict[str, Any]]  # set by @message, which makes each kind a dataclass

    __slots__ = ()


M = TypeVar("M", bound=Message)


# dataclass_transform tells type checkers that a decorated class is a frozen dataclass, whose
# constructor takes its fields (they cannot see through the dataclass() call inside wrap).
@dataclass_transform(frozen_default=True)
def message(kind: str, *, sealed: bool = False, **specs: Field) -> Callable[[type[M]], type[M]]:
    """Register a dataclass as a message kind, with the wire type of each field (in order)."""

    def wrap(cls: type[M]) -> type[M]:
        dc = dataclass(frozen=True, slots=True)(cls)
        names = [f.name for f in fields(dc)]
        if names != list(specs):
            raise TypeError(f"{cls.__name__}: wire types {list(specs)} do not match fields {names}")
        dc.kind = kind
        dc.sealed = sealed
        dc.fields = tuple(specs.items())
        KINDS[kind] = dc
        _ENCODERS[dc] = _make_encoder(dc)
        _DECODERS[kind] = _make_decoder(dc)
        return dc

    return wrap


@message("query", query_id=ROUND, context=VECTOR)
class Query(Message):
    """A user's query with its context vector, sent to the auctioneer."""

    query_id: int
    context: tuple[float, ...]


@message("call_for_bids", round=ROUND, query_id=ROUND, context=VECTOR, deadline=TIME, user=AGENT_ID)
class CallForBids(Message):
    """The auctioneer asks providers to bid on ``user``'s query until ``deadline`` (simulated s)."""

    round: int
    query_id: int
    context: tuple[float, ...]
    deadline: float
    user: str


@message("bid", sealed=True, round=ROUND, amount=MONEY)
class Bid(Message):
    """A provider's sealed bid: the price at which it would serve the round's query."""

    round: int
    amount: float


@message("round_result", round=ROUND, won=FLAG, payment=MONEY)
class RoundResult(Message):
    """Sent to each provider that bid: whether it won, and what it is paid."""

    round: int
    won: bool
    payment: float


@message("served", round=ROUND, query_id=ROUND, provider=AGENT_ID, price=MONEY)
class Served(Message):
    """Tells the user who serves its query (``provider`` empty: nobody) and at what price."""

    round: int
    query_id: int
    provider: str
    price: float


@message("answer", round=ROUND, query_id=ROUND)
class Answer(Message):
    """The winning provider's answer to the user's query."""

    round: int
    query_id: int


@message("feedback", round=ROUND, reward=REWARD)
class Feedback(Message):
    """The user's observed reward for the answer of a round."""

    round: int
    reward: float


@message(
    "error",
    code=Field("text", max_len=64),
    field=Field("text", max_len=128),
    detail=Field("text", max_len=MAX_TEXT_LEN),
)
class Error(Message):
    """The auctioneer's reply to a message it rejected."""

    code: str
    field: str
    detail: str


@message("stop")
class Stop(Message):
    """Asks an agent to finish."""


@message("ad_query", query_id=ROUND)
class AdQuery(Message):
    """A user's question in the advertising market (the prompt is known by id to all parties)."""

    query_id: int


@message("ad_description", query_id=ROUND, description=Field("text", max_len=MAX_DESCRIPTION_LEN))
class AdDescription(Message):
    """An advertiser's description of its brand for query ``query_id``, sent to the platform at start: the
    context-aware proposal is conditioned on it (``market/lm/ads.py``)."""

    query_id: int
    description: str


@message("candidates", round=ROUND, query_id=ROUND, replies=Field("int_rows", max_len=256), deadline=TIME)
class Candidates(Message):
    """The M candidate replies the platform sampled; advertisers report rewards on them."""

    round: int
    query_id: int
    replies: tuple[tuple[int, ...], ...]
    deadline: float


@message("reward_report", sealed=True, round=ROUND, rewards=VECTOR)
class RewardReport(Message):
    """An advertiser's sealed report of its reward for each candidate (length M)."""

    round: int
    rewards: tuple[float, ...]


@message("reply_shown", round=ROUND, query_id=ROUND, reply=Field("ints", 0, 2**31 - 1, 256), payment=REWARD)
class ReplyShown(Message):
    """The reply the platform showed, and (to an advertiser) its payment; negative is a rebate (Rochet rule)."""

    round: int
    query_id: int
    reply: tuple[int, ...]
    payment: float


@message("answer_request", round=ROUND, query_id=ROUND)
class AnswerRequest(Message):
    """A user asks a provider directly for its answer to question ``query_id`` at its posted price."""

    round: int
    query_id: int


@message("posted_answer", round=ROUND, query_id=ROUND, correct=FLAG, cost=MONEY)
class PostedAnswer(Message):
    """A provider's answer (right or wrong) and its bill for the call, in credits."""

    round: int
    query_id: int
    correct: bool
    cost: float


@message("scored_answer", round=ROUND, query_id=ROUND, score=REWARD, cost=MONEY)
class ScoredAnswer(Message):
    """A model's answer with its graded quality (e.g. a summary's score) and its bill, in credits."""

    round: int
    query_id: int
    score: float
    cost: float


def encode(msg: Message) -> bytes:
    """MessagePack bytes of a message: ``[SCHEMA_VERSION, kind, *fields]``."""
    return _ENCODERS[type(msg)](msg)


def encode_fields(kind: str, *values: Any) -> bytes:
    """Encode raw field values without building the dataclass (tests of the decoder use it to
    write frames a well-behaved sender never would); vectors must already be packed."""
    return _packer.pack([SCHEMA_VERSION, kind, *values])


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Parse and validate one frame; raises ``WireError`` (and nothing else) on bad input."""
    if type(data) is not bytes:
        if not isinstance(data, (bytearray, memoryview)):
            raise WireError("frame", type(data).__name__, "bytes")
        data = bytes(data)
    if len(data) > MAX_FRAME_BYTES:
        raise WireError("frame", f"<{len(data)} bytes>", f"at most {MAX_FRAME_BYTES} bytes")
    try:
        obj = _unpackb(data, use_list=False, raw=False)
    except Exception as exc:  # the decoder raises many types on garbage; all mean "not a frame"
        raise WireError("frame", data[:16], f"a MessagePack array ({type(exc).__name__})") from None
    if type(obj) is not tuple or len(obj) < 2:
        raise WireError("frame", obj, "an array [schema, kind, fields...]")
    if obj[0] != SCHEMA_VERSION or type(obj[0]) is not int:
        raise WireError("schema", obj[0], f"schema version {SCHEMA_VERSION}")
    dec = _DECODERS.get(obj[1]) if type(obj[1]) is str else None
    if dec is None:
        raise WireError("kind", obj[1], f"one of {sorted(_DECODERS)}")
    return dec(obj)


_unpackb = msgpack.unpackb
