"""Checkpoints in the event log: a codec for market state in MessagePack, finding the checkpoints, and
checking one before anything of it is restored.

State is plain dicts, lists and numbers plus NumPy arrays and 128-bit generator states, which
MessagePack cannot hold as such: ``pack_state`` tags them, ``unpack_state`` restores them exactly.

A checkpoint is input like any other: a damaged or forged one must be refused with a message naming
the field, never restored (minted money, replaced random streams and negative counters would resume
and replay without a word; a time of NaN or 1e9 would hang the loop). ``check_checkpoint`` compares its
state tree against the state of a freshly built world for the logged config (same keys, types, array
dtypes and shapes, finite numbers, generators of the same streams), and against what the records
before it say (``CheckpointFacts``: the time, the rounds closed, the ledger, the summary, the dead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from market.runtime.eventlog import HEAD_SIZE, EventLogError, decode_frame, is_compact, iter_frames
from market.runtime.records import AgentFault, Checkpoint, Footer, Header, RoundClosed
from market.runtime.summary import SummaryAccumulator

_ARRAY = "__ndarray__"  # {_ARRAY: [dtype, shape, little-endian bytes]}
_BIGINT = "__int__"  # {_BIGINT: decimal string}: ints outside 64 bits (PCG64 state and increment)


class CheckpointError(EventLogError):
    """A checkpoint that cannot be restored: its message names the checkpoint, the field path and what was expected."""


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


# -- finding the checkpoints of a log ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckpointFacts:
    """What the records before a checkpoint say its state must be (gathered while the log is scanned)."""

    start: int  # byte offset of the checkpoint's frame
    end: int  # byte offset just past it: where a resumed run cuts the log
    t: float  # the checkpoint's own time (as written; checked, not trusted)
    last_t: float  # time of the last timed record before it
    next_t: float | None  # time of the first timed record after it (None: it ends the log)
    rounds: int  # RoundClosed records before it
    summary: dict[str, Any]  # the summary accumulator's state recomputed from the records before it
    dead: frozenset[str]  # agents crashed and not restarted, from the AgentFault records before it
    faults: int  # AgentFault records of the crash schedule ("crash", "restart") before it
    crashed: frozenset[str] = frozenset()  # agents whose own exception crashed them before it (never restarted)

    def where(self) -> str:
        return f"checkpoint at byte {self.start} (round {self.rounds})"


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a killed run goes on from: the log up to ``offset`` bytes is kept, the rest re-made."""

    offset: int  # end of the last checkpoint frame (or of the header, if there is none)
    t: float  # simulated time of the checkpoint
    state: dict[str, Any] | None  # None: no checkpoint was written, the run starts over
    config: dict[str, Any]
    seed: int
    facts: CheckpointFacts | None = None  # what the log says of the checkpoint; the world checks state against it


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """Where a checkpoint lies in its log, its state read from disk only when asked for (``state``).

    A long run writes thousands of checkpoints, each the whole market's state: scanning a log keeps
    their places, not their states, so that finding where to resume takes memory for one checkpoint,
    not for all of them. Read again, the frame is checked as the scan checked it (head, CRCs, record
    type, time), so a log changed since the scan is refused, not trusted."""

    path: Path
    start: int  # byte offset of the checkpoint's frame
    end: int  # byte offset just past it
    t: float  # its time, as the scan read it

    @property
    def state(self) -> dict[str, Any]:
        where = f"{self.path}: checkpoint at byte {self.start}"
        with open(self.path, "rb") as f:
            f.seek(self.start)
            frame = f.read(self.end - self.start)
        if len(frame) != self.end - self.start or len(frame) < HEAD_SIZE:
            raise CheckpointError(f"{where}: the file ends at the frame's byte {len(frame)} of "
                                  f"{self.end - self.start}: the log changed since it was scanned")
        payload = frame[HEAD_SIZE:]
        try:
            record = decode_frame(frame, compact=is_compact(self.path))
        except EventLogError as exc:
            raise CheckpointError(f"{where}: {exc} (the log changed since it was scanned)") from None
        if not isinstance(record, Checkpoint) or record.t != self.t:
            raise CheckpointError(f"{where}: got a {record.record_type!r} record of {len(payload)} bytes, expected "
                                  f"the checkpoint of t={self.t!r} the scan found (the log changed since)")
        return record.state


