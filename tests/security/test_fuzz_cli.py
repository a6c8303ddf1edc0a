"""Fuzzing ``llm-market run`` in-process: for every built-in scenario, keys drawn from its config get values of
every kind (wrong types, NaN, infinities, negatives, huge floats and integers, empty and unicode strings, lists,
tables), through ``--set`` and through a TOML file, with a tiny number of rounds. Each run must either finish
(exit 0, a summary with its rounds) or be refused (exit 2, exactly one line on stderr naming a drawn key); never
a traceback, never a hang (a per-example alarm stops one). The seed, rounds and scenario arguments are fuzzed
the same way."""

from __future__ import annotations

import json
import math
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from market.lab.cli import main
from market.runtime.config import dump_toml, load_scenario, load_toml, scenario_files, toml_value

SECONDS_PER_EXAMPLE = 60  # a run of 2 rounds takes well under a second; a hang is stopped here
ROUNDS = 2


def builtin_scenarios() -> dict[str, str]:
    return {name: raw["scenario"]["builder"] for name, path in sorted(scenario_files().items())
            if "scenario" in (raw := load_toml(path))}


def config_keys(builder: str) -> list[str]:
    """Every dotted key of a scenario's defaults that holds a value (an empty table, like ``params``, counts)."""
    out = []

    def walk(tree: dict[str, Any], prefix: str) -> None:
        for k, v in tree.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                out.append(f"{prefix}{k}")
    walk(load_scenario(builder).defaults, "")
    return [*out, "scenario", "scenario.builder", "scenario.name", "scenario.description"]


class Hang(Exception):
    pass


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")
    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit code and stderr of ``llm-market`` run in-process, within the alarm."""
    with alarm(SECONDS_PER_EXAMPLE):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def check_outcome(code: int, err: str, out_dir: Path, names: list[str]) -> None:
    """Exit 0 with a summary, or exit 2 with one line naming one of ``names``."""
    assert "Traceback" not in err, err
    if code == 0:
        summary = json.loads((out_dir / "summary.json").read_text())
        assert summary["rounds"] <= ROUNDS
        return
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert any(name in lines[0] for name in names), f"{lines[0]!r} names none of {names}"


scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-2**200, max_value=2**200),
    st.sampled_from([0, -1, 1, 2, 7, 2**31, 2**63 - 1, 2**63, 2**64, 2**70, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 0.0, 0.5, 1.5, 1e-300, 5e-324, 1e300, -1e300]),
    st.text(max_size=12),
    st.sampled_from(["", " ", "é", "\u202e", "\x00", "linear", "mmlu", "both", "ngram", "gsm8k", "saturating",
                     "rosa-trcm-ucb", "myerson", "flooder", "truthful"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text("abcxyz_", min_size=1, max_size=4), scalars, max_size=2),
)


def near(default: Any) -> st.SearchStrategy[Any]:
    """Values close to a key's default (most of which a run takes): scaled, negated, off by one."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, (int, float)):
        kind = type(default)
        return st.sampled_from([kind(default * f) for f in (0, 0.5, 2, 10, -1)] + [default + 1, default - 1])
    return st.just(default)


def lookup(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


@st.composite
def overrides(draw: st.DrawFn, builder: str) -> list[tuple[str, Any]]:
    """One to three distinct keys of the scenario, each with a value."""
    keys = draw(st.lists(st.sampled_from(config_keys(builder)), min_size=1, max_size=3, unique=True))
    defaults = {**load_scenario(builder).defaults, "scenario": {"builder": builder, "name": "x", "description": ""}}
    return [(k, draw(st.one_of(values, near(lookup(defaults, k))))) for k in keys]


def sets_rounds_beyond_the_cap(pairs: list[tuple[str, Any]]) -> bool:
    """A drawn run.rounds that a run would take but the test cannot afford."""
    return any(k == "run.rounds" and type(v) is int and v > ROUNDS for k, v in pairs)


FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
@FUZZ
@given(data=st.data())
def test_config_values_through_set(name, data, capsys):
    builder = builtin_scenarios()[name]
    pairs = data.draw(overrides(builder))
    assume(not sets_rounds_beyond_the_cap(pairs))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        rounds = [] if any(k == "run.rounds" for k, _ in pairs) else ["--rounds", str(ROUNDS)]
        argv = ["run", name, *rounds, "--out", str(out)]
        for k, v in pairs:
            argv += ["--set", f"{k}={toml_value(v)}"]
        code, err = invoke(argv, capsys)
        check_outcome(code, err, out, [k for k, _ in pairs])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
@FUZZ
@given(data=st.data())
def test_config_values_through_a_file(name, data, capsys):
    builder = builtin_scenarios()[name]
    pairs = data.draw(overrides(builder))
    assume(not sets_rounds_beyond_the_cap(pairs))
    tree: dict[str, Any] = load_toml(scenario_files()[name])
    tree.setdefault("run", {})["rounds"] = ROUNDS
    for k, v in pairs:
        node = tree
        *parents, leaf = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            assume(isinstance(node, dict))  # a file cannot hold both scenario = 1 and scenario.name
        node[leaf] = v
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.toml"
        path.write_text(dump_toml(tree), encoding="utf-8")
        out = Path(tmp) / "run"
        code, err = invoke(["run", str(path), "--out", str(out)], capsys)
        check_outcome(code, err, out, [k for k, _ in pairs])


arguments = st.one_of(
    st.integers().map(str),
    st.sampled_from(["-1", "0", "1", str(2**63 - 1), str(2**63), str(2**70), "1e3", "0x10", " 1", "", "nan", "١"]),
    st.text(max_size=8),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=arguments, rounds=arguments)
def test_seed_and_rounds_arguments(seed, rounds, capsys):
    assume("\x00" not in seed + rounds)  # a process cannot be given a NUL in its arguments
    try:
        assume(int(rounds) <= ROUNDS)  # a number of rounds a run would take must stay affordable
    except ValueError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        code, err = invoke(["run", "quickstart", f"--seed={seed}", f"--rounds={rounds}", "--out", str(out)], capsys)
        check_outcome(code, err, out, ["--seed", "--rounds"])


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=st.one_of(st.text(max_size=16), st.sampled_from(["", ".", "/", "/dev/null", "/dev/zero", "/proc",
                                                                     "x.toml", "scenarios", "..", "~"])))
def test_scenario_arguments(scenario, capsys):
    assume("\x00" not in scenario and not scenario.startswith("-"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        code, err = invoke(["run", scenario, "--rounds", str(ROUNDS), "--out", str(out)], capsys)
        check_outcome(code, err, out, ["scenario"])
