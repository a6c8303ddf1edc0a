"""Run directories: one writer at a time, no silent overwrite, files that are whole or absent.

A run directory holds the files a run writes (``RUN_FILES``: the event log, its digest, ``summary.json``
and ``config.toml``) and may hold others (reports, notes) that a run neither reads nor removes.

- ``RunDirLock`` is an exclusive ``fcntl.flock`` on ``DIR/.lock`` holding the writer's pid. The kernel
  releases it when the process dies, so a killed run never leaves a directory locked; a second writer
  (another process, or a second open in the same process) is refused with the holder's pid.
- ``claim`` takes the lock and looks at what is there: a finished or unfinished run is refused unless
  ``force`` is given, in which case that run's files (and nothing else) are deleted.
- ``atomic_write_text`` writes a file so that a reader (or a crash) sees the old content or the new one,
  never a part: a temporary file in the same directory, fsync, ``os.replace``, fsync of the directory.

Nothing here runs before the run's config is resolved and its world built: a bad config must leave the
directory exactly as it was.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from market.runtime.eventlog import EventLogError, iter_frames
from market.runtime.records import Footer

LOG = "events.msgpack"
SUMMARY = "summary.json"
CONFIG = "config.toml"
DIGEST = "events.digest"
LOCK = ".lock"
# The files a run writes, in the order --force deletes them: the summary first, so that a crash midway
# leaves at worst an unfinished-looking run, never a summary beside another run's log.
RUN_FILES = (SUMMARY, CONFIG, DIGEST, LOG)
_TMP_SUFFIX = ".tmp"


class RunDirError(Exception):
    """A run directory cannot be used as asked: locked by another writer, holds a run, or is not a directory."""


# -- atomic writes ---------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a created, renamed or deleted file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's content durable (fsync covers the inode, whichever descriptor wrote it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that it is either the old file or the whole new one,
    after a crash too: the temporary file lives in the same directory (``os.replace`` is atomic only
    within a file system) and is removed if anything fails before the rename."""
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new file beside ``path`` (``.NAME.PID-N.tmp``), created exclusively with mode 0o666 less the
    umask, as ``write_text`` would create ``path`` itself (``tempfile.mkstemp`` would make it 0o600)."""
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{next(_temp_serial)}{_TMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue  # left by a crashed process that had our pid: take the next name


_temp_serial = itertools.count()


# -- the lock --------------------------------------------------------------------------------


class RunDirLock:
    """An exclusive lock on a run directory, held from ``acquire`` to ``release`` (or the process's death).

    The lock file is removed on release, so a finished directory holds only the run's files. Removing
    it opens a race (a waiter may lock the removed file while a newcomer creates a new one), closed on
    acquiring: the lock counts only if the locked file is still the one at ``DIR/.lock``.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self.run_dir.is_dir():
            what = "is not a directory" if self.run_dir.exists() else "does not exist"
            raise RunDirError(f"{self.run_dir} {what}")
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise RunDirError(
                    f"{self.run_dir} is in use by another run (pid {holder or 'unknown'} holds {self.path}); "
                    "wait for it to end or use another directory") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return
            os.close(fd)  # we locked a lock file its holder had just removed: try the current one
        raise RunDirError(f"{self.run_dir}: could not lock {self.path} (it keeps being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: nobody can hold the file we remove
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    """The pid a holder wrote into its lock file ('' if it has not yet written it)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


# -- what a directory holds ------------------------------------------------------------------


@dataclass(frozen=True)
class RunDirState:
    """What a directory holds: ``kind`` is "empty" (absent, or no run files), "finished" (a log ending in
    a footer, or a summary.json), "unfinished" (a log without a footer) or "damaged" (a log that cannot be
    read to its end, or run files without a log); ``files`` are the run files present."""

    kind: str
    files: tuple[str, ...]
    detail: str = ""

    def describe(self) -> str:
        names = ", ".join(self.files)
        if self.kind == "finished":
            return f"a finished run ({names})"
        if self.kind == "unfinished":
            return f"an unfinished run: a log without a footer ({names})"
        return f"a damaged run ({names}{': ' + self.detail if self.detail else ''})"


def state_of(run_dir: Path) -> RunDirState:
    """Classify a directory by its run files. The log is read only when there is no summary.json
    (a run writes summary.json after the footer), so a finished run costs no log read."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return RunDirState("empty", ())
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory")
    files = tuple(name for name in RUN_FILES if (run_dir / name).exists())
    if not files:
        return RunDirState("empty", ())
    if SUMMARY in files:
        return RunDirState("finished", files)
    if LOG not in files:
        return RunDirState("damaged", files, "no event log")
    last = None
    try:
        for _, record, torn in iter_frames(run_dir / LOG):
            if record is None:
                return RunDirState("unfinished", files, torn or "")
            last = record
    except (EventLogError, OSError) as exc:
        return RunDirState("damaged", files, str(exc))
    return RunDirState("finished" if isinstance(last, Footer) else "unfinished", files)


def clear(run_dir: Path) -> tuple[str, ...]:
    """Delete the run files in ``run_dir`` (and temporary files ``atomic_write_text`` left behind by a
    crash), nothing else; returns the names deleted."""
    run_dir = Path(run_dir)
    gone = []
    for name in RUN_FILES:
        p = run_dir / name
        if p.exists() or p.is_symlink():
            p.unlink()
            gone.append(name)
    for name in RUN_FILES:
        for tmp in run_dir.glob(f".{name}.*{_TMP_SUFFIX}"):
            tmp.unlink()
            gone.append(tmp.name)
    if gone:
        fsync_dir(run_dir)
    return tuple(gone)


@contextmanager
def claim(run_dir: Path, *, force: bool = False) -> Iterator[RunDirLock]:
    """Lock ``run_dir`` for a new run and make sure it holds no other run: creates it if absent,
    refuses a finished, unfinished or damaged run unless ``force`` (then deletes that run's files).
    Other files in the directory are left as they are. The lock is held until the block ends."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunDirLock(run_dir) as lock:
        if force:
            clear(run_dir)  # whatever state the old run is in: its log need not be read to be replaced
        else:
            state = state_of(run_dir)
            if state.kind != "empty":
                resume = f" or run --resume {run_dir} to continue it" if state.kind == "unfinished" else ""
                raise RunDirError(f"{run_dir} holds {state.describe()}: "
                                  f"use --force to replace it{resume}, or another --out")
        yield lock
