"""A headless Chromium for the page tests: Debian's ``chromium`` driven by playwright (never a downloaded
browser). ``open_page(path)`` loads a report file, waits for its figures, fails on any network request or
script error, and saves a screenshot under ``build/screenshots/`` for a person to look at."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[4] / "build" / "screenshots"


@dataclass
class Opened:
    """A loaded page: the playwright page, how long it took to load and draw, what it tried to fetch."""

    page: object
    load_seconds: float
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def figures(self) -> int:
        """Figures plotly drew (each a div with class js-plotly-plot holding an svg)."""
        return self.page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].filter(d => d.querySelector('svg')).length")


# Per module, not per session: playwright's sync API keeps an event loop running in the main thread
# while it is open, and the asyncio tests that run after these would find it.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    ".ci/run does this")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def load(path: Path, screenshot: str | None = None, width: int = 1200) -> Opened:
        page = browser.new_page(viewport={"width": width, "height": 900})
        pages.append(page)
        opened = Opened(page, 0.0)
        page.on("request", lambda r: opened.requests.append(r.url) if not r.url.startswith(("file:", "data:",
                                                                                             "blob:")) else None)
        page.on("pageerror", lambda e: opened.errors.append(str(e)))
        start = time.perf_counter()
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].every(d => d.querySelector('svg'))")
        opened.load_seconds = time.perf_counter() - start
        if screenshot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{screenshot}.png"), full_page=True)
        return opened

    yield load
    for p in pages:
        p.close()
