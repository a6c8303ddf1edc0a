"""Reproduction of C2MAB-V (arXiv 2405.16587) and TI-UCB (WWW 2024) on replayed LLM data.

C2MAB-V vs CUCB, epsilon-greedy and Thompson sampling on the FrugalGPT SciQ arms for AWC, SUC and
AIC plus a budget sweep and the regret scaling of spec A.6.4 (slope of log R(T) against log T,
R(T)/sqrt(T ln T)); TI-UCB vs UCB1, SW-UCB and CD-UCB on piecewise-linear, saturating and
Pythia-curve arms (rested time index), with detections marked, and the window and threshold sweeps
of spec B.6.6 (regret, false alarms, detection delay). CSV + PNG out; seeds run in a process pool.
"""

from __future__ import annotations

import csv
import os
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from market.core.learning.environments import (  # noqa: E402
    BernoulliCostArms,
    PiecewiseLinearArms,
    PythiaCurveArms,
    SaturatingArms,
    pythia_curves,
)
from market.core.learning.regret import cumulative_regret, cumulative_violation, loglog_slope  # noqa: E402
from market.core.learning.selection_run import simulate_pulls, simulate_subsets  # noqa: E402
from market.core.learning.selectors import build_selector  # noqa: E402
from market.core.learning.subset_oracle import fractional_optimum, integer_optimum  # noqa: E402
from market.data import frugalgpt_sciq, pythia_checkpoints  # noqa: E402

MAX_ARMS = 2
BUDGET = 0.05  # normalised cost per query: between the cheap models and gpt-4o
SUBSET_LEARNERS = ("c2mabv", "cucb", "epsilon_greedy", "thompson")
PULL_LEARNERS = ("tiucb", "ucb1", "sw_ucb", "cd_ucb")
TIUCB_PARAMS = {"window": 50, "gamma": 0.1}
# A.6.4: (reward model, relaxation). AWC's linear relaxation min{1, sum p mu} is kept as a contrast: on
# SciQ its least-cost optimum is a pair of cheap arms even with the true means, so its regret is linear.
SCALING_RUNS = (("awc", "multilinear"), ("suc", "linear"), ("aic", "linear"), ("awc", "linear"))
SCALING_GREEDY_STEPS = 5  # continuous-greedy steps: with the true means 5 come within 3e-4 of the optimum
# B.6.6: the window sweep on the trap with the spec's Gaussian noise and with Bernoulli rewards, whose
# noise (sd up to 0.5) makes a short window's fit, restarted by every false alarm, costly
SWEEP_NOISES = (0.05, "bernoulli")


