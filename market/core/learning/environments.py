"""Floor-1 bandit environments for LLM selection: budgeted quality/cost arms and rising-quality arms.

Replays of public data (FrugalGPT SciQ accuracy and $/query, RouteLLM GSM8K per-question correctness,
Pythia checkpoint curves), given as CSV rows read by market.data, and synthetic increasing curves
(TI-UCB spec B.5). All randomness comes from the Generator passed to each draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from market.core.learning import LearningError
from market.core.learning.reward_models import check_reward_model, expected_reward

# jamba-1.5-large matches gemini-1.5-flash's accuracy at 28x the price; dropping it leaves 9 LLMs
SCIQ_DEFAULT_EXCLUDE = ("jamba-1.5-large",)
CHARS_PER_TOKEN = 4.0

# one CSV row: column name -> cell text
Row = Mapping[str, str]


# ---------------------------------------------------------------- budgeted subset selection


class BernoulliCostArms:
    """Independent arms: quality X ~ Bernoulli(mu_i); cost Y = c_i (1 + s(2U - 1)), U ~ U[0,1].

    mean_quality, mean_cost: (K,), costs already normalised to [0, 1]; cost_spread s in [0, 1]
    keeps E Y = c_i exactly.
    """

    def __init__(
        self, mean_quality: np.ndarray, mean_cost: np.ndarray, cost_spread: float = 0.0,
        names: tuple[str, ...] = (),
    ) -> None:
        self.mean_quality = np.asarray(mean_quality, dtype=float)
        self.mean_cost = np.asarray(mean_cost, dtype=float)
        if self.mean_quality.shape != self.mean_cost.shape or self.mean_quality.ndim != 1:
            raise LearningError(
                f"mean_quality shape {self.mean_quality.shape}, mean_cost shape "
                f"{self.mean_cost.shape}: expected equal 1-D shapes"
            )
        if np.any((self.mean_quality < 0) | (self.mean_quality > 1)):
            raise LearningError(f"mean_quality={self.mean_quality}: expected values in [0, 1]")
        if not 0.0 <= cost_spread <= 1.0:
            raise LearningError(f"cost_spread={cost_spread}: expected a value in [0, 1]")
        if np.any(self.mean_cost * (1 + cost_spread) > 1 + 1e-12) or np.any(self.mean_cost < 0):
            raise LearningError(
                f"mean_cost={self.mean_cost}: expected c (1 + cost_spread) in [0, 1]"
            )
        self.cost_spread = float(cost_spread)
        self.names = tuple(names)
        self.n_arms = self.mean_quality.size

    @classmethod
    def from_frugalgpt_sciq(
        cls, rows: Sequence[Row], exclude: tuple[str, ...] = SCIQ_DEFAULT_EXCLUDE, cost_spread: float = 0.0
    ) -> "BernoulliCostArms":
        """SciQ test accuracy and mean $/query of the FrugalGPT models (rows of frugalgpt_sciq.csv);
        cost / (max cost (1 + s))."""
        rows = [r for r in rows if r["model"] not in exclude]
        acc = np.array([float(r["test_acc"]) for r in rows])
        usd = np.array([float(r["test_cost_usd"]) for r in rows])
        return cls(acc, usd / (usd.max() * (1.0 + cost_spread)), cost_spread,
                   tuple(r["model"] for r in rows))

    def draw(self, arms: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Outcomes of the played arms (m,): qualities (m,) in {0,1}, costs (m,) in [0, 1]."""
        arms = np.asarray(arms, dtype=np.int64)
        x = (rng.random(arms.size) < self.mean_quality[arms]).astype(float)
        u = rng.random(arms.size)
        y = self.mean_cost[arms] * (1.0 + self.cost_spread * (2.0 * u - 1.0))
        return x, y

    def subset_rewards(self, masks: np.ndarray, reward_model: str) -> np.ndarray:
        """Expected reward of each subset (m, K) -> (m,)."""
        return expected_reward(masks, self.mean_quality, reward_model)


