"""Reproduction of C2MAB-V (arXiv 2405.16587) and TI-UCB (WWW 2024) on replayed LLM data.

C2MAB-V vs CUCB, epsilon-greedy and Thompson sampling on the FrugalGPT SciQ arms for AWC, SUC and
AIC plus a budget sweep; TI-UCB vs UCB1, SW-UCB and CD-UCB on piecewise-linear, saturating and
Pythia-curve arms (rested time index), with detections marked and a window sweep. CSV + PNG out.
"""

from __future__ import annotations

import csv
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from market.learning.environments import (  # noqa: E402
    BernoulliCostArms, PiecewiseLinearArms, PythiaCurveArms, SaturatingArms,
)
from market.learning.regret import cumulative_regret, cumulative_violation  # noqa: E402
from market.learning.selection_run import simulate_pulls, simulate_subsets  # noqa: E402
from market.learning.selectors import build_selector  # noqa: E402
from market.learning.subset_oracle import fractional_optimum, integer_optimum  # noqa: E402

MAX_ARMS = 2
BUDGET = 0.05  # normalised cost per query: between the cheap models and gpt-4o
SUBSET_LEARNERS = ("c2mabv", "cucb", "epsilon_greedy", "thompson")
PULL_LEARNERS = ("tiucb", "ucb1", "sw_ucb", "cd_ucb")
TIUCB_PARAMS = {"window": 50, "gamma": 0.1}


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
    env = BernoulliCostArms.from_frugalgpt_sciq()
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
        "pythia": lambda: PythiaCurveArms(steps_per_pull=np.array([400.0, 200.0, 100.0, 50.0, 25.0])),
    }


def _pull_params(name: str, k: int) -> dict:
    params = {"n_arms": k}
    if name == "tiucb":
        params.update(TIUCB_PARAMS)
    return params


def _increasing(out_dir, horizon, seeds, windows):
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
                                float((tr.arms[horizon // 2:] == best).mean()), len(getattr(learner, "detections", []))])
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
    sweep = []
    for w in windows:
        regs, dets = [], []
        for seed in range(seeds):
            env = PiecewiseLinearArms.trap()
            learner = build_selector("tiucb", n_arms=env.n_arms, window=w, gamma=TIUCB_PARAMS["gamma"])
            tr = simulate_pulls(learner, env, horizon, np.random.default_rng(seed))
            regs.append(float(np.sum(env.best_limit - tr.expected)))
            dets.append(len(learner.detections))
        sweep.append([w, float(np.mean(regs)), float(np.mean(dets))])
    _write_csv(out_dir / "tiucb_window_sweep.csv", ["window", "regret", "detections"], sweep)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r[0] for r in sweep], [r[1] for r in sweep], "o-")
    ax.set_xscale("log")
    ax.set_xlabel("window w")
    ax.set_ylabel(f"regret at T={horizon} (piecewise linear)")
    fig.tight_layout()
    fig.savefig(out_dir / "tiucb_window_sweep.png", dpi=100)
    plt.close(fig)
    return summary, sweep


def run(
    out_dir: pathlib.Path, quick: bool = False, *, horizon: int | None = None, seeds: int | None = None
) -> dict:
    """Write the tables and figures to out_dir; returns summary rows and the timing."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sub_t = horizon or (800 if quick else 5000)
    pull_t = horizon or (2000 if quick else 20000)
    n_seeds = seeds or (2 if quick else 5)
    budgets = (0.02, 0.05, 0.2) if quick else (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    windows = (20, 50, 100) if quick else (10, 20, 50, 100, 200, 400)
    c_summary, c_sweep = _combinatorial(out_dir, sub_t, n_seeds, budgets)
    t_summary, t_sweep = _increasing(out_dir, pull_t, n_seeds, windows)
    return {
        "c2mabv_summary": c_summary, "c2mabv_budget_sweep": c_sweep,
        "tiucb_summary": t_summary, "tiucb_window_sweep": t_sweep,
        "seconds": time.perf_counter() - start,
    }