def _write_csv(path: pathlib.Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _subset_params(name: str, model: str, budget: float, k: int) -> dict:
    params = {"n_arms": k, "max_arms": MAX_ARMS, "reward_model": model}
    if name == "c2mabv":
        params["budget"] = budget
    return params


def _run_subsets(name, model, budget, env, horizon, seeds):
    int_opt = integer_optimum(env.mean_quality, env.mean_cost, MAX_ARMS, budget, model).value
    frac_opt = fractional_optimum(env.mean_quality, env.mean_cost, MAX_ARMS, budget, model).value
    reg_i, reg_f, viol, reward = [], [], [], []
    for seed in range(seeds):
        learner = build_selector(name, **_subset_params(name, model, budget, env.n_arms))
        tr = simulate_subsets(learner, env, horizon, model, np.random.default_rng(seed))
        reg_i.append(cumulative_regret(tr.expected_reward, int_opt))
        reg_f.append(cumulative_regret(tr.expected_reward, frac_opt))
        viol.append(cumulative_violation(tr.cost, budget))
        reward.append(np.cumsum(tr.expected_reward))
    return {k: np.mean(v, axis=0) for k, v in
            {"regret_integer": reg_i, "regret_fractional": reg_f, "violation": viol, "reward": reward}.items()}


def _combinatorial(out_dir, horizon, seeds, budgets):
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    rows, summary = [], []
    checkpoints = np.unique(np.linspace(1, horizon, 20).astype(int)) - 1
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for col, model in enumerate(("awc", "suc", "aic")):
        for name in SUBSET_LEARNERS:
            res = _run_subsets(name, model, BUDGET, env, horizon, seeds)
            for t in checkpoints:
                rows.append([model, name, BUDGET, t + 1] + [float(res[k][t]) for k in
                            ("regret_integer", "regret_fractional", "violation", "reward")])
            summary.append([model, name, BUDGET, float(res["reward"][-1]), float(res["violation"][-1]),
                            float(res["reward"][-1] / max(res["violation"][-1], 1.0))])
            axes[0, col].plot(np.arange(1, horizon + 1), res["regret_fractional"], label=name)
            axes[1, col].plot(np.arange(1, horizon + 1), res["violation"], label=name)
        axes[0, col].set_title(f"{model.upper()}: regret vs fractional optimum")
        axes[1, col].set_title(f"{model.upper()}: cumulative budget violation")
        axes[1, col].set_xlabel("round")
    axes[0, 0].legend()
    fig.suptitle(f"SciQ replay, K={env.n_arms}, N={MAX_ARMS}, rho={BUDGET}, {seeds} seeds")
    fig.tight_layout()
    fig.savefig(out_dir / "c2mabv_regret_violation.png", dpi=100)
    plt.close(fig)
    _write_csv(out_dir / "c2mabv_curves.csv",
               ["reward_model", "learner", "budget", "round", "regret_integer", "regret_fractional",
                "violation", "cumulative_reward"], rows)
    sweep = []
    for budget in budgets:
        for name in ("c2mabv", "cucb"):
            res = _run_subsets(name, "suc", budget, env, horizon, seeds)
            sweep.append(["suc", name, budget, float(res["reward"][-1] / horizon),
                          float(res["violation"][-1]), float(res["regret_fractional"][-1])])
    _write_csv(out_dir / "c2mabv_budget_sweep.csv",
               ["reward_model", "learner", "budget", "mean_reward", "violation", "regret_fractional"], sweep)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("c2mabv", "cucb"):
        pts = [r for r in sweep if r[1] == name]
        ax[0].plot([r[2] for r in pts], [r[3] for r in pts], "o-", label=name)
        ax[1].plot([r[2] for r in pts], [r[4] for r in pts], "o-", label=name)
    ax[0].set_xlabel("rho")
    ax[0].set_ylabel("mean reward per round (SUC)")
    ax[1].set_xlabel("rho")
    ax[1].set_ylabel(f"violation V(T), T={horizon}")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "c2mabv_budget_sweep.png", dpi=100)
    plt.close(fig)
    _write_csv(out_dir / "c2mabv_summary.csv",
               ["reward_model", "learner", "budget", "total_reward", "violation", "reward_per_violation"],
               summary)
    return summary, sweep


def _environments():
    return {
        "piecewise_linear": lambda: PiecewiseLinearArms.trap(),
        "saturating": lambda: SaturatingArms.default(),
        "pythia": lambda: PythiaCurveArms(
            pythia_curves(pythia_checkpoints()), steps_per_pull=np.array([400.0, 200.0, 100.0, 50.0, 25.0])
        ),
    }


def _pull_params(name: str, k: int) -> dict:
    params = {"n_arms": k}
    if name == "tiucb":
        params.update(TIUCB_PARAMS)
    return params


