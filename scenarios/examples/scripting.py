"""Three mechanisms on one market from a script, each run written to a directory that replays.

    python scenarios/examples/scripting.py [OUT_DIR]     (default: runs/scripting)

``market.run`` goes through the same code as ``llm-market run``; the tests run this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import market
from market.runtime.verify import verify_run

MECHANISMS = ("myerson", "pay-as-bid", "rosa-trcm-ucb")


def main(out: Path, rounds: int = 200) -> dict[str, market.RunResult]:
    results = {}
    for name in MECHANISMS:
        result = market.run("quickstart", seed=1, rounds=rounds, overrides={"mechanism.name": name},
                            out=out / name, force=True)
        report = verify_run(out / name)  # what `llm-market verify` checks
        if not report.ok:
            raise SystemExit(f"{name}: {[c.line() for c in report.failed()]}")
        results[name] = result
        best = max(result.provider_utility, key=result.provider_utility.__getitem__)
        print(f"{name:<14} user utility {result.metrics['user_utility']:8.3f}   best provider {best} "
              f"{result.provider_utility[best]:7.3f}   log {result.log}")
    return results


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs") / "scripting")
