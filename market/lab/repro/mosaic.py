"""Reproduction of MOSAIC's experiments (arXiv 2405.05905, section 4, Figs. 1-7 and App. C.5, C.7).

Baseline (pi_gen = pi_ref) vs context-aware (pi_gen = pi_con) MOSAIC on catalogue instances of the paper's
50 ad queries, n = 2, 5, 10 advertisers (τ = n/2), M = 1..30; every target (pi*, −H(pi*)) is exact.

``run(..., lm=SPEC)`` does it on a token-level LM (``market.lm`` of the ads scenario: ``smollm2``, ``hf:PATH``,
``openai:URL``, ``simulated``), whose reply space cannot be enumerated: per query it draws a pool of K replies
from each proposal, scores every pool reply under every role once (reference, context-aware proposal, each
advertiser), and plays MOSAIC (the same ``mosaic_batch``) on M replies drawn from the pool, M = 1..K/2. The
large-M reference is MOSAIC on the whole context-aware pool (K candidates), and the target tracked is
E_q[log pi_ref(y) + R(y)/τ] = E_q[log pi*(y)] + log Z, exact up to a constant of the query, so its gap to the
reference is the gap of E_q[log pi*].
"""

from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from market.core.lm.ads import AdInstance, catalogue_instance, with_advertisers
from market.core.lm.optimum import entropy, optimum
from market.core.mechanisms.aggregation import leave_one_out, mosaic_batch
from market.data import ad_queries

Counterfactual = Literal["same-candidates", "fresh"]
AdvertiserTau = Literal["platform", "one"]

COLUMNS = (
    "n", "proposal", "M", "log_pi_star", "optimum_log_pi_star", "usefulness", "reference_usefulness",
    "reward", "optimum_reward", "reward_gain", "revenue", "utility_offset", "utility_rochet",
    "corr_offset", "corr_rochet", "corr_gain_offset", "corr_gain_rochet", "mentioned", "ess",
)


@dataclass(frozen=True, slots=True)
class _Tables:
    """Exact per-reply tables of one instance (K replies, n advertisers)."""

    log_ref: np.ndarray  # (K,)
    log_con: np.ndarray  # (K,)
    log_con_without: np.ndarray  # (n, K): pi_con without advertiser i
    rewards: np.ndarray  # (n, K)
    log_pi_star: np.ndarray  # (K,)
    mentions: np.ndarray  # (K, n) float
    tau: float


# The convergence figure's panels: (CSV column, axis title, column of its exact optimum or None).
PANELS = (
    ("log_pi_star", "E[log π*(y_out)]", "optimum_log_pi_star"),
    ("reward_gain", "total reward gain", None),
    ("revenue", "revenue", None),
    ("usefulness", "E[log π_ref(y_out)]", "reference_usefulness"),
    ("utility_offset", "utility (offset)", None),
    ("utility_rochet", "utility (no offset)", None),
    ("corr_offset", "corr(utility, reward), offset", None),
    ("corr_rochet", "corr(utility, reward), no offset", None),
    ("mentioned", "fraction of brands mentioned", None),
)


def _tables(inst: AdInstance) -> _Tables:
    lm = inst.lm
    log_ref = lm.log_probs(inst.ref_prompt)
    rewards = inst.reward_table()
    return _Tables(
        log_ref,
        lm.log_probs(inst.proposal_prompt(True)),
        np.stack([lm.log_probs(inst.proposal_prompt(True, without=i)) for i in range(inst.n)]),
        rewards,
        optimum(log_ref, rewards, inst.tau).log_pi,
        lm.mentions().astype(float),
        inst.tau,
    )


