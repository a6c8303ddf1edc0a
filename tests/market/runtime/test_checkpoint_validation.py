"""Checking a checkpoint before it is restored: every checkpoint real runs write passes; every damaged one
(a key dropped, a type changed, NaN, inf, huge, negative, an array of another shape or dtype, a generator
state of another stream, money minted, a time out of place) is refused with a ``CheckpointError`` naming the
field; random damage gives a refusal or a clean restore, never another exception."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.runtime.checkpoint import (
    CheckpointError,
    Resume,
    decode_checkpoint,
    pcg64_distance,
    scan_checkpoints,
)
from market.runtime.config import load_scenario
from market.runtime.run import run_scenario
from market.runtime.world import World

RUNS = {
    # crashes (provider-2 is dead at the last checkpoints), loss, partitions; the auctioneer awaits feedback
    "faults": ("faults", ["run.rounds=450", "run.checkpoint_every=30"]),
    # learners with matrices and coins of their own
    "learners": ("quickstart", ['mechanism.name="rosa-trcm-ucb"', 'strategies.overrides.provider-0="exp3"',
                                'strategies.overrides.provider-1="gradient"', "run.rounds=150",
                                "run.checkpoint_every=25"]),
    "hostile": ("hostile", ["run.rounds=100", "run.checkpoint_every=25"]),
}


class Probe:
    """A run's checkpoints, and a freshly built world of its config to check them against."""

    def __init__(self, run_dir: Path) -> None:
        scan = scan_checkpoints(run_dir / "events.msgpack")
        self.config, self.seed = scan.header.config, scan.header.seed
        self.market = load_scenario(self.config["scenario"]["builder"])
        self.world = self.fresh()
        self.reference = self.world.reference_state()
        self.points = [Resume(f.end, c.t, decode_checkpoint(f, c), self.config, self.seed, f)
                       for f, c in scan.checkpoints]

    def fresh(self) -> World:
        world = World(self.config, self.seed, None)
        self.market.build(world, self.config)
        return world

    def check(self, point: Resume) -> None:
        self.world.check(point, self.reference)


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict[str, Probe]:
    out = {}
    for name, (scenario, sets) in RUNS.items():
        d = tmp_path_factory.mktemp(name)
        run_scenario(scenario, overrides=sets, out=d)
        out[name] = Probe(d)
    return out


def test_every_checkpoint_of_real_runs_passes(probes):
    for name, probe in probes.items():
        assert len(probe.points) >= 3, name
        for point in probe.points:
            probe.check(point)
    faults = probes["faults"].points[-1].state
    assert faults["world"]["dead"] and faults["agents"]["auctioneer"]["awaiting"]  # the hard parts are exercised


def test_pcg64_distance_counts_draws():
    rng = np.random.default_rng(3)
    start = rng.bit_generator.state["state"]
    for k in (0, 1, 17, 1000):
        other = np.random.default_rng(3)
        other.bit_generator.advance(k)
        assert pcg64_distance(start["state"], other.bit_generator.state["state"]["state"], start["inc"]) == k
    other.bit_generator.advance(2**60)
    assert pcg64_distance(start["state"], other.bit_generator.state["state"]["state"], start["inc"]) == 2**60 + 1000


# -- where damage must be seen -------------------------------------------------------------------------

_RNG_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}


