"""llm-market-sim: a multi-agent market simulator for LLM markets on asyncio.

``market.run(scenario, seed=..., rounds=..., overrides=..., out=...)`` is the scripting API (``market.api``):
the same code path as ``llm-market run``. It is imported on first use, so ``import market`` stays light.
"""

from typing import Any

__version__ = "0.1.0"

_API = ("run", "RunResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from market import api

        return getattr(api, name)
    raise AttributeError(f"module 'market' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
