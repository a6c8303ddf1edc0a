"""The search attack: Optuna over bidding-function families, maximising the gain over the truthful twin.

Each trial picks a family of ``agents.bidfuncs`` and its parameters (TPE, seeded, so the same spec finds the
same function), plays the deviator with that function on every training seed in the fast engine
(``deviation.play_fast``) and scores the mean per-round gain over its truthful twin on the same seeds (common
random numbers: the twin's runs are played once and reused). The best trial is handed back as an ``Attacker``
whose overrides make the deviator play it through the real runtime, to be judged on other seeds.

In the ad market (scenario ``ads``) the families are the advertisers' report functions (``agents.ad_reportfuncs``:
a report factor as a function of the own rewards' spread or the round), advertiser 0 of every query deviates and
each training run is ``deviation.play_ads``'s, replayed from the seed's drawn auctions
(``market.lab.rl.ad_engine.AdsEngine.play``: the same utilities bit for bit, without redrawing the candidates).

Optuna is the [rl] extra; nothing is written unless the spec has an out_dir (then search.csv, every trial).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import ad_reportfuncs
from agents.bidfuncs import FAMILIES, SEARCH_SPACE, bidfunc_overrides
from market.lab.attackers import Attacker, AttackSpec, Progress
from market.lab.deviation import deviators_for, play_fast, play_horizon, profile_overrides
from market.runtime.config import ConfigError, resolve

DEFAULT_TRIALS = 40
CLUSTERS = 3  # multipliers of the cluster family a search tries (clusters = argmax of the first 3 contexts)
WINRATE_WINDOW = 20
SEES = "own cost, query context, round index, own past outcomes (win/loss, payment)"
AD_SEES = "own true rewards on the candidates (their spread), round index"


def _optuna() -> object:
    try:
        import optuna
    except ImportError:
        raise ConfigError("attack --method search needs the [rl] extra (optuna): "
                          "pip install 'llm-market-sim[rl]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _space(family: str, rounds: int, ads: bool = False) -> list[tuple[float, float]]:
    """Each theta component's (low, high) for ``family`` in a run of ``rounds`` rounds (ads: auctions), among the
    bidding functions or (``ads``) the report functions."""
    if ads:
        box = ad_reportfuncs.SEARCH_SPACE[family]
    else:
        box = SEARCH_SPACE[family] * (CLUSTERS if family == "cluster" else 1)
    return [(float(lo), float(rounds) if hi == "rounds" else float(hi)) for lo, hi in box]


def _truthful(family: str, ads: bool = False) -> tuple[float, ...]:
    """The parameters with which ``family`` bids the cost (up to the threshold family's cap at cost 1), or with
    which a report function (``ads``) reports the truth."""
    if ads:
        return ad_reportfuncs.TRUTHFUL[family]
    return {"affine": (0.0, 1.0), "cluster": (1.0,) * CLUSTERS, "time": (1.0, 1.0, 0.0), "threshold": (1.0, 1.0),
            "winrate": (1.0, 1.0, 0.0)}.get(family, (1.0,) * len(SEARCH_SPACE[family]))


def _window(family: str) -> int | None:
    return WINRATE_WINDOW if family == "winrate" else None


# Plays one training run: (family, theta) or None for the truthful twin, and a seed -> the deviator's utility
# and the rounds played.
Player = Callable[[tuple[str, tuple[float, ...]] | None, int], tuple[float, int]]


def fast_player(spec: AttackSpec) -> Player:
    """Runs of spec's scenario in the fast engine (``play_fast``), the deviator playing a bidding function."""
    config, _ = resolve(spec.scenario, list(spec.overrides))
    devs = deviators_for("bidfunc", spec.deviator, config["market"]["providers"])
    twin_sets = (*spec.overrides, *profile_overrides("truthful", devs))

    def play(function: tuple[str, tuple[float, ...]] | None, seed: int) -> tuple[float, int]:
        sets = twin_sets if function is None else (
            *spec.overrides, *bidfunc_overrides(spec.deviator, *function, _window(function[0])))
        r = play_fast(spec.scenario, sets, seed, spec.rounds)
        return r.utilities[spec.deviator], r.rounds

    return play


def ads_player(spec: AttackSpec) -> tuple[Player, int]:
    """(runs of the ad market with advertiser 0 of every query reporting with a report function, the run's
    auctions): ``play_ads``'s runs, replayed from each seed's drawn auctions (``AdsEngine.play``)."""
    from agents.ad_strategies import Truthful
    from market.lab.rl.ad_engine import AdsEngine

    if spec.deviator != "advertiser-0":
        raise ConfigError(f"--deviator: got {spec.deviator!r}; in the ad market advertiser-0 (of every query) "
                          "deviates")
    engine = AdsEngine(overrides=spec.overrides, rounds=spec.rounds)

    def play(function: tuple[str, tuple[float, ...]] | None, seed: int) -> tuple[float, int]:
        strategy = Truthful() if function is None else ad_reportfuncs.ReportFunction(*function)
        return engine.play(strategy, seed)

    return play, engine.horizon


def horizon_player(spec: AttackSpec, mu: float, providers: int, dim: int) -> Player:
    """Runs of HorizonROSA's floor-1 loop (``play_horizon``: one cost and one bid per horizon), provider-0
    playing a bidding function on its single bid (round 0, no history yet)."""
    if spec.deviator != "provider-0":
        raise ConfigError(f"--deviator: got {spec.deviator!r}; the horizon loop's deviator is provider-0")

    def play(function: tuple[str, tuple[float, ...]] | None, seed: int) -> tuple[float, int]:
        if function is None:
            r = play_horizon("truthful", seed, spec.rounds, mu, providers, dim)
        else:
            family, theta = function
            params: dict[str, Any] = {"family": family, "theta": list(theta)}
            if _window(family) is not None:
                params["window"] = _window(family)
            r = play_horizon("bidfunc", seed, spec.rounds, mu, providers, dim, params)
        return r.utilities["provider-0"], r.rounds

    return play


def is_ads(scenario: str, overrides: Sequence[str] = ()) -> bool:
    """Whether ``scenario`` is the ad market (advertisers report; the search looks among report functions)."""
    return resolve(scenario, list(overrides))[1].name == "ads"


def search(spec: AttackSpec, progress: Progress, families: Sequence[str] | None = None,
           trials: int | None = None, player: Player | None = None) -> Attacker:
    """The best bidding function (ad market: report function) of ``families`` (default: every family) found in
    ``trials`` (default spec.budget or 40) TPE trials, each scored on every training seed by ``player`` (default:
    the scenario in the fast engine; the ad market's auctions replayed)."""
    optuna = _optuna()
    ads = is_ads(spec.scenario, spec.overrides)
    known = ad_reportfuncs.FAMILIES if ads else FAMILIES
    families = tuple(known) if families is None else tuple(families)
    for f in families:
        if f not in known:
            raise ConfigError(f"--family: got {f!r}, expected one of {sorted(known)}"
                              + (" (the ad market's report functions)" if ads else ""))
    if not families:
        raise ConfigError(f"--family: none given, expected some of {sorted(known)}")
    n_trials = trials or spec.budget or DEFAULT_TRIALS
    seeds = tuple(spec.train_seeds)
    if not seeds:
        raise ConfigError("train_seeds: empty, expected at least one training seed")
    span = spec.rounds
    if player is not None:
        play = player
    elif ads:
        play, span = ads_player(spec)
    else:
        play = fast_player(spec)
    total = len(seeds) * (n_trials + 1)
    done = 0
    twin = []
    for seed in seeds:
        twin.append(play(None, seed)[0])
        done += 1
        progress("search: truthful twin", done, total)

    def gains(family: str, theta: tuple[float, ...]) -> list[float]:
        nonlocal done
        out = []
        for seed, base in zip(seeds, twin):
            utility, rounds = play((family, theta), seed)
            out.append((utility - base) / max(rounds, 1))
            done += 1
            progress("search: trials", done, total)
        return out

    rows: list[tuple[int, str, tuple[float, ...], float]] = []

    def objective(trial: object) -> float:
        family = trial.suggest_categorical("family", list(families))  # type: ignore[attr-defined]
        theta = tuple(trial.suggest_float(f"{family}.{k}", lo, hi)  # type: ignore[attr-defined]
                      for k, (lo, hi) in enumerate(_space(family, span, ads)))
        value = float(np.mean(gains(family, theta)))
        rows.append((len(rows), family, theta, value))
        return value

    sampler = optuna.samplers.TPESampler(seed=0)  # type: ignore[attr-defined]
    study = optuna.create_study(direction="maximize", sampler=sampler)  # type: ignore[attr-defined]
    # the truthful function first: a search that finds nothing better hands back (close to) truthful play
    first = families[0]
    study.enqueue_trial({"family": first, **{f"{first}.{k}": v for k, v in enumerate(_truthful(first, ads))}})
    study.optimize(objective, n_trials=n_trials)
    best = max(rows, key=lambda r: r[3])
    _, family, theta, value = best
    if spec.out_dir:
        out = Path(spec.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "search.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["trial", "family", "theta", "train_gain"])
            for i, fam, th, v in rows:
                w.writerow([i, fam, " ".join(f"{x:.6g}" for x in th), f"{v:.6f}"])
    per_family = {}
    for _, fam, th, v in rows:
        if fam not in per_family or v > per_family[fam]["train_gain"]:  # type: ignore[operator]
            per_family[fam] = {"theta": list(th), "train_gain": v}
    if ads:
        strategy, sees, window = "reportfunc", AD_SEES, None
        overrides = ad_reportfuncs.reportfunc_overrides(family, theta)
    else:
        strategy, overrides, sees = "bidfunc", bidfunc_overrides(spec.deviator, family, theta, _window(family)), SEES
        window = _window(family)
    return Attacker(
        method="search", strategy=strategy, overrides=overrides, sees=sees, train_gain=float(value),
        train_seeds=seeds,
        details={"trials": n_trials, "family": family, "theta": list(theta), "window": window,
                 "families": list(families),
                 "best_per_family": per_family, "trace": [r[3] for r in rows]},
    )


def search_attacker(spec: AttackSpec, progress: Progress) -> Attacker:
    """The registered ``search`` attack method: every family, spec.budget trials (default 40)."""
    return search(spec, progress)
