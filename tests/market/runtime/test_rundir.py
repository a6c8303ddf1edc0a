"""Run directories: the lock, atomic writes, what a directory holds, and a world that writes nothing
until its run starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from market.runtime import rundir, world
from market.runtime.config import ConfigError, resolve
from market.runtime.eventlog import read_log
from market.runtime.records import Footer, Header, LedgerTransfer
from market.runtime.run import run_scenario
from market.runtime.rundir import RunDirError, RunDirLock, atomic_write_text, claim, clear, state_of
from market.runtime.world import World

QUICK = ["run.rounds=20"]


def files_of(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# -- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "summary.json"
    atomic_write_text(p, "old\n")
    atomic_write_text(p, "new é\n")
    assert p.read_text(encoding="utf-8") == "new é\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["summary.json"]


def test_atomic_write_makes_files_as_write_text_would(tmp_path):
    """Mode 0o666 less the umask (a temporary file from tempfile would stay 0o600 after the rename)."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.toml", "x = 1\n")
        (tmp_path / "b.toml").write_text("x = 1\n")
    finally:
        os.umask(old)
    assert (tmp_path / "a.toml").stat().st_mode & 0o777 == (tmp_path / "b.toml").stat().st_mode & 0o777 == 0o644


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    p = tmp_path / "config.toml"
    atomic_write_text(p, "kept\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(p, "half \ud800 written")  # fails mid-write: a lone surrogate has no UTF-8
    assert p.read_text() == "kept\n"
    assert [x.name for x in tmp_path.iterdir()] == ["config.toml"]


def test_a_crash_before_the_rename_leaves_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    atomic_write_text(p, "old\n")

    def crash(*_):
        raise OSError("disk gone")

    monkeypatch.setattr(rundir.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(p, "new\n")
    assert p.read_text() == "old\n" and [x.name for x in tmp_path.iterdir()] == ["summary.json"]


# -- the lock --------------------------------------------------------------------------------


def test_a_second_lock_on_the_same_directory_is_refused_with_the_holders_pid(tmp_path):
    with RunDirLock(tmp_path) as lock:
        assert lock.held and (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunDirError, match=f"in use by another run \\(pid {os.getpid()} holds"):
            RunDirLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()  # released: the directory holds only what the run wrote
    with RunDirLock(tmp_path):  # and it can be taken again
        pass


def test_a_lock_is_released_when_its_holder_is_killed(tmp_path):
    code = ("import sys, time; from market.runtime.rundir import RunDirLock; "
            "l = RunDirLock(sys.argv[1]); l.acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"pid {proc.pid} holds"):
            RunDirLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / ".lock").exists()  # the dead holder could not remove its file, but holds nothing
    with RunDirLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"


def test_the_lock_refuses_a_missing_directory_and_a_file(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        RunDirLock(tmp_path / "nope").acquire()
    (tmp_path / "f").write_text("")
    with pytest.raises(RunDirError, match="is not a directory"):
        RunDirLock(tmp_path / "f").acquire()


def test_a_lock_file_removed_under_a_waiter_does_not_count(tmp_path, monkeypatch):
    """A waiter that opened the old lock file locks it only after its holder removed it: that lock
    must not count, or two writers would hold 'the' lock (the old file and a newcomer's new one)."""
    real_flock = rundir.fcntl.flock
    calls = []

    def flock_after_removal(fd, op):
        calls.append(fd)
        if len(calls) == 1:
            os.unlink(tmp_path / ".lock")  # the holder ends between our open and our flock
        return real_flock(fd, op)

    (tmp_path / ".lock").write_text("12345\n")
    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_removal)
    with RunDirLock(tmp_path):
        assert len(calls) == 2  # the orphaned file was given up, the new one locked
        assert os.stat(tmp_path / ".lock").st_ino == os.fstat(calls[1]).st_ino


# -- what a directory holds ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rundir") / "run"
    run_scenario("quickstart", overrides=QUICK, out=out)
    return out


def test_state_of_tells_empty_finished_unfinished_and_damaged(finished, tmp_path):
    assert state_of(tmp_path / "absent").kind == "empty"
    (tmp_path / "notes.txt").write_text("mine")
    assert state_of(tmp_path).kind == "empty"  # files that are not a run's do not make a run
    assert state_of(finished).kind == "finished"
    log = (finished / "events.msgpack").read_bytes()

    no_summary = tmp_path / "no-summary"
    no_summary.mkdir()
    (no_summary / "events.msgpack").write_bytes(log)  # killed after the footer, before summary.json
    assert state_of(no_summary).kind == "finished"
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "events.msgpack").write_bytes(log[: len(log) // 2])
    state = state_of(cut)
    assert state.kind == "unfinished" and "without a footer" in state.describe()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "events.msgpack").write_bytes(b"not a log at all")
    assert state_of(garbage).kind == "damaged" and "not an event log" in state_of(garbage).describe()
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "config.toml").write_text("")
    assert state_of(orphan).kind == "damaged"


def test_clear_deletes_the_run_files_and_nothing_else(finished, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name, data in files_of(finished).items():
        (d / name).write_bytes(data)
    (d / "events.digest").write_text("x")
    (d / ".summary.json.99-0.tmp").write_text("left by a crash")
    (d / "notes.txt").write_text("mine")
    (d / "report.md").write_text("a report")
    gone = clear(d)
    assert set(gone) == {"summary.json", "config.toml", "events.digest", "events.msgpack", ".summary.json.99-0.tmp"}
    assert sorted(x.name for x in d.iterdir()) == ["notes.txt", "report.md"]


def test_claim_refuses_a_run_and_replaces_it_only_with_force(finished, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name, data in files_of(finished).items():
        (d / name).write_bytes(data)
    before = files_of(d)
    with pytest.raises(RunDirError, match="holds a finished run .*use --force to replace it"):
        with claim(d):
            pass
    assert files_of(d) == before
    with claim(d, force=True) as lock:
        assert lock.held and sorted(x.name for x in d.iterdir()) == [".lock"]
    assert list(d.iterdir()) == []
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        with claim(f):
            pass


# -- a world writes nothing until its run starts ---------------------------------------------


def test_a_world_that_is_built_but_not_run_creates_nothing(tmp_path):
    config, market = resolve("quickstart", QUICK)
    w = World(config, 0, tmp_path / "run")
    market.build(w, config)
    assert not (tmp_path / "run").exists()


def test_a_builder_failing_after_recording_leaves_no_files(tmp_path):
    """The opening balances are recorded before the strategies are looked up: the failure comes after
    the world recorded something, and still nothing is written."""
    out = tmp_path / "run"
    with pytest.raises(Exception, match="bogus"):
        run_scenario("quickstart", overrides=[*QUICK, 'strategies.overrides.provider-0="bogus"'], out=out)
    assert not out.exists()


def test_the_log_holds_the_build_records_in_order_after_the_header(finished):
    records = read_log(finished / "events.msgpack").records
    assert isinstance(records[0], Header) and isinstance(records[-1], Footer)
    opening = [r for r in records if isinstance(r, LedgerTransfer)][:1]
    assert opening and records.index(opening[0]) == 1  # the user's opening balance, recorded while building


def test_a_world_refuses_to_write_over_a_log(finished, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.msgpack").write_bytes((finished / "events.msgpack").read_bytes())
    config, market = resolve("quickstart", QUICK)
    w = World(config, 0, d)
    market.build(w, config)
    with pytest.raises(RunDirError, match="already holds events.msgpack"):
        w.run()
    assert (d / "events.msgpack").read_bytes() == (finished / "events.msgpack").read_bytes()


def test_the_lock_is_held_through_the_final_writes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    real = world.atomic_write_text

    def write_and_probe(path, text):
        with pytest.raises(RunDirError, match="in use by another run"):
            RunDirLock(out).acquire()
        seen.append(Path(path).name)
        real(path, text)

    monkeypatch.setattr(world, "atomic_write_text", write_and_probe)
    run_scenario("quickstart", overrides=QUICK, out=out)
    assert seen == ["events.digest", "summary.json", "config.toml"]
    assert sorted(x.name for x in out.iterdir()) == ["config.toml", "events.digest", "events.msgpack", "summary.json"]


def test_a_bad_config_is_refused_before_the_directory_is_made(tmp_path):
    with pytest.raises(ConfigError):
        run_scenario("quickstart", overrides=["market.providers=0"], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()

