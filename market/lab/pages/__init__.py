"""Interactive HTML reports: one self-contained page per directory the project writes.

``write_html(directory)`` finds what kind of directory it is (``KINDS``: the files that give it away)
and writes ``DIR/report.html`` with that kind's page function (``PAGES``: kind -> "module:function",
imported only when a directory of that kind is reported).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from market.lab.pages.page import Page
from market.runtime.config import ConfigError

PAGES: dict[str, str] = {
    "run": "market.lab.pages.run:run_page",
    "sweep": "market.lab.pages.sweep:sweep_page",
    "verdicts": "market.lab.pages.verdicts:verdicts_page",
    "repro": "market.lab.pages.repro:repro_page",
}


def _is_run(d: Path) -> bool:
    return (d / "summary.json").is_file() and (d / "config.toml").is_file() and (d / "events.msgpack").is_file()


def _is_sweep(d: Path) -> bool:
    return (d / "results").is_dir()


def _is_verdicts(d: Path) -> bool:
    return (d / "verdicts.csv").is_file()


def _is_repro(d: Path) -> bool:
    from market.lab.pages.repro import papers_in

    return bool(papers_in(d))


# kind -> (what gives it away, as said in errors; the test). Checked in this order: a verdicts directory
# may hold runs of its own, so the more specific kinds come first.
KINDS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "verdicts": ("verdicts.csv", _is_verdicts),
    "sweep": ("results/", _is_sweep),
    "repro": ("rosa_*.csv, mosaic.csv, c2mabv_*.csv or tiucb_*.csv", _is_repro),
    "run": ("summary.json + config.toml + events.msgpack", _is_run),
}


def kind_of(directory: Path) -> str:
    """The kind of a report directory with a page; raises ConfigError naming what was looked for."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"report --html: {str(d)!r} is not a directory")
    for kind, (_, test) in KINDS.items():
        if test(d):
            return kind
    wanted = "; ".join(f"{kind}: {clue}" for kind, (clue, _) in KINDS.items())
    raise ConfigError(f"report --html: {str(d)!r} is no directory with a page; expected one of ({wanted})")


def build_page(directory: Path, *, trust_builder: bool = False) -> Page:
    """The page of a run, sweep, verdicts or reproduction directory. Only a run's page reads a logged
    builder, which must be an installed scenario unless ``trust_builder`` (``builders.logged_scenario``)."""
    kind = kind_of(directory)
    module, _, function = PAGES[kind].partition(":")
    make = getattr(importlib.import_module(module), function)
    return make(Path(directory), trust_builder=trust_builder) if kind == "run" else make(Path(directory))


def write_html(directory: Path, *, trust_builder: bool = False) -> Path:
    """Write ``DIR/report.html``; returns its path."""
    return build_page(directory, trust_builder=trust_builder).write(Path(directory) / "report.html")
