"""Reproduction experiments of the papers: each module writes CSV tables and PNG figures; ``PAPERS`` names
their ``run(out_dir, quick)`` functions, imported only when one is run."""

from __future__ import annotations

from typing import Any

from market.core.registry import Registry

PAPERS: Registry[dict[str, Any]] = Registry("paper", {
    "mosaic": "market.lab.repro.mosaic:run",
    "rosa": "market.lab.repro.rosa:run",
    "selection": "market.lab.repro.selection:run",
})