@dataclass(frozen=True, slots=True)
class LogScan:
    """A log's header and its checkpoints (oldest first), each with the facts of the records before it."""

    header: Header
    header_end: int
    checkpoints: tuple[tuple[CheckpointFacts, StoredCheckpoint], ...]
    finished: bool  # a footer was read


def scan_checkpoints(path: Path) -> LogScan:
    """Read a (possibly torn) log once: its header, and every checkpoint with the facts before it."""
    path = Path(path)
    header: Header | None = None
    header_end = 0
    acc = SummaryAccumulator()
    found: list[tuple[CheckpointFacts, StoredCheckpoint]] = []
    pending: list[tuple[CheckpointFacts, StoredCheckpoint]] = []  # checkpoints still waiting for the next record's time
    last_t, rounds, faults, finished = 0.0, 0, 0, False
    dead: set[str] = set()
    crashed: set[str] = set()
    start = 0
    for offset, record, _torn in iter_frames(path):
        if record is None:
            break
        t = getattr(record, "t", None)
        if isinstance(record, Checkpoint):
            facts = CheckpointFacts(start, offset, record.t, last_t, None, rounds, acc.get_state(), frozenset(dead),
                                    faults, frozenset(crashed))
            pending.append((facts, StoredCheckpoint(path, start, offset, record.t)))
        else:
            if t is not None:
                for facts, ckpt in pending:
                    found.append((_with_next(facts, t), ckpt))
                pending.clear()
                last_t = t
            if isinstance(record, Header):
                if header is not None:
                    raise EventLogError(f"{path}: a second header frame at byte {start}")
                header, header_end = record, offset
            elif header is None:
                raise EventLogError(f"{path}: the first frame is a {record.record_type!r} record, expected the header")
            elif isinstance(record, RoundClosed):
                rounds += 1
            elif isinstance(record, AgentFault) and record.event == "crashed":
                crashed.add(record.agent)  # the agent's own exception: not a scheduled fault
            elif isinstance(record, AgentFault):
                faults += 1
                (dead.add if record.event == "crash" else dead.discard)(record.agent)
            elif isinstance(record, Footer):
                finished = True
            acc.observe(record)
        start = offset
    if header is None:
        raise EventLogError(f"{path}: no header frame: the run cannot be resumed (start it again)")
    found.extend(pending)
    return LogScan(header, header_end, tuple(found), finished)


def _with_next(facts: CheckpointFacts, t: float) -> CheckpointFacts:
    return CheckpointFacts(facts.start, facts.end, facts.t, facts.last_t, t, facts.rounds, facts.summary, facts.dead,
                           facts.faults, facts.crashed)


def decode_checkpoint(facts: CheckpointFacts, ckpt: Checkpoint | StoredCheckpoint) -> dict[str, Any]:
    """The checkpoint's state, unpacked; a tag that does not decode (bad dtype, size, big int) is refused."""
    raw = ckpt.state  # read first: a StoredCheckpoint's own refusal is not a tag that does not decode
    try:
        state = unpack_state(raw)
    except (ValueError, TypeError, KeyError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{facts.where()}: state: a tagged array or integer does not decode: "
                              f"{type(exc).__name__}: {exc}") from None
    if type(state) is not dict:
        raise CheckpointError(f"{facts.where()}: state: got a {type(state).__name__}, expected a map")
    return state