class JointCorrectnessReplay:
    """RouteLLM GSM8K replay: each round one question drawn uniformly; the played LLMs' correctness
    on that same question (errors correlated as in the data) and its token cost.

    rows: routellm_gsm8k.csv, one per question; prices: routellm_gsm8k_prices.csv, one per arm.

    Arms: 0 = Mixtral-8x7B-Instruct, 1 = GPT-4-1106-preview. Cost of a call = (prompt chars +
    response chars) / 4 tokens at the listed per-token prices, normalised by the largest call cost.
    """

    arm_names = ("mixtral", "gpt4")

    def __init__(self, rows: Sequence[Row], prices: Sequence[Row], drop_contaminated: bool = True) -> None:
        if drop_contaminated:
            rows = [r for r in rows if r["contaminated"] == "0"]
        if not rows:
            raise LearningError("rows: no questions left; expected at least one GSM8K question")
        price_of = {r["arm"]: r for r in prices}
        missing = [a for a in self.arm_names if a not in price_of]
        if missing:
            raise LearningError(f"prices: no row for arms {missing}; expected one row per arm of {self.arm_names}")
        self.correct = np.array(
            [[float(r[f"{a}_correct"]) for a in self.arm_names] for r in rows]
        )
        prompt = np.array([float(r["prompt_chars"]) for r in rows]) / CHARS_PER_TOKEN
        usd = np.column_stack([
            prompt * float(price_of[a]["input_cost_per_token"])
            + np.array([float(r[f"{a}_response_chars"]) for r in rows]) / CHARS_PER_TOKEN
            * float(price_of[a]["output_cost_per_token"])
            for a in self.arm_names
        ])
        self.cost = usd / usd.max()
        self.n_arms = 2
        self.n_questions = len(rows)
        self.mean_quality = self.correct.mean(axis=0)
        self.mean_cost = self.cost.mean(axis=0)
        self.names = self.arm_names

    def draw(self, arms: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        arms = np.asarray(arms, dtype=np.int64)
        q = rng.integers(self.n_questions)
        return self.correct[q, arms], self.cost[q, arms]

    def subset_rewards(self, masks: np.ndarray, reward_model: str) -> np.ndarray:
        """Empirical expected reward of each subset over the questions: (m, K) -> (m,)."""
        model = check_reward_model(reward_model)
        masks = np.atleast_2d(np.asarray(masks, dtype=bool))
        x = self.correct[:, None, :]
        m = masks[None, :, :]
        if model == "suc":
            per_q = (x * m).sum(axis=2)
        elif model == "awc":
            per_q = np.where(m, x, 0.0).max(axis=2)
        else:
            per_q = np.where(m.any(axis=2), np.where(m, x, 1.0).prod(axis=2), 0.0)
        return per_q.mean(axis=0)


# ---------------------------------------------------------------- rising (rested) arms


class IncreasingArms:
    """Rested arms whose mean quality mu_i(n) depends on the arm's own pull number n = 1, 2, ...

    Observation y = mu_i(n) + N(0, noise^2), or Bernoulli(mu_i(n)) when noise == 'bernoulli'.
    Subclasses define curve(arm, n) and limits (K,) = mu_i at convergence.
    """

    limits: np.ndarray

    def __init__(self, n_arms: int, noise: float | str = 0.05) -> None:
        if noise != "bernoulli" and not (isinstance(noise, (int, float)) and noise >= 0):
            raise LearningError(f"noise={noise!r}: expected a std >= 0 or 'bernoulli'")
        self.n_arms = int(n_arms)
        self.noise = noise
        self.pulls = np.zeros(self.n_arms, dtype=np.int64)

    def curve(self, arm: int, n: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement curve(arm, n)")

    def pull(self, arm: int, rng: np.random.Generator) -> tuple[float, float]:
        """Pull arm once. Returns (observed reward, expected reward mu_arm(n))."""
        if not 0 <= arm < self.n_arms:
            raise LearningError(f"arm={arm}: expected an index in [0, {self.n_arms})")
        self.pulls[arm] += 1
        mean = float(self.curve(arm, np.array([self.pulls[arm]]))[0])
        if self.noise == "bernoulli":
            return float(rng.random() < mean), mean
        return mean + float(self.noise) * float(rng.standard_normal()), mean

    @property
    def best_limit(self) -> float:
        return float(np.max(self.limits))

    def get_state(self) -> dict[str, Any]:
        return {"pulls": self.pulls.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.pulls = np.asarray(state["pulls"], dtype=np.int64).copy()


class PiecewiseLinearArms(IncreasingArms):
    """mu_i(n) = plateau_i - slope_i max(converge_i - n, 0): linear rise, flat from n = converge_i.

    plateau, slope, converge: (K,).
    """

    def __init__(
        self, plateau: np.ndarray, slope: np.ndarray, converge: np.ndarray, noise: float | str = 0.05
    ) -> None:
        self.plateau = np.asarray(plateau, dtype=float)
        self.slope = np.asarray(slope, dtype=float)
        self.converge = np.asarray(converge, dtype=float)
        if not (self.plateau.shape == self.slope.shape == self.converge.shape):
            raise LearningError("plateau, slope, converge: expected equal shapes")
        if np.any(self.slope < 0):
            raise LearningError(f"slope={self.slope}: expected non-negative slopes")
        super().__init__(self.plateau.size, noise)
        self.limits = self.plateau

    @classmethod
    def trap(cls, noise: float | str = 0.05) -> "PiecewiseLinearArms":
        """Spec B.5 recipe: arm A 0.6 -> 0.7 early, late bloomer B 0.2 -> 0.85, three others."""
        plateau = np.array([0.70, 0.85, 0.55, 0.60, 0.65])
        start = np.array([0.60, 0.20, 0.30, 0.45, 0.35])
        converge = np.array([200.0, 600.0, 300.0, 150.0, 1500.0])
        return cls(plateau, (plateau - start) / (converge - 1.0), converge, noise)

    def curve(self, arm: int, n: np.ndarray) -> np.ndarray:
        return self.plateau[arm] - self.slope[arm] * np.maximum(self.converge[arm] - n, 0.0)


class SaturatingArms(IncreasingArms):
    """mu_i(n) = plateau_i - (plateau_i - start_i) exp(-(n - 1) / kappa_i). Inputs (K,)."""

    def __init__(
        self, start: np.ndarray, plateau: np.ndarray, kappa: np.ndarray, noise: float | str = 0.05
    ) -> None:
        self.start = np.asarray(start, dtype=float)
        self.plateau = np.asarray(plateau, dtype=float)
        self.kappa = np.asarray(kappa, dtype=float)
        if np.any(self.kappa <= 0):
            raise LearningError(f"kappa={self.kappa}: expected positive time constants")
        super().__init__(self.plateau.size, noise)
        self.limits = self.plateau

    @classmethod
    def default(cls, noise: float | str = 0.05) -> "SaturatingArms":
        return cls(
            np.array([0.60, 0.20, 0.30, 0.45, 0.35]), np.array([0.70, 0.85, 0.55, 0.60, 0.65]),
            np.array([60.0, 250.0, 100.0, 50.0, 500.0]), noise,
        )

    def curve(self, arm: int, n: np.ndarray) -> np.ndarray:
        gap = self.plateau[arm] - self.start[arm]
        return self.plateau[arm] - gap * np.exp(-(np.asarray(n, dtype=float) - 1.0) / self.kappa[arm])


PYTHIA_DEFAULT_MODELS = ("pythia-160m", "pythia-410m", "pythia-1.4b", "pythia-2.8b", "pythia-12b")


@dataclass(frozen=True, slots=True)
class LearningCurve:
    """One model's checkpoint scores: steps (m,) increasing, values (m,)."""

    model: str
    steps: np.ndarray
    values: np.ndarray


def pythia_curves(
    rows: Sequence[Row], models: tuple[str, ...] = PYTHIA_DEFAULT_MODELS, task: str = "sciq", metric: str = "acc"
) -> list[LearningCurve]:
    """Zero-shot score against training step for each model, from the rows of pythia_curves.csv."""
    curves = []
    for model in models:
        pts = sorted(
            (int(r["step"]), float(r["value"])) for r in rows
            if r["model"] == model and r["task"] == task and r["metric"] == metric
        )
        if not pts:
            raise LearningError(f"model={model!r}, task={task!r}, metric={metric!r}: no rows shipped")
        steps, values = zip(*pts)
        curves.append(LearningCurve(model, np.array(steps, dtype=float), np.array(values)))
    return curves


class PythiaCurveArms(IncreasingArms):
    """Replay: pull n of arm i scores the model at training step n * steps_per_pull[i] (linear
    interpolation between checkpoints, final score afterwards); one arm per curve (see pythia_curves).

    steps_per_pull: scalar or (K,); smaller values make an arm a slower, later bloomer.
    """

    def __init__(
        self, curves: Sequence[LearningCurve], steps_per_pull: float | np.ndarray = 100.0,
        noise: float | str = 0.05,
    ) -> None:
        if not curves:
            raise LearningError("curves: none given; expected one learning curve per arm")
        self.curves = list(curves)
        super().__init__(len(self.curves), noise)
        self.steps_per_pull = np.broadcast_to(
            np.asarray(steps_per_pull, dtype=float), (self.n_arms,)
        ).copy()
        if np.any(self.steps_per_pull <= 0):
            raise LearningError(f"steps_per_pull={steps_per_pull}: expected positive values")
        self.names = tuple(c.model for c in self.curves)
        self.limits = np.array([c.values[-1] for c in self.curves])

    def curve(self, arm: int, n: np.ndarray) -> np.ndarray:
        c = self.curves[arm]
        return np.interp(np.asarray(n, dtype=float) * self.steps_per_pull[arm], c.steps, c.values)
