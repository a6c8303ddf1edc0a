"""HTML report pages: one self-contained ``report.html`` per directory the project writes. ``PAGES`` maps each
kind of directory to its page function; ``page_kind`` tells which kind a directory is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from market.lab.pages.page import Page
from market.runtime.config import ConfigError


def _sweep(directory: Path) -> Page:
    from market.lab.pages.sweep import sweep_page

    return sweep_page(directory)


def _verdicts(directory: Path) -> Page:
    from market.lab.pages.verdicts import verdicts_page

    return verdicts_page(directory)


def _repro(directory: Path) -> Page:
    from market.lab.pages.repro import repro_page

    return repro_page(directory)


PAGES: dict[str, Callable[[Path], Page]] = {
    "sweep": _sweep,
    "verdicts": _verdicts,
    "repro": _repro,
}


def page_kind(directory: Path) -> str:
    """'sweep' (results/), 'verdicts' (verdicts.csv) or 'repro' (a paper's CSVs); ConfigError otherwise."""
    d = Path(directory)
    if (d / "results").is_dir():
        return "sweep"
    if (d / "verdicts.csv").is_file():
        return "verdicts"
    from market.lab.pages.repro import papers_in

    if papers_in(d):
        return "repro"
    raise ConfigError(f"report --html: {str(d)!r} is none of: a sweep directory (results/), a verdicts directory "
                      "(verdicts.csv), a reproduction directory (rosa_*.csv, mosaic.csv, c2mabv_*.csv, tiucb_*.csv)")