def _draw(log_gen: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(np.exp(log_gen))
    return np.minimum(np.searchsorted(cdf / cdf[-1], 1.0 - rng.random(shape)), log_gen.shape[0] - 1)


def _absent_reward(
    t: _Tables, rewards: np.ndarray, lr: np.ndarray, lg: np.ndarray, log_gen_without: np.ndarray, m: int,
    rng: np.random.Generator, counterfactual: Counterfactual,
) -> np.ndarray:
    """(n,) E[r_i(y_out)] had i been absent: same candidates without i's report, or fresh candidates."""
    tau = t.tau
    if counterfactual == "same-candidates":
        return np.einsum("snm,snm->sn", leave_one_out(rewards, lr - lg, tau), rewards).mean(0)
    n, sets = t.rewards.shape[0], rewards.shape[0]
    absent = np.empty(n)
    for i in range(n):
        fresh = _draw(log_gen_without[i], (sets, m), rng)
        others = np.delete(t.rewards, i, axis=0)
        r_fresh = np.moveaxis(others[:, fresh], 0, 1) if n > 1 else np.zeros((sets, 1, m))
        q_fresh = mosaic_batch(r_fresh, t.log_ref[fresh], log_gen_without[i][fresh], tau, "none").q
        absent[i] = (q_fresh * t.rewards[i][fresh]).sum(-1).mean()
    return absent


def _auction_metrics(
    t: _Tables, context_aware: bool, m: int, sets: int, rng: np.random.Generator, counterfactual: Counterfactual
) -> dict[str, np.ndarray | float]:
    """Metrics of one (instance, proposal, M), averaged over ``sets`` candidate sets (per-advertiser: (n,))."""
    log_gen = t.log_con if context_aware else t.log_ref
    log_gen_without = t.log_con_without if context_aware else np.broadcast_to(t.log_ref, t.log_con_without.shape)
    # the counterfactual gets its own stream so every counterfactual option sees the same candidates
    counterfactual_rng = np.random.default_rng(rng.integers(2**63))
    idx = _draw(log_gen, (sets, m), rng)
    rewards = np.moveaxis(t.rewards[:, idx], 0, 1)  # (S, n, M)
    lr, lg = t.log_ref[idx], log_gen[idx]
    offset = mosaic_batch(rewards, lr, lg, t.tau, "offset")
    rochet = mosaic_batch(rewards, lr, lg, t.tau, "rochet")
    q = offset.q
    expected = np.einsum("sm,snm->sn", q, rewards)
    absent = _absent_reward(t, rewards, lr, lg, log_gen_without, m, counterfactual_rng, counterfactual)
    return {
        "log_pi_star": float((q * t.log_pi_star[idx]).sum(-1).mean()),
        "usefulness": float((q * lr).sum(-1).mean()),
        "reward": float(expected.sum(-1).mean()),
        "reward_i": expected.mean(0),
        "gain_i": expected.mean(0) - absent,
        "revenue": float(offset.revenue.mean()),
        "u_offset_i": offset.utilities.mean(0),
        "u_rochet_i": rochet.utilities.mean(0),
        "mentioned": float((q * t.mentions[idx].mean(-1)).sum(-1).mean()),
        "ess": float(offset.ess.mean()),
    }


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def simulate(
    n_values: tuple[int, ...] = (2, 5, 10),
    m_values: tuple[int, ...] = tuple(range(1, 31)),
    n_queries: int = 50,
    sets: int = 200,
    seed: int = 0,
    counterfactual: Counterfactual = "same-candidates",
    advertiser_tau: AdvertiserTau = "platform",
) -> list[dict[str, float]]:
    """Rows of COLUMNS: means over queries (and ``sets`` candidate sets each) per (n, proposal, M).

    counterfactual: how "reward gain" prices i's absence (spec ambiguity 8.4): "same-candidates" re-runs the
    allocation without i's report on the same candidates (the offset's counterfactual); "fresh" draws new
    candidates from pi_gen without i's context (the quantity the paper approximates).
    advertiser_tau (spec ambiguity 8.6): "one" is the paper's τ_i = 1; "platform" sets τ_i = τ = n/2 so r/τ keeps
    the n = 2 balance (the toy's rewards are a few nats, unlike sequence-level LLM log-ratios).
    Correlations are Pearson's, across (query, advertiser) pairs, of expected utility vs expected reward
    E[r_i(y_out)] (corr_*) and vs reward gain (corr_gain_*).
    """
    queries = ad_queries()[:n_queries]
    root = np.random.SeedSequence(seed)
    rows: list[dict[str, float]] = []
    for n in n_values:
        build_seeds = root.spawn(1)[0].spawn(len(queries))
        tables = []
        for k, ss in enumerate(build_seeds):
            rng = np.random.default_rng(ss)
            ad_query = with_advertisers(queries, k, n, rng)
            tau_i = n / 2.0 if advertiser_tau == "platform" else 1.0
            tables.append(_tables(catalogue_instance(ad_query, rng, advertiser_tau=tau_i)))
        opt_log_pi = float(np.mean([-entropy(t.log_pi_star) for t in tables]))
        ref_use = float(np.mean([np.exp(t.log_ref) @ t.log_ref for t in tables]))
        opt_reward = float(np.mean([np.exp(t.log_pi_star) @ t.rewards.sum(0) for t in tables]))
        for context_aware in (False, True):
            run_seeds = root.spawn(1)[0].spawn(len(m_values))
            for m, ss in zip(m_values, run_seeds):
                rng = np.random.default_rng(ss)
                per = [_auction_metrics(t, context_aware, m, sets, rng, counterfactual) for t in tables]
                gain = np.concatenate([p["gain_i"] for p in per])
                reward_i = np.concatenate([p["reward_i"] for p in per])
                u_off = np.concatenate([p["u_offset_i"] for p in per])
                u_roc = np.concatenate([p["u_rochet_i"] for p in per])
                mean = lambda key: float(np.mean([p[key] for p in per]))  # noqa: E731
                rows.append({
                    "n": n, "proposal": "context" if context_aware else "baseline", "M": m,
                    "log_pi_star": mean("log_pi_star"), "optimum_log_pi_star": opt_log_pi,
                    "usefulness": mean("usefulness"), "reference_usefulness": ref_use,
                    "reward": mean("reward"), "optimum_reward": opt_reward,
                    "reward_gain": float(gain.sum() / len(per)), "revenue": mean("revenue"),
                    "utility_offset": float(u_off.sum() / len(per)), "utility_rochet": float(u_roc.sum() / len(per)),
                    "corr_offset": _corr(u_off, reward_i), "corr_rochet": _corr(u_roc, reward_i),
                    "corr_gain_offset": _corr(u_off, gain), "corr_gain_rochet": _corr(u_roc, gain),
                    "mentioned": mean("mentioned"), "ess": mean("ess"),
                })
    return rows


def _plot(rows: list[dict[str, float]], out_dir: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in rows})
    fig, axes = plt.subplots(len(ns), len(PANELS), figsize=(3.2 * len(PANELS), 2.8 * len(ns)), squeeze=False)
    for a, n in enumerate(ns):
        for b, (key, title, bench) in enumerate(PANELS):
            ax = axes[a, b]
            for proposal, style in (("baseline", "--"), ("context", "-")):
                sel = [r for r in rows if r["n"] == n and r["proposal"] == proposal]
                ax.plot([r["M"] for r in sel], [r[key] for r in sel], style, label=proposal)
                if bench and sel:
                    ax.axhline(sel[0][bench], color="grey", lw=0.8,
                               label="exact optimum" if proposal == "context" else None)
            ax.set_title(f"{title} (n={n})", fontsize=8)
            ax.set_xlabel("M", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "mosaic_convergence.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


LM_COLUMNS = ("proposal", "M", "log_pi_star_plus_logZ", "reference_log_pi_star_plus_logZ", "reward",
              "reference_reward", "usefulness", "revenue", "utility_offset", "mentioned", "ess")


@dataclass(frozen=True, slots=True)
class _Pool:
    """One query's pool on a token-level LM: per proposal, K replies' log-probs under every role."""

    log_ref: dict[str, np.ndarray]  # proposal -> (K,)
    log_gen: dict[str, np.ndarray]  # proposal -> (K,)
    rewards: dict[str, np.ndarray]  # proposal -> (n, K)
    mentions: dict[str, np.ndarray]  # proposal -> (K, n) float
    tau: float


def _pool(inst: AdInstance, k: int, rng: np.random.Generator) -> _Pool:
    from market.runtime.platform import text_mentions

    out: dict[str, dict[str, np.ndarray]] = {"ref": {}, "gen": {}, "rewards": {}, "mentions": {}}
    for proposal, context_aware in (("baseline", False), ("context", True)):
        ys = inst.sample_candidates(k, rng, context_aware)
        out["ref"][proposal] = inst.log_ref(ys)
        out["gen"][proposal] = inst.log_gen(ys, context_aware) if context_aware else out["ref"][proposal]
        out["rewards"][proposal] = inst.rewards(ys)
        lm: Any = inst.lm
        out["mentions"][proposal] = np.array([text_mentions(lm.decode(y), inst.query.advertisers) for y in ys],
                                             dtype=float)
    return _Pool(out["ref"], out["gen"], out["rewards"], out["mentions"], inst.tau)


def _play(pool: _Pool, proposal: str, idx: np.ndarray) -> dict[str, float]:
    """MOSAIC on candidate sets idx (S, M) of the proposal's pool: means over the sets."""
    r = np.moveaxis(pool.rewards[proposal][:, idx], 0, 1)  # (S, n, M)
    lr, lg = pool.log_ref[proposal][idx], pool.log_gen[proposal][idx]
    out = mosaic_batch(r, lr, lg, pool.tau, "offset")
    q = out.q
    total = r.sum(1)  # (S, M)
    return {
        "log_pi_star_plus_logZ": float((q * (lr + total / pool.tau)).sum(-1).mean()),
        "reward": float((q * total).sum(-1).mean()),
        "usefulness": float((q * lr).sum(-1).mean()),
        "revenue": float(out.revenue.mean()),
        "utility_offset": float(out.utilities.sum(-1).mean()),
        "mentioned": float((q * pool.mentions[proposal][idx].mean(-1)).sum(-1).mean()),
        "ess": float(out.ess.mean()),
    }


def simulate_lm(lm: str, n_queries: int, k: int, m_values: tuple[int, ...], sets: int, seed: int = 0
                ) -> list[dict[str, Any]]:
    """Rows of LM_COLUMNS: means over queries of MOSAIC on a token-level LM (see the module docstring)."""
    from market.runtime.config import resolve
    from scenarios.ads import instances

    config, _ = resolve("ads", [f'market.lm="{lm}"', f"market.queries={n_queries}"])
    insts = instances(config, seed)
    root = np.random.SeedSequence(seed)
    pools = [_pool(inst, k, np.random.default_rng(ss)) for inst, ss in zip(insts, root.spawn(len(insts)))]
    refs = [_play(p, "context", np.arange(k)[None, :]) for p in pools]
    rows: list[dict[str, Any]] = []
    draws = np.random.default_rng(root.spawn(1)[0])
    for proposal in ("baseline", "context"):
        for m in m_values:
            per = [_play(p, proposal, draws.integers(0, k, size=(sets, m))) for p in pools]
            mean = lambda key, xs=per: float(np.mean([x[key] for x in xs]))  # noqa: E731
            rows.append({
                "proposal": proposal, "M": m, **{c: mean(c) for c in LM_COLUMNS[2:] if not c.startswith("ref")},
                "reference_log_pi_star_plus_logZ": mean("log_pi_star_plus_logZ", refs),
                "reference_reward": mean("reward", refs),
            })
    return rows


def run_lm(out_dir: pathlib.Path, lm: str, queries: int | None = None, quick: bool = False) -> dict:
    """``repro mosaic --lm SPEC [--queries N]``: write mosaic_lm.csv and mosaic_lm.png; return the figures."""
    n_queries = queries if queries is not None else (3 if quick else 10)
    k = 40 if quick else 100
    m_values = tuple(m for m in (1, 2, 4, 8, 12, 16, 20, 30, 50) if m <= k // 2)
    rows = simulate_lm(lm, n_queries, k, m_values, sets=50 if quick else 200)
    path = out_dir / "mosaic_lm.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LM_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    figure = _plot_lm(rows, out_dir)
    at = {(r["proposal"], r["M"]): r for r in rows}
    m_top = max(m_values)
    ref = rows[0]["reference_log_pi_star_plus_logZ"]
    return {"lm": lm, "queries": n_queries, "pool": k, "csv": str(path), "figures": [str(figure)], "claims": {
        "gap_to_reference": {p: {m: ref - at[(p, m)]["log_pi_star_plus_logZ"] for m in m_values}
                             for p in ("baseline", "context")},
        "context_beats_baseline_at_20": at[("context", 20)]["log_pi_star_plus_logZ"]
        > at[("baseline", 20)]["log_pi_star_plus_logZ"] if 20 in m_values else None,
        "revenue_per_query": {p: at[(p, m_top)]["revenue"] for p in ("baseline", "context")},
        "advertiser_utility_per_query": {p: at[(p, m_top)]["utility_offset"] for p in ("baseline", "context")},
        "reward_per_query": {p: at[(p, m_top)]["reward"] for p in ("baseline", "context")},
    }}


def _plot_lm(rows: list[dict[str, Any]], out_dir: pathlib.Path) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("log_pi_star_plus_logZ", "E[log π*] + log Z", "reference_log_pi_star_plus_logZ"),
              ("reward", "total reward", "reference_reward"), ("revenue", "revenue", None),
              ("utility_offset", "advertiser utility", None), ("mentioned", "brands mentioned", None),
              ("ess", "effective sample size", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8))
    for ax, (key, title, bench) in zip(axes, panels):
        for proposal, style in (("baseline", "--"), ("context", "-")):
            sel = [r for r in rows if r["proposal"] == proposal]
            ax.plot([r["M"] for r in sel], [r[key] for r in sel], style, label=proposal)
        if bench:
            ax.axhline(rows[0][bench], color="grey", lw=0.8, label="large-M reference")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("M", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "mosaic_lm.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run(out_dir: pathlib.Path, quick: bool = False, lm: str | None = None, queries: int | None = None,
        **overrides: object) -> dict:
    """Run the reproduction; write mosaic.csv and mosaic_convergence.png to out_dir; return a summary.

    quick uses 8 queries, M in {1, 2, 3, 4, 5, 10, 15, 20, 30} and 100 candidate sets per point;
    ``overrides`` are passed to ``simulate`` (e.g. n_values, m_values, n_queries, sets, counterfactual).
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if lm is not None:
        return run_lm(out_dir, lm, queries, quick)
    if queries is not None:
        overrides["n_queries"] = queries
    params: dict[str, object] = (
        dict(n_queries=8, m_values=(1, 2, 3, 4, 5, 10, 15, 20, 30), sets=100) if quick else {}
    )
    params.update(overrides)
    rows = simulate(**params)  # type: ignore[arg-type]
    csv_path = out_dir / "mosaic.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    figures = _plot(rows, out_dir)

    def at(n: int, proposal: str, m: int, key: str) -> float:
        hit = [r[key] for r in rows if r["n"] == n and r["proposal"] == proposal and r["M"] == m]
        return hit[0] if hit else float("nan")

    summary: dict[str, object] = {"csv": str(csv_path), "figures": [str(f) for f in figures], "claims": {}}
    m_max = max(r["M"] for r in rows)
    for n in sorted({r["n"] for r in rows}):
        summary["claims"][n] = {  # type: ignore[index]
            "context4_beats_baseline20": at(n, "context", 4, "log_pi_star") > at(n, "baseline", 20, "log_pi_star"),
            "gap_to_optimum_context_Mmax": at(n, "context", m_max, "optimum_log_pi_star")
            - at(n, "context", m_max, "log_pi_star"),
            "gap_to_optimum_baseline_Mmax": at(n, "baseline", m_max, "optimum_log_pi_star")
            - at(n, "baseline", m_max, "log_pi_star"),
            "revenue_context_Mmax": at(n, "context", m_max, "revenue"),
            "corr_offset_context_Mmax": at(n, "context", m_max, "corr_offset"),
            "corr_rochet_context_Mmax": at(n, "context", m_max, "corr_rochet"),
        }
    return summary
