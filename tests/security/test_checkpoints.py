"""Forged checkpoints through the real ``llm-market run --resume`` path: each is refused with a message naming
the field, the resume falls back to the newest checkpoint that passes, and the finished log is then the
uninterrupted run's, byte for byte. A log whose every checkpoint is forged is refused and left as it was;
a directory that holds no resumable log is refused in one line."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from market.lab.cli import main
from market.runtime.checkpoint import pack_state, unpack_state
from market.runtime.config import ConfigError
from market.runtime.eventlog import EventLogWriter, iter_frames
from market.runtime.records import LOG_SCHEMA, Checkpoint, Header
from market.runtime.run import resume_scenario

ROUNDS = 200
EVERY = 50  # checkpoints after rounds 50, 100, 150 (and 200, when the run ends between rounds)
MINOR = 1_000_000


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("whole")
    assert main(["run", "quickstart", "--out", str(d), "--rounds", str(ROUNDS),
                 "--set", f"run.checkpoint_every={EVERY}"]) == 0
    return d


def _records(path: Path) -> list[Any]:
    return [r for _, r, _ in iter_frames(path) if r is not None]


def _forge(whole: Path, out: Path, edit: Callable[[float, dict[str, Any]], tuple[float, dict[str, Any]]],
           which: Callable[[int, int], bool] = lambda k, n: k == n - 1) -> Path:
    """Copy the run's log to ``out`` with the chosen checkpoints' (time, state) passed through ``edit``
    (default: the newest only), written back with the package's own writer, and cut after the newest
    checkpoint, as a run killed just after writing it leaves its log."""
    records = _records(whole / "events.msgpack")
    at = [i for i, r in enumerate(records) if isinstance(r, Checkpoint)]
    assert len(at) >= 3, at
    out.mkdir()
    writer = EventLogWriter(out / "events.msgpack")
    for i, r in enumerate(records[:at[-1] + 1]):
        if i in at and which(at.index(i), len(at)):
            t, state = edit(r.t, unpack_state(r.state))
            r = Checkpoint(t, pack_state(state))
        writer.append(r)
    writer.close()
    return out


def _state(edit: Callable[[dict[str, Any]], None]) -> Callable[[float, dict[str, Any]], tuple[float, dict[str, Any]]]:
    def apply(t: float, state: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        edit(state)
        return t, state

    return apply


def _mint(state: dict[str, Any]) -> None:
    state["ledger"]["balances"]["provider-0"] += 10**6 * MINOR


def _mint_balanced(state: dict[str, Any]) -> None:
    """Minted from the external account, and written into the summary too: the ledger still sums to 0."""
    for part in (state["ledger"]["balances"], state["summary"]["balances"]):
        part["provider-0"] += 10**6 * MINOR
        part["external"] -= 10**6 * MINOR


def _replace_rng(state: dict[str, Any]) -> None:
    state["agents"]["provider-0"]["rng"] = dict(np.random.default_rng(7).bit_generator.state)


def _swap_rngs(state: dict[str, Any]) -> None:
    a, b = state["agents"]["provider-0"], state["agents"]["provider-1"]
    a["rng"], b["rng"] = b["rng"], a["rng"]


def _advance_rng(state: dict[str, Any]) -> None:
    """The same stream, put 2**60 draws ahead: a state no run reaches."""
    rng = np.random.default_rng(0)
    rng.bit_generator.state = state["agents"]["user"]["rng"]
    rng.bit_generator.advance(2**60)
    state["agents"]["user"]["rng"] = dict(rng.bit_generator.state)


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        node = state
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return edit


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        node = state
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]

    return edit


FORGERIES = {
    "mint 10^6 credits": (_state(_mint), "ledger.balances"),
    "mint 10^6 credits, balanced and in the summary": (_state(_mint_balanced), "ledger.balances.external"),
    "replaced RNG state": (_state(_replace_rng), "agents.provider-0.rng.state.inc"),
    "swapped RNG states": (_state(_swap_rngs), "agents.provider-0.rng.state.inc"),
    "RNG state far along its own stream": (_state(_advance_rng), "agents.user.rng.state.state"),
    "next_round = -5": (_state(_set(("agents", "auctioneer", "next_round"), -5)), "agents.auctioneer.next_round"),
    "missing key": (_state(_drop(("agents", "user", "sent"))), "agents.user.sent"),
    "wrong type": (_state(_set(("agents", "auctioneer", "next_round"), "150")), "agents.auctioneer.next_round"),
    "wrong array shape": (_state(_set(("ledger", "overdraft", "user"), np.zeros(3))), "ledger.overdraft.user"),
    "t = 1e9": (lambda t, s: (1e9, s), "t: got 1000000000.0"),
    "t = -1": (lambda t, s: (-1.0, s), "t: got -1.0"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_newest_checkpoint_is_refused_and_the_resume_falls_back(name, whole, tmp_path, capsys):
    edit, field = FORGERIES[name]
    d = _forge(whole, tmp_path / "forged", edit)
    assert main(["run", "quickstart", "--resume", str(d)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("checkpoint at byte ") and " refused: " in err and field in err, err
    assert "resuming from the one at round 150" in err, err
    assert "Traceback" not in err
    # the older checkpoint was good: the resumed run is the uninterrupted one, byte for byte
    assert (d / "events.msgpack").read_bytes() == (whole / "events.msgpack").read_bytes()


def test_a_checkpoint_time_of_nan_is_refused_in_one_line(whole, tmp_path, capsys):
    d = _forge(whole, tmp_path / "nan", lambda t, s: (math.nan, s))
    before = (d / "events.msgpack").read_bytes()
    assert main(["run", "quickstart", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'t'" in err and "nan" in err, err
    assert (d / "events.msgpack").read_bytes() == before


def test_when_every_checkpoint_is_forged_nothing_is_resumed_and_the_log_is_kept(whole, tmp_path, capsys):
    d = _forge(whole, tmp_path / "all", _state(_mint), which=lambda k, n: True)
    before = (d / "events.msgpack").read_bytes()
    assert main(["run", "quickstart", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert "every checkpoint" in err and err.count("ledger.balances") >= 3, err
    assert (d / "events.msgpack").read_bytes() == before
    assert not (d / "summary.json").exists()


def test_a_checkpoint_minted_in_the_middle_does_not_stop_a_resume_from_a_later_good_one(whole, tmp_path, capsys):
    """Only the newest passing checkpoint matters: a forged older one is never read as state."""
    d = _forge(whole, tmp_path / "old", _state(_mint), which=lambda k, n: k == 0)
    assert main(["run", "quickstart", "--resume", str(d)]) == 0
    assert "refused" not in capsys.readouterr().err
    got, want = _records(d / "events.msgpack"), _records(whole / "events.msgpack")
    differ = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert len(got) == len(want) and len(differ) == 1 and isinstance(want[differ[0]], Checkpoint)


def _no_header(d: Path, whole: Path) -> None:
    d.mkdir()
    writer = EventLogWriter(d / "events.msgpack")
    for r in _records(whole / "events.msgpack")[1:40]:
        assert not isinstance(r, Header)
        writer.append(r)
    writer.close()


def _magic_only(d: Path, whole: Path) -> None:
    d.mkdir()
    EventLogWriter(d / "events.msgpack").close()


def _no_builder(d: Path, whole: Path) -> None:
    d.mkdir()
    writer = EventLogWriter(d / "events.msgpack")
    writer.append(Header(LOG_SCHEMA, "0", {"run": {"seed": 0}}, 0))
    writer.close()


BAD_DIRS = {
    "missing directory": (lambda d, w: None, "does not exist"),
    "empty directory": (lambda d, w: d.mkdir(), "no events.msgpack"),
    "a file": (lambda d, w: d.write_text("x"), "not a directory"),
    "an empty log": (lambda d, w: (d.mkdir(), (d / "events.msgpack").write_bytes(b"")), "empty"),
    "a log of the magic only": (_magic_only, "no header"),
    "a log with no header": (_no_header, "expected the header"),
    "not a log": (lambda d, w: (d.mkdir(), (d / "events.msgpack").write_bytes(b"hello world")), "not an event log"),
    "a header naming no scenario": (_no_builder, "is a run of None"),
}


@pytest.mark.parametrize("name", list(BAD_DIRS))
def test_resume_of_what_is_not_a_run_directory_is_one_line_and_exit_2(name, whole, tmp_path, capsys):
    make, words = BAD_DIRS[name]
    d = tmp_path / "target"
    make(d, whole)
    assert main(["run", "quickstart", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err, err


def test_a_header_naming_no_builder_is_refused_by_the_library_too(whole, tmp_path):
    _no_builder(tmp_path / "d", whole)
    with pytest.raises(ConfigError, match="names no scenario.builder"):
        resume_scenario(tmp_path / "d")