def _increasing(out_dir, horizon, seeds):
    rows, summary = [], []
    envs = _environments()
    fig, axes = plt.subplots(1, len(envs), figsize=(15, 4))
    for ax, (env_name, make) in zip(axes, envs.items()):
        for name in PULL_LEARNERS:
            regrets, dets = [], []
            for seed in range(seeds):
                env = make()
                learner = build_selector(name, **_pull_params(name, env.n_arms))
                tr = simulate_pulls(learner, env, horizon, np.random.default_rng(seed))
                regrets.append(np.cumsum(env.best_limit - tr.expected))
                dets.extend(getattr(learner, "detections", []))
                best = int(np.argmax(env.limits))
                summary.append([env_name, name, seed, float(regrets[-1][-1]),
                                float((tr.arms[horizon // 2:] == best).mean()),
                                len(getattr(learner, "detections", []))])
            mean = np.mean(regrets, axis=0)
            line = ax.plot(np.arange(1, horizon + 1), mean, label=name)[0]
            if dets:
                rounds = np.array([d[2] for d in dets])
                ax.plot(rounds, mean[rounds - 1], "|", color=line.get_color(), markersize=10)
            for t in np.unique(np.linspace(1, horizon, 20).astype(int)) - 1:
                rows.append([env_name, name, t + 1, float(mean[t])])
            rows.extend([env_name, f"{name}_detection", d[2], d[1]] for d in dets)
        ax.set_title(f"{env_name} (rested; | = detections)")
        ax.set_xlabel("round")
    axes[0].set_ylabel("cumulative regret vs best limit")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "tiucb_regret.png", dpi=100)
    plt.close(fig)
    _write_csv(out_dir / "tiucb_curves.csv", ["environment", "learner", "round", "regret_or_pull"], rows)
    _write_csv(out_dir / "tiucb_summary.csv",
               ["environment", "learner", "seed", "regret", "share_best_last_half", "detections"], summary)
    return summary


def _pool_map(fn: Callable, tasks: Sequence, workers: int) -> list:
    """fn over tasks in a process pool when workers > 1; every task carries its own seed, so the
    results do not depend on the number of workers."""
    if workers <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, tasks))


# ---------------------------------------------------------------- A.6.4 regret scaling


def scaling_horizons(horizon: int) -> np.ndarray:
    """1-2-5 checkpoints from horizon / 100 to horizon (and horizon itself): 10^3 .. 10^5 for 10^5."""
    grid = {m * 10**e for e in range(12) for m in (1, 2, 5)}
    return np.array(sorted({t for t in grid if max(horizon / 100, 2) <= t <= horizon} | {int(horizon)}))


