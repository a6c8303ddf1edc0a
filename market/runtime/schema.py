"""What each config key accepts: its type, range and finiteness, declared once per key.

A scenario's defaults fix each key's type; its ``schema`` (dotted key -> ``Rule``) adds what a default
cannot say: the range, whether an end is open, the names allowed, how long a list may be and what its
entries are. ``COMMON`` holds the rules every scenario's ``run.*`` keys share. ``config.resolve`` applies
them to files and ``--set`` alike, before anything is built, so a bad value is one error naming the key,
the value and what is allowed, never a traceback deep inside a run or a run that does not end.

Upper bounds are there to keep a run bounded in time and memory, and every number inside what the event log
and the ledger can hold: a bound says which of the two it protects where it is declared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from market.core.registry import HOW_TO_REGISTER, Registry

# Seeds feed numpy's SeedSequence, which takes non-negative integers only, and are logged in the header as a
# MessagePack integer and used in int64 arithmetic (sweeps add seed offsets): [0, 2**63 - 1] holds them all.
MAX_SEED = 2**63 - 1
# A run's rounds and the period of its checkpoints: ten million rounds is hours of CPU; more is a typo.
MAX_ROUNDS = 10_000_000
# Durations in simulated seconds (windows, timeouts, interarrival times, latencies): at most about 11.6
# days each, so that a run's clock stays where float64 still resolves microseconds.
MAX_SECONDS = 1.0e6
MIN_SECONDS = 1.0e-6
# The latest simulated time a config may name (a crash, a partition): the longest run the bounds allow.
MAX_TIME = MAX_ROUNDS * MAX_SECONDS
# Budgets in credits: the ledger keeps minor units (10**6 per credit) as integers that the log writes as
# 64-bit MessagePack integers; 10**9 credits per account leaves room for sums over many accounts.
MAX_CREDITS = 1.0e9
# A free-form number (a scale, a weight, a price): finite and within what float64 sums over a run keep exact.
MAX_SCALE = 1.0e6

_KINDS = {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "a boolean", "list": "a list"}


def shown(value: Any) -> str:
    """``repr`` of a value for a one-line message: huge integers by size, long texts cut."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, list) and len(value) > 8:
        return f"<a list of {len(value)} entries>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class Rule:
    """What one key accepts. kind: "int", "float", "str", "bool" or "list"; lo/hi: the range of a number
    (an end is excluded when lo_open/hi_open); choices: the strings allowed; max_len: the longest list;
    items: the rule for each entry of a list; registry: the names allowed are that registry's at the time of
    the check (so plug-ins loaded after the scenario module count), and ``"module:attr"``."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] | None = None
    max_len: int | None = None
    items: Rule | None = None
    registry: Registry[Any] | None = None

    def expected(self) -> str:
        """What is allowed, as the end of "expected ..."."""
        if self.registry is not None:
            return f"one of {list(self.registry.names())} or 'module:attr' ({HOW_TO_REGISTER})"
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.kind == "list":
            n = f"at most {self.max_len} " if self.max_len is not None else ""
            each = f", each {self.items.expected()}" if self.items is not None else ""
            return f"a list of {n}entries{each}"
        if self.kind in ("int", "float") and (self.lo is not None or self.hi is not None):
            lo = "-inf" if self.lo is None else _number(self.lo, self.kind)
            hi = "inf" if self.hi is None else _number(self.hi, self.kind)
            left = "(" if self.lo_open or self.lo is None else "["
            right = ")" if self.hi_open or self.hi is None else "]"
            return f"{_KINDS[self.kind]} in {left}{lo}, {hi}{right}"
        return _KINDS[self.kind]

    def refusal(self, value: Any) -> str | None:
        """None if ``value`` is allowed, else what is expected (for "got VALUE, expected ...")."""
        if not self._typed(value):
            return self.expected()
        if self.kind == "int":  # compared exactly: 2**63 - 1 and 2**63 are one float
            if (self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo))) or \
                    (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi))):
                return self.expected()
        if self.kind == "float":
            try:
                x = float(value)
            except OverflowError:  # an integer beyond float64: outside every range declared here
                return self.expected()
            if not math.isfinite(x):
                return self.expected()
            if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
                return self.expected()
            if self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)):
                return self.expected()
        if self.choices is not None and value not in self.choices:
            return self.expected()
        if self.registry is not None and value not in self.registry:
            return self.expected()
        if self.kind == "list":
            if self.max_len is not None and len(value) > self.max_len:
                return self.expected()
            if self.items is not None and any(self.items.refusal(v) is not None for v in value):
                return self.expected()
        return None

    def _typed(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.kind == "int":
            return isinstance(value, int)
        if self.kind == "float":
            return isinstance(value, (int, float))
        if self.kind == "str":
            return isinstance(value, str)
        return isinstance(value, list)

    def matches(self, default: Any) -> bool:
        """Is this rule for a key of ``default``'s type? (A float key's default is a float.)"""
        kind = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(type(default))
        return kind == self.kind


def _number(x: float, kind: str) -> str:
    if kind == "int":
        return str(int(x))
    return f"{x:g}"


def Int(lo: int, hi: int) -> Rule:  # noqa: N802 - reads as a type in a schema table
    """An integer in [lo, hi]."""
    return Rule("int", lo, hi)


def Real(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Rule:  # noqa: N802
    """A finite number in [lo, hi] (an end excluded when open)."""
    return Rule("float", lo, hi, lo_open, hi_open)


def Choice(*names: str) -> Rule:  # noqa: N802
    """One of ``names``."""
    return Rule("str", choices=tuple(names))


def Registered(registry: Registry[Any]) -> Rule:  # noqa: N802
    """A name registered in ``registry`` when the config is checked, or ``"module:attr"``."""
    return Rule("str", registry=registry)


def Items(items: Rule, max_len: int) -> Rule:  # noqa: N802
    """A list of at most ``max_len`` entries, each allowed by ``items``."""
    return Rule("list", max_len=max_len, items=items)


SEED = Int(0, MAX_SEED)
ROUNDS = Int(0, MAX_ROUNDS)
# A window, a period, a timeout: from a microsecond (shorter ones stop the clock moving late in a long run,
# where float64 seconds no longer resolve them) to MAX_SECONDS.
DURATION = Real(MIN_SECONDS, MAX_SECONDS)
DELAY = Real(0.0, MAX_SECONDS)  # a latency or jitter: zero is no delay
PROBABILITY = Real(0.0, 1.0)
CREDITS = Real(0.0, MAX_CREDITS)

# ``run.log``: how the event log is written ("compact": blocks of records, see ``eventlog``). Not in COMMON:
# a config has the key only when it gives one (``config.checked``), so older configs log their bytes as before.
LOG_FORMAT = Choice("plain", "compact")

# The ``run`` keys every scenario shares (a rule applies where the scenario's defaults have the key).
COMMON: dict[str, Rule] = {
    "run.seed": SEED,
    "run.rounds": ROUNDS,
    "run.checkpoint_every": ROUNDS,  # 0 = never
}
