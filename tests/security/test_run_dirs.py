"""Careless and hostile uses of a run directory through `llm-market run`: a bad config, a second run,
two writers at once, a crash while writing. Each used to lose or corrupt a run; each is now refused
(one line, exit 2, the directory byte for byte as it was) or made safe."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from market.lab.cli import main
from market.runtime import rundir

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def files_of(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def refused(capsys, argv: list[str]) -> str:
    """Run the CLI, expect a refusal: exit 2 and a single line on stderr, which is returned."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    """A finished run of about 4 MB, as in the report of the lost log."""
    out = tmp_path_factory.mktemp("big") / "run"
    assert main(["run", "quickstart", "--rounds", "3000", "--out", str(out)]) == 0
    assert (out / "events.msgpack").stat().st_size > 3_500_000
    return out


@pytest.mark.parametrize("bad", [
    ["--set", "market.providers=0"],  # refused by the scenario's builder
    ["--set", "market.provders=3"],  # a typo: refused when the config is resolved
    ["--set", 'strategies.overrides.provider-0="bogus"'],  # refused after the builder recorded balances
    ["--set", 'faults.crashes=[{agent="nobody", at=1.0}]'],  # refused at the builder's last check
])
def test_a_bad_config_leaves_a_finished_run_byte_identical(big_run, capsys, bad):
    before = files_of(big_run)
    err = refused(capsys, ["run", "quickstart", "--out", str(big_run), *bad])
    assert err.startswith("config error:")
    assert files_of(big_run) == before
    # the same with --force: nothing is deleted before the config and the world are known good
    refused(capsys, ["run", "quickstart", "--out", str(big_run), "--force", *bad])
    assert files_of(big_run) == before


def test_a_finished_run_is_not_overwritten_without_force(big_run, capsys):
    before = files_of(big_run)
    err = refused(capsys, ["run", "quickstart", "--rounds", "10", "--out", str(big_run)])
    assert f"{big_run} holds a finished run" in err and "--force" in err
    assert files_of(big_run) == before


def test_an_unfinished_run_is_not_overwritten_and_resume_is_offered(big_run, tmp_path, capsys):
    d = tmp_path / "killed"
    d.mkdir()
    (d / "events.msgpack").write_bytes((big_run / "events.msgpack").read_bytes()[:1_000_000])
    before = files_of(d)
    err = refused(capsys, ["run", "quickstart", "--rounds", "10", "--out", str(d)])
    assert "an unfinished run" in err and f"--resume {d}" in err and "--force" in err
    assert files_of(d) == before


def test_force_replaces_the_run_files_and_keeps_the_rest(big_run, tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    for name, data in files_of(big_run).items():
        (d / name).write_bytes(data)
    (d / "notes.txt").write_text("my notes on this run")
    assert main(["run", "quickstart", "--rounds", "30", "--out", str(d), "--force"]) == 0
    assert sorted(p.name for p in d.iterdir()) == ["config.toml", "events.digest", "events.msgpack", "notes.txt",
                                                   "summary.json"]
    assert (d / "notes.txt").read_text() == "my notes on this run"
    assert (d / "events.msgpack").stat().st_size < 100_000  # the 30-round run, not the old one
    capsys.readouterr()
    assert main(["replay", str(d)]) == 0
    assert "replay OK: 30 rounds" in capsys.readouterr().out


def test_an_empty_or_foreign_directory_is_used_and_its_files_kept(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "README").write_text("runs of the paper")
    assert main(["run", "quickstart", "--rounds", "10", "--out", str(d)]) == 0
    assert (d / "README").read_text() == "runs of the paper"
    f = tmp_path / "a-file"
    f.write_text("x")
    err = refused(capsys, ["run", "quickstart", "--rounds", "10", "--out", str(f)])
    assert "exists and is not a directory" in err and f.read_text() == "x"


def test_a_second_writer_is_refused_while_a_run_is_going(tmp_path, capsys):
    """While one process runs into DIR, a run or a resume into DIR is refused with the holder's pid;
    the first run ends well and its log replays."""
    d = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "market.lab.cli", "run", "quickstart", "--rounds", "2000",
                             "--out", str(d)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and not (d / "events.msgpack").exists():
            time.sleep(0.005)
        assert proc.poll() is None, "the first run ended before the second could try"
        err = refused(capsys, ["run", "quickstart", "--rounds", "10", "--out", str(d)])
        assert f"in use by another run (pid {proc.pid} holds" in err
        err = refused(capsys, ["run", "quickstart", "--resume", str(d)])
        assert f"pid {proc.pid}" in err
        err = refused(capsys, ["run", "quickstart", "--rounds", "10", "--out", str(d), "--force"])
        assert f"pid {proc.pid}" in err  # --force replaces a run, never one being written
    finally:
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert main(["replay", str(d)]) == 0
    assert sorted(p.name for p in d.iterdir()) == ["config.toml", "events.digest", "events.msgpack", "summary.json"]


def test_two_runs_started_together_into_one_directory(tmp_path, capsys):
    """The report's case: both used to say success and leave a corrupt log. Now one runs, the other is
    refused (the directory is in use, or by the time it looks, holds a finished run), and the log is whole."""
    d = tmp_path / "d"
    cmd = [sys.executable, "-m", "market.lab.cli", "run", "quickstart", "--rounds", "600", "--out", str(d)]
    procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    err = next(e for rc, e in results if rc == 2).strip()
    assert err.startswith("run directory error:") and "\n" not in err
    assert "in use by another run" in err or "holds a finished run" in err
    assert main(["replay", str(d)]) == 0
    assert "replay OK: 600 rounds" in capsys.readouterr().out


def test_the_log_and_the_small_files_reach_the_disk_before_the_run_says_it_finished(tmp_path, monkeypatch):
    """The writer used never to fsync: a power cut after 'run finished' could leave an empty log. Now the
    log is fsynced before summary.json appears, and summary.json and config.toml are renamed into place
    from fsynced temporary files, with the directory fsynced after each."""
    d = tmp_path / "d"
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append(f"fsync {Path(target).name if Path(target) != d else 'DIR'}")
        return real_fsync(fd)

    def replace(src, dst):
        events.append(f"replace {Path(dst).name}")
        return real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    monkeypatch.setattr(rundir.os, "replace", replace)
    assert main(["run", "quickstart", "--rounds", "10", "--out", str(d)]) == 0
    for name in ("summary.json", "config.toml"):
        i = events.index(f"replace {name}")
        assert events[i - 1].startswith(f"fsync .{name}.") and events[i + 1] == "fsync DIR", events
        # the log was on disk before either small file appeared
        assert "fsync events.msgpack" in events[:i]