def _scaling_seed(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    """One C2MAB-V run: cumulative expected reward and expected-cost violation at the checkpoints."""
    model, relaxation, seed, horizon = task
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    learner = build_selector("c2mabv", **_subset_params("c2mabv", model, BUDGET, env.n_arms),
                             relaxation=relaxation, greedy_steps=SCALING_GREEDY_STEPS)
    tr = simulate_subsets(learner, env, horizon, model, np.random.default_rng(seed))
    at = scaling_horizons(horizon) - 1
    return np.cumsum(tr.expected_reward)[at], cumulative_violation(tr.expected_cost, BUDGET)[at]


def _fit_slope(horizons: np.ndarray, regret: np.ndarray) -> float:
    """Slope of log R against log T over the checkpoints with R > 0 (NaN with fewer than two)."""
    ok = regret > 0
    return loglog_slope(horizons[ok], regret[ok]) if ok.sum() >= 2 else float("nan")


def regret_scaling(horizon: int, seeds: int, workers: int, runs=SCALING_RUNS) -> tuple[list, list]:
    """Spec A.6.4 on the SciQ arms (N = MAX_ARMS, rho = BUDGET): per (reward model, relaxation) the mean
    regret against the fractional and integer optima at scaling_horizons(horizon), R / sqrt(T ln T),
    the violation V(T) of expected costs and V / sqrt(K T ln T); and the fitted slope of log R
    against log T with a bootstrap 95% interval over seeds and the slope over the last decade."""
    env = BernoulliCostArms.from_frugalgpt_sciq(frugalgpt_sciq())
    ts = scaling_horizons(horizon)
    tasks = [(m, r, seed, horizon) for m, r in runs for seed in range(seeds)]
    results = _pool_map(_scaling_seed, tasks, workers)
    norm = np.sqrt(ts * np.log(ts))
    rows, fits = [], []
    boot = np.random.default_rng(0)
    for m, r in runs:
        res = [res for task, res in zip(tasks, results) if task[:2] == (m, r)]
        reward = np.array([x[0] for x in res])
        viol = np.array([x[1] for x in res]).mean(axis=0)
        frac = fractional_optimum(env.mean_quality, env.mean_cost, MAX_ARMS, BUDGET, m).value
        whole = integer_optimum(env.mean_quality, env.mean_cost, MAX_ARMS, BUDGET, m).value
        per_seed = frac * ts - reward
        reg = per_seed.mean(axis=0)
        se = per_seed.std(axis=0, ddof=1) / np.sqrt(seeds) if seeds > 1 else np.zeros(ts.size)
        reg_int = (whole * ts - reward).mean(axis=0)
        for i, t in enumerate(ts):
            rows.append([m, r, int(t), seeds, float(reg[i]), float(se[i]), float(reg_int[i]),
                         float(reg[i] / norm[i]), float(viol[i]),
                         float(viol[i] / np.sqrt(env.n_arms * t * np.log(t)))])
        draws = [_fit_slope(ts, per_seed[boot.integers(seeds, size=seeds)].mean(axis=0)) for _ in range(500)]
        tail = ts >= ts[-1] / 10
        fits.append([m, r, seeds, int(ts[0]), int(ts[-1]), _fit_slope(ts, reg),
                     float(np.nanpercentile(draws, 2.5)), float(np.nanpercentile(draws, 97.5)),
                     _fit_slope(ts[tail], reg[tail]), _fit_slope(ts, reg_int),
                     float(reg[0] / norm[0]), float(reg[-1] / norm[-1])])
    return rows, fits


def _scaling_outputs(out_dir: pathlib.Path, rows: list, fits: list) -> None:
    _write_csv(out_dir / "c2mabv_regret_scaling.csv",
               ["reward_model", "relaxation", "horizon", "seeds", "regret_fractional", "regret_se",
                "regret_integer", "regret_over_sqrt_tlogt", "violation", "violation_over_sqrt_ktlogt"], rows)
    _write_csv(out_dir / "c2mabv_regret_scaling_fit.csv",
               ["reward_model", "relaxation", "seeds", "t_min", "t_max", "slope", "slope_ci_low",
                "slope_ci_high", "slope_last_decade", "slope_integer", "ratio_first", "ratio_last"], fits)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for f in fits:
        pts = [r for r in rows if r[:2] == f[:2]]
        label = f"{f[0].upper()} {f[1]} (slope {f[5]:.2f})"
        ax[0].plot([r[2] for r in pts], [max(r[7], 1e-3) for r in pts], "o-", label=label)
        ax[1].plot([r[2] for r in pts], [max(r[4], 1e-3) for r in pts], "o-", label=label)
    # log scales on both: AWC's linear relaxation grows 10x over the grid, the others fall slowly
    for a in ax:
        a.set_xscale("log")
        a.set_yscale("log")
    ax[0].set_xlabel("T")
    ax[0].set_ylabel("R(T) / sqrt(T ln T)")
    ax[1].set_xlabel("T")
    ax[1].set_ylabel("R(T) vs fractional optimum")
    ax[0].legend(fontsize=8)
    seeds = fits[0][2] if fits else 0
    fig.suptitle(f"C2MAB-V on SciQ, K=9, N={MAX_ARMS}, rho={BUDGET}, {seeds} seeds")
    fig.tight_layout()
    fig.savefig(out_dir / "c2mabv_regret_scaling.png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- B.6.6 window and threshold sweeps


def single_arm_instance(noise: float | str = 0.05) -> PiecewiseLinearArms:
    """The trap's late bloomer alone (0.2 -> 0.85 at pull 600): every pull feeds one detector."""
    trap = PiecewiseLinearArms.trap(noise)
    return PiecewiseLinearArms(trap.plateau[1:2], trap.slope[1:2], trap.converge[1:2], noise)


SWEEP_INSTANCES: dict[str, Callable[[float | str], PiecewiseLinearArms]] = {
    "trap": PiecewiseLinearArms.trap, "single_arm": single_arm_instance,
}


def detection_outcomes(
    detections: Sequence[tuple[int, int, int]], converge: np.ndarray, pulls: np.ndarray, window: int
) -> tuple[int, bool, list[float]]:
    """Score TI-UCB detections (arm, pull, round) on piecewise-linear arms converging at pull converge_i.

    A detection is true if it is the arm's first at a pull >= converge_i; every other one (before the
    converging point, or a repeat on the flat part) is a false alarm. The delay of an arm is its true
    detection's pull - converge_i, +inf if none; only arms pulled >= converge_i + 2w times count, so
    that both windows could lie on the flat part. Returns (false alarms, any detection before a
    converging point, delays of the counted arms). converge, pulls: (K,).
    """
    false_alarms, early, delays = 0, False, []
    for arm, tau in enumerate(converge):
        at = sorted(d[1] for d in detections if d[0] == arm)
        late = [p for p in at if p >= tau]
        false_alarms += len(at) - (1 if late else 0)
        early = early or any(p < tau for p in at)
        if pulls[arm] >= tau + 2 * window:
            delays.append(float(late[0] - tau) if late else float("inf"))
    return false_alarms, early, delays


def _sweep_seed(task: tuple) -> tuple[float, int, bool, list[float]]:
    """One TI-UCB run: (regret vs the best limit, false alarms, early detection, delays)."""
    instance, noise, window, gamma, seed, horizon = task
    env = SWEEP_INSTANCES[instance](noise)
    learner = build_selector("tiucb", n_arms=env.n_arms, window=window, gamma=gamma)
    tr = simulate_pulls(learner, env, horizon, np.random.default_rng(seed))
    pulls = np.bincount(tr.arms, minlength=env.n_arms)
    return (float(np.sum(env.best_limit - tr.expected)),
            *detection_outcomes(learner.detections, env.converge, pulls, window))


def tiucb_sweep(
    instance: str, noise: float | str, settings: Sequence[tuple[int, float]], horizon: int, seeds: int,
    workers: int,
) -> list[list]:
    """TI-UCB (rested) on SWEEP_INSTANCES[instance] for each (window, gamma), seeds 0..seeds-1 shared
    by all settings. Row: instance, noise, window, gamma, mean regret, its standard error, false alarms
    per run, share of runs with no detection before a converging point, median delay over the counted
    (arm, seed) pairs (inf when most never detect), share of them detected, how many were counted."""
    tasks = [(instance, noise, w, g, seed, horizon) for w, g in settings for seed in range(seeds)]
    results = _pool_map(_sweep_seed, tasks, workers)
    rows = []
    for k, (w, g) in enumerate(settings):
        res = results[k * seeds:(k + 1) * seeds]
        reg = np.array([r[0] for r in res])
        delays = np.array([d for r in res for d in r[3]])
        se = float(reg.std(ddof=1) / np.sqrt(seeds)) if seeds > 1 else 0.0
        rows.append([instance, str(noise), w, g, float(reg.mean()), se, float(np.mean([r[1] for r in res])),
                     float(np.mean([not r[2] for r in res])),
                     float(np.median(delays)) if delays.size else float("nan"),
                     float(np.isfinite(delays).mean()) if delays.size else float("nan"), int(delays.size)])
    return rows


SWEEP_COLUMNS = ["instance", "noise", "window", "gamma", "regret", "regret_se", "false_alarms",
                 "share_no_early_detection", "median_delay", "detected_share", "counted_arms"]


def _sweeps(out_dir, horizon, seeds, windows, gammas, workers):
    gamma0, window0 = TIUCB_PARAMS["gamma"], TIUCB_PARAMS["window"]
    by_window = [row for noise in SWEEP_NOISES for row in
                 tiucb_sweep("trap", noise, [(w, gamma0) for w in windows], horizon, seeds, workers)]
    by_gamma = [row for instance in SWEEP_INSTANCES for row in
                tiucb_sweep(instance, 0.05, [(window0, g) for g in gammas], horizon, seeds, workers)]
    _write_csv(out_dir / "tiucb_window_sweep.csv", SWEEP_COLUMNS, by_window)
    _write_csv(out_dir / "tiucb_gamma_sweep.csv", SWEEP_COLUMNS, by_gamma)
    _sweep_figures(out_dir, by_window, by_gamma, horizon, seeds)
    return by_window, by_gamma


def _counts_axis(ax, threshold: float) -> None:
    # counts and delays span 0 to thousands: linear near 0, logarithmic above
    ax.set_yscale("symlog", linthresh=threshold)
    ax.set_ylim(bottom=0)


def _sweep_figures(out_dir, by_window, by_gamma, horizon, seeds):
    gamma0, window0 = TIUCB_PARAMS["gamma"], TIUCB_PARAMS["window"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for noise in SWEEP_NOISES:
        pts = [r for r in by_window if r[1] == str(noise)]
        ax[0].errorbar([r[2] for r in pts], [r[4] for r in pts], yerr=[r[5] for r in pts], fmt="o-",
                       capsize=3, label=f"noise {noise}")
        ax[1].plot([r[2] for r in pts], [r[6] for r in pts], "o-", label=f"noise {noise}")
        ax[2].plot([r[2] for r in pts], [r[8] for r in pts], "o-", label=f"noise {noise}")
    for a, label in zip(ax, ("regret at T", "false alarms per run", "median detection delay (pulls)")):
        a.set_xscale("log")
        a.set_xlabel("window w")
        a.set_ylabel(label)
    _counts_axis(ax[1], 1.0)
    _counts_axis(ax[2], 10.0)
    ax[0].legend()
    fig.suptitle(f"TI-UCB window sweep, trap instance (rested), gamma={gamma0}, T={horizon}, {seeds} seeds")
    fig.tight_layout()
    fig.savefig(out_dir / "tiucb_window_sweep.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for instance in SWEEP_INSTANCES:
        pts = [r for r in by_gamma if r[0] == instance]
        ax[0].plot([r[3] for r in pts], [r[6] for r in pts], "o-", label=instance)
        ax[1].plot([r[3] for r in pts], [r[8] for r in pts], "o-", label=instance)
        ax[2].plot([r[3] for r in pts], [r[9] for r in pts], "o-", label=instance)
    for a, label in zip(ax, ("false alarms per run", "median detection delay (pulls; inf not drawn)",
                             "share of converged arms detected")):
        a.set_xlabel("gamma")
        a.set_ylabel(label)
    _counts_axis(ax[0], 1.0)
    _counts_axis(ax[1], 10.0)
    ax[0].legend()
    fig.suptitle(f"TI-UCB threshold sweep (rested), w={window0}, noise 0.05, T={horizon}, {seeds} seeds")
    fig.tight_layout()
    fig.savefig(out_dir / "tiucb_gamma_sweep.png", dpi=100)
    plt.close(fig)


def run(
    out_dir: pathlib.Path, quick: bool = False, *, horizon: int | None = None, seeds: int | None = None,
    workers: int | None = None,
) -> dict:
    """Write the tables and figures to out_dir; returns summary rows and the timing.

    horizon and seeds, when given, replace every experiment's size; workers: processes over seeds
    for the regret scaling and the TI-UCB sweeps (default: number of CPUs).
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    sub_t = horizon or (800 if quick else 5000)
    pull_t = horizon or (2000 if quick else 20000)
    scaling_t = horizon or (5000 if quick else 100_000)
    n_seeds = seeds or (2 if quick else 5)
    sweep_seeds = seeds or (2 if quick else 20)
    scaling_seeds = seeds or (3 if quick else 20)
    budgets = (0.02, 0.05, 0.2) if quick else (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    windows = (10, 50, 200) if quick else (5, 10, 20, 50, 100, 200, 400)
    gammas = (0.02, 0.06, 0.1, 0.15) if quick else (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2)
    c_summary, c_sweep = _combinatorial(out_dir, sub_t, n_seeds, budgets)
    scaling_rows, scaling_fits = regret_scaling(scaling_t, scaling_seeds, workers)
    _scaling_outputs(out_dir, scaling_rows, scaling_fits)
    t_summary = _increasing(out_dir, pull_t, n_seeds)
    window_sweep, gamma_sweep = _sweeps(out_dir, pull_t, sweep_seeds, windows, gammas, workers)
    return {
        "c2mabv_summary": c_summary, "c2mabv_budget_sweep": c_sweep,
        "c2mabv_regret_scaling_fit": scaling_fits,
        "tiucb_summary": t_summary, "tiucb_window_sweep": window_sweep, "tiucb_gamma_sweep": gamma_sweep,
        "seconds": time.perf_counter() - start, "workers": workers,
    }
