"""``llm-market attack``: find an attacker on training seeds, judge it against its truthful twin on held-out seeds.

Any method of ``ATTACK_METHODS`` (search, ppo, best-response, or a 'module:attr' one) gets an ``AttackSpec``
with the training seeds and hands back an ``Attacker``; the deviation experiment then plays the attacker's
overrides against the same profile with the deviator truthful, on seeds the method never saw (from 1000 on,
above every training seed), in the fast engine or the real runtime. A gain found on the training seeds that
does not hold on the held-out ones was fitted to those seeds' noise; the held-out CI is the verdict.

Outputs in --out: attack.json (spec, attacker, overrides, train gain, held-out verdict with its CI and seeds),
attack.csv (one row), attack.png (the method's trials if it reports a trace, and the held-out gains per seed).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from agents.bidfuncs import FAMILIES
from market.lab.attackers import ATTACK_METHODS, Attacker, AttackSpec, Progress
from market.lab.deviation import Verdict, deviate, judge, run_tasks
from market.runtime.config import ConfigError, resolve

HELD_OUT_START = 1000


def held_out_seeds(train_seeds: Sequence[int], count: int, start: int = HELD_OUT_START) -> tuple[int, ...]:
    """``count`` seeds from max(start, largest training seed + 1) on: disjoint from the training seeds."""
    if count < 2:
        raise ConfigError(f"--test-seeds: got {count}, expected at least 2 (a confidence interval needs them)")
    first = max(start, max(train_seeds, default=-1) + 1)
    return tuple(range(first, first + count))


def tqdm_progress() -> tuple[Progress, Any]:
    """A progress callback drawing one tqdm bar per stage on the terminal (stderr), and a closer."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(what: str, done: int, total: int) -> None:
        bar = bars.get(what)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[what] = tqdm(total=total, desc=what, leave=True, dynamic_ncols=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return progress, close


def run_attack(
    scenario: str,
    method: str,
    *,
    overrides: Sequence[str] = (),
    deviator: str | None = None,
    train_seeds: int = 8,
    test_seeds: int = 20,
    budget: int = 0,
    rounds: int = 400,
    engine: str = "fast",
    workers: int = 1,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    families: Sequence[str] = (),
) -> dict[str, Any]:
    """Train ``method`` on seeds 0..train_seeds-1, judge its attacker on ``test_seeds`` held-out seeds; the
    result as written to attack.json. ``families`` restricts the search method's bidding-function (ad market:
    report-function) families. ``deviator``: default provider-0, or advertiser-0 (of every query) in the ad
    market, where the held-out judging is the deviation experiment's ``play_ads`` (fast) or the platform
    (market)."""
    if train_seeds < 1:
        raise ConfigError(f"--train-seeds: got {train_seeds}, expected at least 1")
    if rounds < 1:
        raise ConfigError(f"--rounds: got {rounds}, expected at least 1")
    if budget < 0:
        raise ConfigError(f"--budget: got {budget}, expected 0 (the method's default) or more")
    if families and method != "search":
        raise ConfigError(f"--family: given with --method {method}, only the search method takes families")
    train = tuple(range(train_seeds))
    held = held_out_seeds(train, test_seeds)
    config, market = resolve(scenario, list(overrides))
    if deviator is None:
        deviator = "advertiser-0" if market.name == "ads" else "provider-0"
    spec = AttackSpec(scenario, tuple(overrides), deviator, train, rounds, budget,
                      str(out_dir) if out_dir is not None else None)
    report = progress or (lambda what, done, total: None)
    horizon = horizon_setting(config, method, engine)
    wall = time.perf_counter()
    if horizon is not None:
        from market.lab.search import horizon_player, search

        attacker = search(spec, report, families or tuple(FAMILIES), player=horizon_player(spec, *horizon))
        engine = "horizon"
    elif families:
        from market.lab.search import search

        attacker = search(spec, report, families)
    else:
        attacker = ATTACK_METHODS.get(method)(spec, report)
    if not isinstance(attacker, Attacker):
        raise TypeError(f"attack method {method!r} returned {type(attacker).__name__}, expected an Attacker")
    trained = time.perf_counter() - wall
    report("judging on held-out seeds", 0, 1)
    if horizon is not None:
        verdict = judge_horizon(attacker, held, rounds, horizon, workers)
    else:
        verdict = deviate(scenario, attacker.strategy, deviator=deviator, rounds=rounds,
                          overrides=(*overrides, *attacker.overrides), engine=engine, workers=workers, seed_list=held)
    report("judging on held-out seeds", 1, 1)
    result = {
        "scenario": scenario,
        "method": method,
        "overrides": list(overrides),
        "deviator": deviator,
        "rounds": rounds,
        "budget": budget,
        "engine": engine,
        "train_seeds": list(train),
        "held_out_seeds": list(held),
        "attacker": _jsonable(asdict(attacker)),
        "train_gain": attacker.train_gain,
        "held_out": _verdict_dict(verdict),
        "train_seconds": round(trained, 2),
        "judge_seconds": round(time.perf_counter() - wall - trained, 2),
    }
    if out_dir is not None:
        write_outputs(result, verdict, attacker, Path(out_dir))
    return result


def horizon_setting(config: dict[str, Any], method: str, engine: str) -> tuple[float, int, int] | None:
    """(mu, providers, dim) when the mechanism is HorizonROSA, else None.

    HorizonROSA takes one committed bid per provider for the whole horizon, which a scenario drawing a cost per
    query cannot give, so the attack runs in ``play_horizon``'s floor-1 loop (one cost per horizon, the
    scenario's providers and dim, mechanism.params.mu or 0.3), for training and judging alike."""
    name = config["mechanism"]["name"]
    if not name.startswith("horizon-"):
        return None
    if name != "horizon-rosa":
        raise ConfigError(f"--mechanism: got {name!r}; of the horizon mechanisms the attack plays horizon-rosa only")
    if method != "search":
        raise ConfigError(f"--method: got {method!r}; under horizon-rosa the attack plays the search method only")
    if engine != "fast":
        raise ConfigError(f"--engine: got {engine!r}; under horizon-rosa the attack judges in the floor-1 horizon "
                          "loop (--engine fast)")
    mu = float(config["mechanism"]["params"].get("mu", 0.3))
    return mu, int(config["market"]["providers"]), int(config["market"]["dim"])


def judge_horizon(attacker: Attacker, seeds: Sequence[int], rounds: int, horizon: tuple[float, int, int],
                  workers: int) -> Verdict:
    """A search attacker's bidding function against truthful play in the horizon loop, seed by seed."""
    family, theta = attacker.details["family"], attacker.details["theta"]
    params: dict[str, Any] = {"family": family, "theta": theta}
    window = attacker.details.get("window")
    if window is not None:
        params["window"] = window
    tasks: list[tuple[Any, ...]] = []
    for seed in seeds:
        tasks += [("horizon", "truthful", seed, rounds, *horizon), ("horizon", "bidfunc", seed, rounds, *horizon,
                                                                    params)]
    results = run_tasks(tasks, workers)
    return judge(results[0::2], results[1::2], ["provider-0"], profile="provider-0=bidfunc",
                 twin_profile="provider-0=truthful")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _verdict_dict(v: Verdict) -> dict[str, Any]:
    return {"gain": v.gain, "ci_low": v.ci_low, "ci_high": v.ci_high, "verdict": v.verdict, "others": v.others,
            "user": v.user, "seeds": v.seeds, "rounds": v.rounds, "gains": list(v.gains), "profile": v.profile,
            "twin": v.twin}


def write_outputs(result: dict[str, Any], verdict: Verdict, attacker: Attacker, out_dir: Path) -> None:
    """attack.json, attack.csv and attack.png in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "attack.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out_dir / "attack.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "mechanism_overrides", "method", "strategy", "train_seeds", "train_gain",
                    "held_out_seeds", "held_out_gain", "ci_low", "ci_high", "verdict", "engine", "rounds"])
        tr, ho = result["train_seeds"], result["held_out_seeds"]
        w.writerow([result["scenario"], " ".join(result["overrides"]), result["method"], attacker.strategy,
                    f"{tr[0]}-{tr[-1]}", f"{attacker.train_gain:.6f}", f"{ho[0]}-{ho[-1]}", f"{verdict.gain:.6f}",
                    f"{verdict.ci_low:.6f}", f"{verdict.ci_high:.6f}", verdict.verdict, result["engine"],
                    result["rounds"]])
    trace = attacker.details.get("trace")
    panels = 2 if isinstance(trace, list) and trace else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    if panels == 2:
        ax = axes[0, 0]
        values = np.asarray(trace, dtype=float)
        ax.plot(values, ".", color="tab:gray", label="trial")
        ax.plot(np.maximum.accumulate(values), color="tab:blue", label="best so far")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("trial")
        ax.set_ylabel("mean gain per round, training seeds")
        ax.legend()
    ax = axes[0, -1]
    gains = np.asarray(verdict.gains, dtype=float)
    ax.bar(range(gains.size), gains, color="tab:gray")
    ax.axhline(verdict.gain, color="tab:blue", label=f"mean {verdict.gain:+.4f}")
    ax.axhspan(verdict.ci_low, verdict.ci_high, color="tab:blue", alpha=0.2, label="95% CI")
    ax.axhline(0.0, color="k", lw=0.8)
    ho = result["held_out_seeds"]
    ax.set_xticks(range(gains.size), [str(s) for s in ho], rotation=90 if gains.size > 8 else 0, fontsize=7)
    ax.set_xlabel(f"held-out seed ({ho[0]}..{ho[-1]})")
    ax.set_ylabel("gain per round over the truthful twin")
    ax.legend()
    fig.suptitle(f"{result['method']} attack, {result['scenario']} {' '.join(result['overrides'])}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "attack.png", dpi=120)
    plt.close(fig)


def format_result(result: dict[str, Any]) -> str:
    """The lines the command prints: what trained where, what was found, the held-out verdict."""
    a, h = result["attacker"], result["held_out"]
    tr, ho = result["train_seeds"], result["held_out_seeds"]
    lines = [
        f"attack {result['method']} on {result['scenario']} {' '.join(result['overrides'])}".rstrip(),
        f"trained on seeds {tr[0]}..{tr[-1]} ({len(tr)} seeds x {result['rounds']} rounds, "
        f"{'horizon loop' if result['engine'] == 'horizon' else 'fast engine'}), "
        f"{result['train_seconds']:.1f} s",
        f"found: {a['strategy']} {' '.join(a['overrides'])}",
        f"it sees: {a['sees']}",
        f"train gain per round: {a['train_gain']:+.5f}",
        f"judged on held-out seeds {ho[0]}..{ho[-1]} ({len(ho)} seeds x {h['rounds']} rounds, engine "
        f"{result['engine']}), {result['judge_seconds']:.1f} s:",
        f"  held-out gain per round {h['gain']:+.5f}  95% CI [{h['ci_low']:+.5f}, {h['ci_high']:+.5f}]  "
        f"{h['verdict']}  (others {h['others']:+.5f}, user {h['user']:+.5f})",
    ]
    return "\n".join(lines)