def last_checkpoint(path: Path) -> Resume:
    """Scan a (possibly torn) log for its header and its last checkpoint (not yet checked: see ``check_checkpoint``)."""
    scan = scan_checkpoints(path)
    if not scan.checkpoints:
        return Resume(scan.header_end, 0.0, None, scan.header.config, scan.header.seed)
    facts, ckpt = scan.checkpoints[-1]
    return Resume(facts.end, ckpt.t, decode_checkpoint(facts, ckpt), scan.header.config, scan.header.seed, facts)


# -- checking a checkpoint -----------------------------------------------------------------------

_INT64 = (-(2**63), 2**63)
_RNG_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}
# PCG64's LCG multiplier (numpy's PCG_DEFAULT_MULTIPLIER_128) and a bound on the 64-bit draws a run makes from one
# stream: a state farther than this from where the stream stood in a fresh world is not that stream's.
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_MASK128 = (1 << 128) - 1
MAX_DRAWS = 1 << 48
MAX_MAGNITUDE = 1e15  # floats in a state: beyond this a time or a sum is no longer exact to the microsecond


class _Refusal(Exception):
    def __init__(self, path: str, got: Any, expected: str) -> None:
        super().__init__(path, got, expected)
        self.path, self.got, self.expected = path, got, expected


def _shown(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"an array {v.dtype} {v.shape}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def pcg64_distance(start: int, now: int, inc: int) -> int:
    """How many steps of PCG64's LCG lead from state ``start`` to ``now`` (increment ``inc``), in O(128):
    every state is on the one full cycle, so a draw count always exists; a huge one means a foreign state."""
    mult, plus, bit, dist, cur = _PCG_MULT, inc, 1, 0, start
    while cur != now:
        if bit > _MASK128:  # cannot happen with an odd increment; a guard against looping forever
            raise ValueError("no distance: the increment is even")
        if (cur ^ now) & bit:
            cur = (cur * mult + plus) & _MASK128
            dist |= bit
        plus = ((mult + 1) * plus) & _MASK128
        mult = (mult * mult) & _MASK128
        bit <<= 1
    return dist


def _check_rng(got: Any, ref: Any, path: str) -> None:
    """A generator state: the same bit generator, state and increment in range, the same stream as in a
    fresh world (equal increment) and not farther along it than a run can draw."""
    if type(got) is not dict or set(got) != _RNG_KEYS:
        raise _Refusal(path, got, f"a generator state with the keys {sorted(_RNG_KEYS)}")
    name = got["bit_generator"]
    if type(name) is not str or name != "PCG64" or (ref is not None and name != ref["bit_generator"]):
        raise _Refusal(f"{path}.bit_generator", name, "'PCG64' (the bit generator of every stream)")
    inner = got["state"]
    if type(inner) is not dict or set(inner) != {"state", "inc"}:
        raise _Refusal(f"{path}.state", inner, "a map with the keys ['inc', 'state']")
    for k in ("state", "inc"):
        v = inner[k]
        if type(v) is not int or not 0 <= v <= _MASK128:
            raise _Refusal(f"{path}.state.{k}", v, "an integer in [0, 2**128)")
    if inner["inc"] % 2 == 0:
        raise _Refusal(f"{path}.state.inc", inner["inc"], "an odd integer (PCG64 increments are odd)")
    if type(got["has_uint32"]) is not int or got["has_uint32"] not in (0, 1):
        raise _Refusal(f"{path}.has_uint32", got["has_uint32"], "0 or 1")
    if type(got["uinteger"]) is not int or not 0 <= got["uinteger"] < 2**32:
        raise _Refusal(f"{path}.uinteger", got["uinteger"], "an integer in [0, 2**32)")
    if ref is None:
        return
    if inner["inc"] != ref["state"]["inc"]:
        raise _Refusal(f"{path}.state.inc", inner["inc"], f"{ref['state']['inc']}: the increment of this stream "
                       "(a state of another stream was put here)")
    draws = pcg64_distance(ref["state"]["state"], inner["state"], inner["inc"])
    if draws > MAX_DRAWS:
        raise _Refusal(f"{path}.state.state", inner["state"], f"a state at most 2**48 draws past the stream's start "
                       f"(this one is {draws.bit_length()} bits of draws away: not this stream's)")


def _is_rng(v: Any) -> bool:
    return type(v) is dict and set(v) == _RNG_KEYS


def _check_plain(got: Any, path: str, depth: int = 0) -> None:
    """Values whose layout a fresh world does not show (maps that fill up as the run goes): plain, finite, bounded."""
    if depth > 12:
        raise _Refusal(path, got, "at most 12 levels of nesting")
    if type(got) is dict:
        if len(got) > 1_000_000:
            raise _Refusal(path, f"a map of {len(got)} entries", "at most 10**6 entries")
        if _is_rng(got):
            _check_rng(got, None, path)
            return
        for k, v in got.items():
            if type(k) not in (str, int):
                raise _Refusal(f"{path}.<key>", k, "a string or integer key")
            _check_plain(v, f"{path}.{k}", depth + 1)
    elif type(got) is list:
        for i, v in enumerate(got):
            _check_plain(v, f"{path}[{i}]", depth + 1)
    elif isinstance(got, np.ndarray):
        if got.dtype.kind not in "biuf":
            raise _Refusal(path, got, "an array of numbers or booleans")
        if got.dtype.kind == "f" and not (np.isfinite(got) & (np.abs(got) <= MAX_MAGNITUDE)).all():
            raise _Refusal(path, got, f"an array of finite numbers of magnitude at most {MAX_MAGNITUDE:g}")
    elif type(got) is float:
        if not math.isfinite(got) or abs(got) > MAX_MAGNITUDE:
            raise _Refusal(path, got, f"a finite number of magnitude at most {MAX_MAGNITUDE:g}")
    elif type(got) is int:
        if not _INT64[0] <= got < _INT64[1]:
            raise _Refusal(path, got, "an integer in the signed 64-bit range")
    elif got is not None and type(got) not in (bool, str, bytes):
        raise _Refusal(path, got, "plain values (maps, lists, numbers, strings, bytes, arrays)")


# The layout of the maps and lists that fill up as a run goes (a fresh world shows them empty), by their name in an
# agent's state (agents.<id>.<name>, world.dead.<id>.<name>) or in a bus port's entry (bus.ports.<id>[2]).
# A spec: a type name; ("list", [specs]) of that length; ("seq", spec) of any length; ("map", key type, spec).
_F, _F0, _I0 = "float", "float>=0", "int>=0"
FREE_SPECS: dict[str, Any] = {
    "open": ("map", int, ("list", [_F, _F, "str", _I0])),  # provider: round -> cost, bid, user, query
    "contexts": ("map", int, ("list", ["context", _F0])),  # user: query -> context, time asked
    "expected": ("map", int, ("list", [_I0, "str"])),  # user: query -> round, provider
    "early": ("map", int, ("list", [_I0, "str"])),
    "buckets": ("map", str, ("list", [_F0, _F0])),  # auctioneer: sender -> tokens, time of last refill
    "received": ("map", str, _I0),  # hostile agents' counters
    "refusals": ("map", str, _I0),
    "captured": ("seq", "bytes"),  # replayer: frames it re-sends
}
_SEEN = ("map", str, ("seq", ("list", [_F0, _I0])))  # bus port: sender -> [time, sequence number] recently seen


def _check_free(got: Any, path: str, dim: int | None) -> None:
    """A map or list a fresh world shows empty: by its spec where it has one, else plain, finite and bounded."""
    parts = path.split(".")
    spec = None
    if path.startswith("bus.ports.") and path.endswith("[2]"):
        spec = _SEEN
    elif (len(parts) == 3 and parts[0] == "agents") or (len(parts) == 4 and parts[:2] == ["world", "dead"]):
        spec = FREE_SPECS.get(parts[-1])
    if spec is None:
        _check_plain(got, path)
    else:
        _check_spec(got, spec, path, dim)


def _check_spec(got: Any, spec: Any, path: str, dim: int | None) -> None:
    if isinstance(spec, tuple):
        form = spec[0]
        if form == "map":
            if type(got) is not dict:
                raise _Refusal(path, got, "a map")
            for k, v in got.items():
                if type(k) is not spec[1] or (spec[1] is int and k < 0):
                    raise _Refusal(f"{path}.<key>", k, "a round or query number >= 0" if spec[1] is int else "a name")
                _check_spec(v, spec[2], f"{path}.{k}", dim)
        elif form == "seq":
            if type(got) is not list:
                raise _Refusal(path, got, "a list")
            for i, v in enumerate(got):
                _check_spec(v, spec[1], f"{path}[{i}]", dim)
        else:
            if type(got) is not list or len(got) != len(spec[1]):
                raise _Refusal(path, got, f"a list of {len(spec[1])}: {spec[1]}")
            for i, (v, sub) in enumerate(zip(got, spec[1])):
                _check_spec(v, sub, f"{path}[{i}]", dim)
        return
    if spec in (_F, _F0):
        if type(got) is not float or not math.isfinite(got) or abs(got) > MAX_MAGNITUDE or (spec == _F0 and got < 0):
            raise _Refusal(path, got, f"a finite float{' >= 0' if spec == _F0 else ''} of magnitude at most "
                           f"{MAX_MAGNITUDE:g}")
    elif spec == _I0:
        if type(got) is not int or not 0 <= got < _INT64[1]:
            raise _Refusal(path, got, "an integer >= 0 in the signed 64-bit range")
    elif spec == "context":
        if not isinstance(got, np.ndarray) or got.dtype != np.float64 or got.ndim != 1 \
                or (dim is not None and got.shape != (dim,)) or not np.isfinite(got).all():
            raise _Refusal(path, got, f"a context: a float64 array of {dim if dim is not None else 'n'} finite numbers")
    elif spec == "str":
        if type(got) is not str or len(got) > 4096:
            raise _Refusal(path, got, "a name")
    elif spec == "bytes":
        if type(got) is not bytes:
            raise _Refusal(path, got, "bytes")
    else:  # pragma: no cover - a spec above names a type this function does not know
        raise AssertionError(f"unknown spec {spec!r}")


def _check_like(got: Any, ref: Any, path: str, dim: int | None = None) -> None:
    """``got`` has the layout of ``ref`` (the same place in a freshly built world's state)."""
    if _is_rng(ref) or (ref is None and _is_rng(got)):
        _check_rng(got, ref, path)
    elif ref is None:
        _check_plain(got, path)
    elif type(ref) is dict:
        if type(got) is not dict:
            raise _Refusal(path, got, "a map")
        if not ref or all(type(k) is int for k in ref):  # a map that fills up as the run goes
            if ref:
                template = next(iter(ref.values()))
                for k, v in got.items():
                    if type(k) is not int:
                        raise _Refusal(f"{path}.<key>", k, "an integer key")
                    _check_like(v, template, f"{path}.{k}", dim)
            else:
                _check_free(got, path, dim)
            return
        if set(got) != set(ref):
            missing, extra = sorted(map(str, set(ref) - set(got))), sorted(map(str, set(got) - set(ref)))
            field = f"{path}.{(missing or extra)[0]}"
            raise _Refusal(field, "missing" if missing else "an unknown key",
                           f"the keys of a fresh world's state here: {sorted(map(str, ref))}")
        for k, v in ref.items():
            _check_like(got[k], v, f"{path}.{k}", dim)
    elif type(ref) is list:
        if type(got) is not list:
            raise _Refusal(path, got, "a list")
        if not ref:
            _check_free(got, path, dim)
            return
        if len(got) != len(ref):
            raise _Refusal(path, f"a list of {len(got)}", f"a list of {len(ref)} as in a fresh world")
        for i, (g, r) in enumerate(zip(got, ref)):
            _check_like(g, r, f"{path}[{i}]", dim)
    elif isinstance(ref, np.ndarray):
        if not isinstance(got, np.ndarray) or got.dtype != ref.dtype or got.shape != ref.shape:
            raise _Refusal(path, got, f"an array {ref.dtype} {ref.shape} as in a fresh world")
        if got.dtype.kind == "f":
            bad = np.isnan(got) if np.isinf(ref).any() else ~np.isfinite(got)
            if bad.any() or (np.isfinite(got) & (np.abs(got) > MAX_MAGNITUDE)).any():
                idx = int(np.flatnonzero(bad | (np.isfinite(got) & (np.abs(got) > MAX_MAGNITUDE)))[0])
                raise _Refusal(f"{path}[{idx}]", float(got.flat[idx]),
                               f"a finite number of magnitude at most {MAX_MAGNITUDE:g}")
    elif type(ref) is bool:
        if type(got) is not bool:
            raise _Refusal(path, got, "true or false")
    elif type(ref) is int:
        if type(got) is not int or not _INT64[0] <= got < _INT64[1]:
            raise _Refusal(path, got, "an integer in the signed 64-bit range")
        if ref >= 0 and got < 0:
            raise _Refusal(path, got, "an integer >= 0")
    elif type(ref) is float:
        if type(got) is not float or not math.isfinite(got) or abs(got) > MAX_MAGNITUDE:
            raise _Refusal(path, got, f"a finite float of magnitude at most {MAX_MAGNITUDE:g}")
    elif type(ref) is not type(got) or (type(ref) is str and len(got) > 4096):
        raise _Refusal(path, got, f"a {type(ref).__name__} as in a fresh world")


def check_checkpoint(
    state: dict[str, Any],
    ref: dict[str, Any],
    facts: CheckpointFacts,
    *,
    every: int,
    fault_times: Sequence[float] = (),
    auctioneer: str = "auctioneer",
    providers: int = 0,
    context_dim: int | None = None,
) -> None:
    """Refuse (``CheckpointError``) a checkpoint whose state is not one the logged run could have written.

    ref: the state tree of a freshly built world for the logged config (its agents attached, nothing run);
    every: the config's checkpoint interval; fault_times: the crash schedule's event times, in order;
    auctioneer, providers: the auctioneer's id and its number of providers (the length of its outcome arrays);
    context_dim: the length of a query's context (None: the contexts awaited must at least agree in length).
    """
    try:
        _check(state, ref, facts, every, tuple(fault_times), auctioneer, providers, context_dim)
    except _Refusal as r:
        raise CheckpointError(f"{facts.where()}: {r.path}: got {_shown(r.got)}, expected {r.expected}") from None


def _check(state: dict[str, Any], ref: dict[str, Any], facts: CheckpointFacts, every: int,
           fault_times: tuple[float, ...], auctioneer: str, providers: int, context_dim: int | None) -> None:
    t = facts.t
    upper = facts.next_t if facts.next_t is not None else facts.last_t
    if not (math.isfinite(t) and 0 <= facts.last_t <= t <= upper):
        raise _Refusal("t", t, f"a finite time in [{facts.last_t!r}, {upper!r}]: between the record before the "
                       "checkpoint and the one after it")
    if every <= 0:
        raise _Refusal("t", t, "no checkpoint at all: the logged config has run.checkpoint_every = 0")
    if set(state) != set(ref):
        missing = sorted(set(ref) - set(state))
        field = (missing or sorted(map(str, set(state) - set(ref))))[0]
        raise _Refusal(field, "missing" if missing else "an unknown key", f"the keys {sorted(ref)}")
    agents = state["agents"]
    if type(agents) is dict and type(agents.get(auctioneer)) is dict and "awaiting" in agents[auctioneer]:
        # what the auctioneer awaits fills up as the run goes: its layout is checked on its own
        _check_awaiting(agents[auctioneer]["awaiting"], f"agents.{auctioneer}.awaiting", providers, context_dim, t)
        agents = {**agents, auctioneer: {**agents[auctioneer], "awaiting": {}}}
    _check_like(agents, ref["agents"], "agents", context_dim)
    _check_like(state["bus"], ref["bus"], "bus")
    _check_ledger(state["ledger"], ref["ledger"], facts)
    summary = state["summary"]
    if type(summary) is not dict:
        raise _Refusal("summary", summary, "a map")
    _check_plain(summary, "summary")
    for key in sorted(set(summary) | set(facts.summary), key=str):
        if not _same(summary.get(key, _MISSING), facts.summary.get(key, _MISSING)):
            raise _Refusal(f"summary.{key}", summary.get(key, "missing"), f"{_shown(facts.summary.get(key, 'none'))}, "
                           "as recomputed from the records before the checkpoint")
    next_round = agents.get(auctioneer, {}).get("next_round")
    if next_round is not None and next_round != facts.rounds:
        raise _Refusal(f"agents.{auctioneer}.next_round", next_round,
                       f"{facts.rounds}: the rounds closed before the checkpoint")
    _check_world(state["world"], ref, facts, every, fault_times, facts.rounds if next_round is None else next_round,
                 context_dim)
    ports = state["bus"]["ports"]
    for pid, port in ports.items():
        gone = pid in facts.dead or pid in facts.crashed
        if port[1] != gone:
            raise _Refusal(f"bus.ports.{pid}[1]", port[1], f"{gone}: the agent is "
                           f"{'dead' if gone else 'alive'} by the fault records before the checkpoint")


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """Equal, type for type (an int is not a float here), without NumPy's elementwise comparison."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray):
        return False  # the summary and the ledger hold no arrays
    return bool(a == b)


def _check_awaiting(got: Any, path: str, providers: int, dim: int | None, t: float) -> None:
    """The auctioneer's rounds awaiting feedback: round -> [user, context, expires, winner, payments, resampled,
    modified], as ``ReverseAuctioneer.get_state`` writes them."""
    if type(got) is not dict:
        raise _Refusal(path, got, "a map of round -> awaited feedback")
    for r, entry in got.items():
        at = f"{path}.{r}"
        if type(r) is not int or r < 0:
            raise _Refusal(f"{path}.<key>", r, "a round number >= 0")
        if type(entry) is not list or len(entry) != 7:
            raise _Refusal(at, entry, "[user, context, expires, winner, payments, resampled, modified]")
        user, x, expires, winner, pay, res, mod = entry
        if type(user) is not str:
            raise _Refusal(f"{at}[0]", user, "a user id")
        if not isinstance(x, np.ndarray) or x.dtype != np.float64 or x.ndim != 1 or not np.isfinite(x).all():
            raise _Refusal(f"{at}[1]", x, "a context: a 1-d float64 array of finite numbers")
        if dim is None:
            dim = len(x)
        if x.shape != (dim,):
            raise _Refusal(f"{at}[1]", x, f"a context of {dim} numbers (the market's dimension)")
        if type(expires) is not float or not math.isfinite(expires) or not 0 <= expires <= t + MAX_MAGNITUDE:
            raise _Refusal(f"{at}[2]", expires, "a finite time >= 0")
        if winner is not None and (type(winner) is not int or not 0 <= winner < providers):
            raise _Refusal(f"{at}[3]", winner, f"None or a provider index in [0, {providers})")
        for i, (a, dtype) in enumerate(((pay, np.float64), (res, np.float64), (mod, np.bool_)), start=4):
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != (providers,):
                raise _Refusal(f"{at}[{i}]", a, f"an array {np.dtype(dtype)} ({providers},)")
        if not (np.isfinite(pay) & (np.abs(pay) <= MAX_MAGNITUDE)).all():
            raise _Refusal(f"{at}[4]", pay, "payments: finite numbers")


def _check_ledger(got: Any, ref: dict[str, Any], facts: CheckpointFacts) -> None:
    if type(got) is not dict or set(got) != {"balances", "overdraft"}:
        raise _Refusal("ledger", got, "a map with the keys ['balances', 'overdraft']")
    balances, overdraft = got["balances"], got["overdraft"]
    if type(overdraft) is not dict:
        raise _Refusal("ledger.overdraft", overdraft, "a map")
    if type(balances) is not dict or set(balances) != set(ref["balances"]):
        raise _Refusal("ledger.balances", sorted(balances) if type(balances) is dict else balances,
                       f"the accounts {sorted(ref['balances'])} (those the logged config opens)")
    for key in sorted(set(overdraft) | set(ref["overdraft"]), key=str):
        if not _same(overdraft.get(key, _MISSING), ref["overdraft"].get(key, _MISSING)):
            raise _Refusal(f"ledger.overdraft.{key}", overdraft.get(key, "missing"),
                           f"{ref['overdraft'].get(key, 'no such account')!r}: the limit the logged config sets")
    for account, v in balances.items():
        if type(v) is not int or not _INT64[0] <= v < _INT64[1]:
            raise _Refusal(f"ledger.balances.{account}", v, "an integer of minor units in the signed 64-bit range")
    if sum(balances.values()) != 0:
        raise _Refusal("ledger.balances", f"a total of {sum(balances.values())}", "a total of 0: every unit in the "
                       "ledger comes from the external account (money was minted or destroyed)")
    replayed = facts.summary.get("balances", {})
    for account, v in balances.items():
        if v != replayed.get(account, 0):
            raise _Refusal(f"ledger.balances.{account}", v, f"{replayed.get(account, 0)}: the balance the transfer "
                           "records before the checkpoint give")


def _check_world(got: Any, ref: dict[str, Any], facts: CheckpointFacts, every: int,
                 fault_times: tuple[float, ...], rounds: int, dim: int | None) -> None:
    keys = {"next_checkpoint", "fault_step", "dead"} | ({"crashed"} if facts.crashed else set())
    if type(got) is not dict or set(got) != keys:
        raise _Refusal("world", got, f"a map with the keys {sorted(keys)}")
    if facts.crashed and got["crashed"] != sorted(facts.crashed):
        raise _Refusal("world.crashed", got["crashed"], f"{sorted(facts.crashed)}: the agents the fault records "
                       "before the checkpoint say crashed")
    due = (rounds // every + 1) * every
    if type(got["next_checkpoint"]) is not int or got["next_checkpoint"] != due:
        raise _Refusal("world.next_checkpoint", got["next_checkpoint"], f"{due}: the next multiple of "
                       f"run.checkpoint_every = {every} after round {rounds}")
    done = sum(1 for x in fault_times if x < facts.t)
    may = sum(1 for x in fault_times if x <= facts.t)
    step = got["fault_step"]
    if type(step) is not int or not max(done, facts.faults) <= step <= may:
        raise _Refusal("world.fault_step", step, f"an integer in [{max(done, facts.faults)}, {may}]: the crash "
                       f"schedule's events due by t = {facts.t!r}")
    dead = got["dead"]
    if type(dead) is not dict or set(dead) != facts.dead:
        raise _Refusal("world.dead", sorted(dead) if type(dead) is dict else dead,
                       f"{sorted(facts.dead)}: the agents the fault records before the checkpoint leave dead")
    for agent, agent_state in dead.items():
        _check_like(agent_state, ref["agents"][agent], f"world.dead.{agent}", dim)
