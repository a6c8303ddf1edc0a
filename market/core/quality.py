"""Provider answer quality: the reward a user gets when a provider answers a query with context x.

LinearQuality is the stochastic linear model of the ROSA paper (E[r | x] = theta_i . x, Gaussian or
exponential noise); ReplayQuality replays real per-question correctness of two LLMs on MMLU (RouteLLM).
The parsers take the shipped CSVs' text; market.data reads the files.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from market.core.mechanisms.base import MechanismError

NOISES = ("gaussian", "exponential", "exponential-mean")


@dataclass(frozen=True, slots=True)
class LinearQuality:
    """r_i(x) = theta_i . x + noise.  theta: (n, d).

    noise:
      "gaussian": scale * N(0, 1).
      "exponential": scale * (E - 1) with E ~ Exp(1): centred, mean theta_i . x, sd scale, right-skewed.
      "exponential-mean": r ~ Exp(mean = theta_i . x) (scale unused); needs theta_i . x > 0.
    """

    theta: np.ndarray
    noise: str = "gaussian"
    scale: float = 0.1

    def __post_init__(self) -> None:
        theta = np.asarray(self.theta, dtype=float)
        if theta.ndim != 2:
            raise MechanismError(f"theta: shape {theta.shape}, expected (n, d)")
        if self.noise not in NOISES:
            raise MechanismError(f"noise = {self.noise!r}; expected one of {NOISES}")
        if not self.scale >= 0:
            raise MechanismError(f"scale = {self.scale}; expected >= 0")
        object.__setattr__(self, "theta", theta)

    @classmethod
    def draw(
        cls, rng: np.random.Generator, n: int, d: int, value_scale: float, noise: str = "gaussian", scale: float = 0.1
    ) -> LinearQuality:
        """The linear market's qualities (ROSA spec 6): rows of theta (n, d) drawn U[0, 1]^d and scaled to L1 norm
        value_scale, so theta_i . x lies in [0, value_scale] for contexts x in [0, 1]^d."""
        theta = rng.uniform(0.0, 1.0, (n, d))
        theta *= value_scale / theta.sum(axis=1, keepdims=True)
        return cls(theta, noise, scale)

    @property
    def n(self) -> int:
        return self.theta.shape[0]

    @property
    def d(self) -> int:
        return self.theta.shape[1]

    def mean(self, x: np.ndarray) -> np.ndarray:
        """(n,) expected reward of each provider for context x (d,)."""
        return self.theta @ x

    def _noisy(self, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.noise == "gaussian":
            return mean + self.scale * rng.standard_normal(np.shape(mean))
        if self.noise == "exponential":
            return mean + self.scale * (rng.standard_exponential(np.shape(mean)) - 1.0)
        if np.any(mean <= 0):
            raise MechanismError(f"exponential-mean noise needs theta . x > 0; got min {np.min(mean)}")
        return mean * rng.standard_exponential(np.shape(mean))

    def sample(self, arm: int, x: np.ndarray, rng: np.random.Generator) -> float:
        """One reward of provider arm for context x."""
        return float(self._noisy(np.asarray(self.theta[arm] @ x), rng))

    def table(self, contexts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(T, n) reward table: what every provider would earn on each context of contexts (T, d)."""
        return self._noisy(contexts @ self.theta.T, rng)


@dataclass(frozen=True, slots=True)
class MMLUCorrectness:
    """Per-question correctness of the two replayed models, grouped by MMLU subject.

    subjects: (k,) names; correct: k arrays (questions of the subject, 2) of bool, columns in
    ReplayQuality.MODELS order, rows in the source's question order.
    """

    subjects: tuple[str, ...]
    correct: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if len(self.subjects) != len(self.correct) or not self.subjects:
            raise MechanismError(
                f"subjects: {len(self.subjects)}, correct: {len(self.correct)} tables; expected one table per subject"
            )
        for subject, table in zip(self.subjects, self.correct):
            if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] == 0:
                raise MechanismError(f"correct[{subject!r}]: shape {table.shape}, expected (questions >= 1, 2)")


