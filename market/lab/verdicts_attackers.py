"""The verdict table's second generation: the strongest attackers we build, per mechanism, with their CIs.

Next to the first table's one-number cheats (a fixed shading, a learner over a grid of multipliers), three
attackers per mechanism:

- the exact best response (``market.lab.best_response``): bnelearn's utility loss, what a deviator could gain per
  round over truth; an oracle for the free bid (it sees each round's threshold), a cost-only function for the best
  bidding family; on the reverse mechanisms and on the three MOSAIC payment rules (a free report on a fixed
  candidate set);
- the search attacker (``market.lab.search``): Optuna over the bidding-function families, trained on seeds
  0..N-1 and judged against its truthful twin on held-out seeds from 1000 on;
- the PPO attacker (``market.lab.rl.ppo``, the [rl] extra): a policy over own cost, context, round and last
  outcome, trained and judged on the same seeds as the search.

The learned attackers run on the reverse mechanisms of the quickstart market (ROSA at the table's mu), with the
providers' env and bidding-function families, and on MOSAIC's three payment rules in the ad market, with the ad env
(``market.lab.rl.ads``) and the report-function families (``agents.ad_reportfuncs``): advertiser 0 of every query
deviates, in the floor-1 loop on the simulated LM (``deviation.play_ads``). MOSAIC with payments is truthful in
expectation on a fixed candidate set, so its rows should find nothing; without payments exaggerating pays.
"""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from market.lab.attack import run_attack
from market.lab.verdicts import SCENARIO, mechanism_sets

# (label, mechanism) of the rows the learned attackers play
LEARNED = (("ROSA + TRCM-UCB", "rosa-trcm-ucb"), ("Myerson", "myerson"), ("pay-as-bid", "pay-as-bid"),
           ("first-price UCB", "first-price-ucb"))
SIZES = {
    "quick": {"train_seeds": 3, "test_seeds": 8, "rounds": 200, "trials": 10, "ppo_steps": 6_144},
    "full": {"train_seeds": 8, "test_seeds": 20, "rounds": 400, "trials": 40, "ppo_steps": 50_000},
}
# (label, mechanism) of the ad market's rows (the utility loss's labels) and their sizes: rounds are auctions (50
# queries asked once each per 50), PPO's steps are auctions too.
LEARNED_ADS = (("MOSAIC (offset)", "mosaic"), ("Rochet without offset", "mosaic-rochet"),
               ("no payments", "mosaic-nopay"))
AD_SIZES = {
    "quick": {"train_seeds": 3, "test_seeds": 8, "rounds": 50, "trials": 10, "ppo_steps": 2_048},
    "full": {"train_seeds": 8, "test_seeds": 20, "rounds": 100, "trials": 40, "ppo_steps": 20_480},
}
COLUMNS = ("mechanism", "attacker", "gain", "ci_low", "ci_high", "verdict", "seeds", "trained_on", "sees",
           "found", "command")


def _learned_row(label: str, mechanism: str, method: str, size: dict[str, int], workers: int,
                 scenario: str = SCENARIO) -> dict[str, Any]:
    sets = mechanism_sets(mechanism) if scenario == SCENARIO else [f"mechanism.name={mechanism}"]
    budget = size["trials"] if method == "search" else size["ppo_steps"]
    result = run_attack(scenario, method, overrides=sets, train_seeds=size["train_seeds"],
                        test_seeds=size["test_seeds"], budget=budget, rounds=size["rounds"], workers=workers)
    held, attacker = result["held_out"], result["attacker"]
    found = " ".join(o.split(".", 3)[-1] if o.startswith("strategies.params.") else o.split("=", 1)[1]
                     for o in attacker["overrides"] if "path=" not in o)
    command = (f"llm-market attack {scenario} --method {method} --train-seeds {size['train_seeds']} "
               f"--test-seeds {size['test_seeds']} --budget {budget} --rounds {size['rounds']} "
               + " ".join(f"--set {s}" for s in sets) + " --out DIR")
    seeds = result["held_out_seeds"]
    return {"mechanism": label, "attacker": f"{method} (held-out gain)", "gain": held["gain"],
            "ci_low": held["ci_low"], "ci_high": held["ci_high"], "verdict": held["verdict"],
            "seeds": f"{seeds[0]}..{seeds[-1]}", "trained_on": f"0..{size['train_seeds'] - 1}",
            "sees": attacker["sees"], "found": found, "command": command}


def _loss_row(row: dict[str, Any]) -> dict[str, Any]:
    scenario = "ads" if row["mechanism"] in ("MOSAIC (offset)", "Rochet without offset", "no payments") else SCENARIO
    return {"mechanism": row["mechanism"], "attacker": f"utility loss, {row['kind']}", "gain": row["loss"],
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "verdict": row["verdict"],
            "seeds": f"0..{row['seeds'] - 1}", "trained_on": "exact (no training)", "sees": row["sees"],
            "found": row["theta_seed0"],
            "command": f"llm-market best-response {scenario} --seeds {row['seeds']} --rounds {row['rounds']} "
                       + (f"--warmup {row['warmup']} " if scenario != "ads" else "") + "--out DIR"}


def has_rl() -> bool:
    """Whether the [rl] extra's PPO stack is installed (stable-baselines3 and torch)."""
    return all(importlib.util.find_spec(m) is not None for m in ("stable_baselines3", "torch", "optuna"))


def attacker_rows(quick: bool, workers: int, progress: Any = None) -> list[dict[str, Any]]:
    """Every second-generation row: utility losses, then the search and the PPO attacker per reverse mechanism and
    per MOSAIC payment rule. Without the [rl] extra the learned attackers' rows are left out (``attackers_table``
    says so)."""
    from market.lab.best_response import utility_loss_rows

    size = SIZES["quick" if quick else "full"]
    rows = [_loss_row(r) for r in utility_loss_rows(quick, workers)]
    if not has_rl():
        return rows
    ad_size = AD_SIZES["quick" if quick else "full"]
    steps = [(label, mech, method, size, 1) for method in ("search", "ppo") for label, mech in LEARNED]
    steps += [(label, mech, method, ad_size, 1, "ads") for method in ("search", "ppo") for label, mech in LEARNED_ADS]
    if workers <= 1:
        for k, step in enumerate(steps):
            if progress is not None:
                progress(f"attackers: {step[2]} on {step[0]}", k, len(steps))
            rows.append(_learned_row(*step))
        return rows
    # one attacker per process (each trains on one thread: torch's and NumPy's threads would fight for the cores)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_learned_row, *step) for step in steps]
        for k, future in enumerate(futures):
            rows.append(future.result())
            if progress is not None:
                progress("attackers", k + 1, len(steps))
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    out = [f"{'mechanism':<26} {'attacker':<40} {'gain':>9}  {'95% CI':<22} verdict"]
    for r in rows:
        out.append(f"{r['mechanism']:<26} {r['attacker']:<40} {r['gain']:+9.5f}  "
                   f"[{r['ci_low']:+.5f}, {r['ci_high']:+.5f}]  {r['verdict']}")
    if not has_rl():
        out.append("(the search and PPO attackers need the [rl] extra: pip install 'llm-market-sim[rl]')")
    return "\n".join(out)