def _targets(state: dict[str, Any], ref: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, kind) of every place whose damage the checks must catch: the layout a fresh world fixes, the
    ledger, the summary and the world's counters (exact), the auctioneer's awaited feedback (its own layout)."""

    def fixed(got: Any, want: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
        if type(want) is dict and set(want) == _RNG_KEYS:
            yield path, "rng"
        elif type(want) is dict and want and not all(type(k) is int for k in want):
            yield path, "dict"
            for k in want:
                yield from fixed(got[k], want[k], (*path, k))
        elif type(want) is list and want:
            yield path, "list"
            for i, w in enumerate(want):
                yield from fixed(got[i], w, (*path, i))
        elif isinstance(want, np.ndarray):
            yield path, "array"
        elif type(want) in (bool, str, float):
            yield path, type(want).__name__
        elif type(want) is int:
            yield path, "int" if want >= 0 else "int-any"

    def exact(got: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
        if type(got) is dict:
            if got:
                yield path, "dict"
            for k, v in got.items():
                yield from exact(v, (*path, k))
        elif type(got) is int:
            yield path, "exact-int"
        elif type(got) is float:
            yield path, "exact-float"
        elif got is None:
            yield path, "exact-none"

    awaiting = state["agents"]["auctioneer"].get("awaiting", {})
    view = {**state["agents"], "auctioneer": {**state["agents"]["auctioneer"], "awaiting": {}}}
    yield from fixed(view, ref["agents"], ("agents",))
    yield from fixed(state["bus"], ref["bus"], ("bus",))
    yield from exact(state["ledger"], ("ledger",))
    yield from exact(state["summary"], ("summary",))
    yield (("world", "next_checkpoint"), "exact-int")
    yield (("world", "fault_step"), "int")
    for r in awaiting:
        at = ("agents", "auctioneer", "awaiting", r)
        yield from [((*at, 0), "str"), ((*at, 1), "array"), ((*at, 2), "float"), ((*at, 4), "array"),
                    ((*at, 6), "array")]


def _get(state: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        state = state[k]
    return state


def _put(state: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(state, path[:-1])[path[-1]] = value


def _rngs(state: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], dict]]:
    if type(state) is dict:
        if set(state) == _RNG_KEYS:
            yield path, state
            return
        for k, v in state.items():
            yield from _rngs(v, (*path, k))


OPS = {
    "int": ["negative", "huge", "as-str", "as-float"],
    "int-any": ["huge", "as-str", "as-float"],
    "exact-int": ["negative", "huge", "as-str", "as-float", "plus-one"],
    "float": ["nan", "inf", "-inf", "huge", "as-str"],
    "exact-float": ["nan", "inf", "huge", "as-str", "plus-one"],
    "exact-none": ["as-str", "zero"],
    "bool": ["as-int", "as-str"],
    "str": ["as-int", "as-list"],
    "array": ["longer", "as-float32", "as-list", "nan"],
    "rng": ["swap", "random-state", "other-generator", "drop-inc", "even-inc"],
    "dict": ["drop-key", "extra-key", "as-list"],
    "list": ["longer", "shorter", "as-dict"],
}


def _damage(state: dict[str, Any], path: tuple[Any, ...], op: str, pick: int) -> None:
    v = _get(state, path)
    new: Any
    if op == "negative":
        new = -(abs(v) + 5)
    elif op == "huge":
        new = 2**70 if type(v) is int else 1e300
    elif op == "as-str":
        new = str(v)
    elif op == "as-float":
        new = float(v)
    elif op == "as-int":
        new = 1
    elif op == "as-list":
        new = [v] if not isinstance(v, np.ndarray) else v.tolist()
    elif op == "plus-one":
        new = v + 1
    elif op == "zero":
        new = 0
    elif op in ("nan", "inf", "-inf"):
        x = float(op)
        if isinstance(v, np.ndarray):
            if v.dtype.kind != "f" or v.size == 0:
                new = v.astype(np.float32)  # an array of ints or bools can hold no NaN: change its dtype instead
            else:
                new = v.copy()
                new.flat[pick % v.size] = math.nan
        else:
            new = x
    elif op == "longer":
        new = np.append(v.ravel(), v.ravel()[:1] if v.size else [0]) if isinstance(v, np.ndarray) else [*v, v[0]]
    elif op == "shorter":
        new = v[:-1]
    elif op == "as-float32":
        new = v.astype(np.float32 if v.dtype != np.float32 else np.float64)
    elif op == "as-dict":
        new = dict(enumerate(v))
    elif op == "drop-key":
        new = dict(v)
        del new[sorted(new, key=str)[pick % len(new)]]
    elif op == "extra-key":
        new = {**v, "zz-extra": 0}
    elif op == "swap":
        others = [r for p, r in _rngs(state) if r["state"]["inc"] != v["state"]["inc"]]
        new = copy.deepcopy(others[pick % len(others)])
    elif op == "random-state":
        new = copy.deepcopy(v)
        new["state"]["state"] = (v["state"]["state"] + 2**100 + pick) % 2**128
    elif op == "other-generator":
        new = {**copy.deepcopy(v), "bit_generator": "MT19937"}
    elif op == "drop-inc":
        new = copy.deepcopy(v)
        del new["state"]["inc"]
    elif op == "even-inc":
        new = copy.deepcopy(v)
        new["state"]["inc"] -= 1
    else:
        raise AssertionError(op)
    _put(state, path, new)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_structured_damage_is_refused_naming_the_field(probes, data):
    probe = probes[data.draw(st.sampled_from(sorted(probes)))]
    point = data.draw(st.sampled_from(probe.points))
    targets = sorted(_targets(point.state, probe.reference), key=repr)
    path, kind = data.draw(st.sampled_from(targets))
    op = data.draw(st.sampled_from(OPS[kind]))
    state = copy.deepcopy(point.state)
    _damage(state, path, op, data.draw(st.integers(0, 10**6)))
    with pytest.raises(CheckpointError) as refused:
        probe.check(replace(point, state=state))
    message = str(refused.value)
    assert message.startswith(f"checkpoint at byte {point.facts.start} (round {point.facts.rounds}): ")
    assert str(path[0]) in message, (path, op, message)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), t=st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e9, 1e300]))
def test_a_time_out_of_place_is_refused(probes, data, t):
    probe = probes[data.draw(st.sampled_from(sorted(probes)))]
    point = data.draw(st.sampled_from(probe.points))
    facts = replace(point.facts, t=t)
    with pytest.raises(CheckpointError, match=r"\): t: got "):
        probe.check(replace(point, t=t, facts=facts))


def test_a_time_before_the_last_record_is_refused(probes):
    point = probes["faults"].points[-1]
    facts = replace(point.facts, t=point.facts.last_t - 1.0)
    with pytest.raises(CheckpointError, match=r"\): t: got "):
        probes["faults"].check(replace(point, facts=facts))


def _nodes(state: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if type(state) is dict:
        for k, v in state.items():
            yield from _nodes(v, (*path, k))
    elif type(state) is list:
        for i, v in enumerate(state):
            yield from _nodes(v, (*path, i))


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=4),
              st.binary(max_size=4), st.builds(np.zeros, st.integers(0, 9))),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=3), kids, max_size=3)),
    max_leaves=6)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=junk)
def test_random_damage_is_refused_or_restores_cleanly(probes, data, value):
    probe = probes[data.draw(st.sampled_from(sorted(probes)))]
    point = data.draw(st.sampled_from(probe.points))
    path = data.draw(st.sampled_from([p for p in _nodes(point.state) if p]))
    state = copy.deepcopy(point.state)
    _put(state, path, value)
    damaged = replace(point, state=state)
    try:
        probe.check(damaged)
    except CheckpointError:
        return
    try:
        probe.fresh().trial_restore(damaged)  # accepted by the checks: it restores, or is refused there
    except CheckpointError as exc:
        assert str(exc).startswith(point.facts.where()), exc