def parse_mmlu_correctness(text: str) -> MMLUCorrectness:
    """The RouteLLM MMLU table (routellm_mmlu.csv): one row per subject, each model's answers as a 0/1 string."""
    subjects, outcomes = [], []
    for row in csv.DictReader(io.StringIO(text)):
        subjects.append(row["subject"])
        mixtral = [c == "1" for c in row["mixtral_correct"]]
        gpt4 = [c == "1" for c in row["gpt4_correct"]]
        outcomes.append(np.array([mixtral, gpt4]).T)
    return MMLUCorrectness(tuple(subjects), tuple(outcomes))


@dataclass(frozen=True, slots=True)
class ReplayQuality:
    """Replays RouteLLM's MMLU correctness: providers are (Mixtral-8x7B-Instruct, GPT-4-1106-preview).

    A query is one MMLU question; its context is its subject: a one-hot vector over the 57 subjects
    (dim=None), or that one-hot times a fixed Gaussian projection to dim dimensions, rows normalised,
    drawn from projection_seed (a small embedding for cheaper learners). The reward is 1 if the model
    answered correctly, else 0; mean(x) is each model's accuracy on the subject.
    """

    table: MMLUCorrectness
    dim: int | None = None
    projection_seed: int = 0
    subjects: tuple[str, ...] = field(init=False)
    embedding: np.ndarray = field(init=False, repr=False)
    correct: tuple[np.ndarray, ...] = field(init=False, repr=False)
    accuracy: np.ndarray = field(init=False, repr=False)

    MODELS = ("mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview")

    def __post_init__(self) -> None:
        subjects, correct = self.table.subjects, self.table.correct
        k = len(subjects)
        if self.dim is None:
            embedding = np.eye(k)
        else:
            if self.dim < 1:
                raise MechanismError(f"dim = {self.dim}; expected a positive integer or None")
            embedding = np.random.default_rng(self.projection_seed).standard_normal((k, self.dim))
            embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
        object.__setattr__(self, "subjects", subjects)
        object.__setattr__(self, "embedding", embedding)
        object.__setattr__(self, "correct", correct)
        object.__setattr__(self, "accuracy", np.array([c.mean(axis=0) for c in correct]))

    @property
    def n(self) -> int:
        return len(self.MODELS)

    @property
    def d(self) -> int:
        return self.embedding.shape[1]

    def subject_of(self, x: np.ndarray) -> int:
        """Index of the subject whose context is closest to x."""
        return int(np.argmin(np.sum((self.embedding - x) ** 2, axis=1)))

    def mean(self, x: np.ndarray) -> np.ndarray:
        """(n,) each model's accuracy on the subject of context x."""
        return self.accuracy[self.subject_of(x)]

    def sample(self, arm: int, x: np.ndarray, rng: np.random.Generator) -> float:
        """Correctness (0/1) of model arm on a random question of x's subject."""
        answers = self.correct[self.subject_of(x)]
        return float(answers[rng.integers(answers.shape[0]), arm])

    def queries(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """size random questions: contexts (size, d) and the reward table (size, n) of true correctness."""
        counts = np.array([c.shape[0] for c in self.correct])
        subject = rng.choice(len(counts), size=size, p=counts / counts.sum())
        rows = np.array([self.correct[s][rng.integers(counts[s])] for s in subject], dtype=float)
        return self.embedding[subject], rows


def parse_llm_prices(text: str) -> list[dict[str, str | float]]:
    """The compacted litellm price table (llm_prices.csv): model, provider, input/output US$ per token."""
    return [
        {
            "model": row["model"],
            "provider": row["provider"],
            "input_cost_per_token": float(row["input_cost_per_token"]),
            "output_cost_per_token": float(row["output_cost_per_token"]),
        }
        for row in csv.DictReader(io.StringIO(text))
    ]
