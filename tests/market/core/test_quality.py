"""Answer-quality models: linear means and noise laws, and the RouteLLM MMLU replay."""

import numpy as np
import pytest
from scipy import stats

from market.core.mechanisms.base import MechanismError
from market.core.quality import (
    LinearQuality,
    MMLUCorrectness,
    ReplayQuality,
    parse_llm_prices,
    parse_mmlu_correctness,
)
from market.core.seeding import derive_rng
from market.data import llm_prices, mmlu_correctness


@pytest.mark.parametrize("noise", ["gaussian", "exponential", "exponential-mean"])
def test_linear_quality_rewards_have_mean_theta_dot_x(noise):
    rng = np.random.default_rng(0)
    theta = np.array([[0.2, 0.5], [0.6, 0.1]])
    quality = LinearQuality(theta, noise=noise, scale=0.3)
    x = np.array([0.7, 0.4])
    table = quality.table(np.tile(x, (50_000, 1)), rng)
    # z-score < 4 on 50k draws
    se = table.std(axis=0, ddof=1) / np.sqrt(table.shape[0])
    assert np.all(np.abs(table.mean(axis=0) - quality.mean(x)) < 4 * se)
    draws = np.array([quality.sample(1, x, rng) for _ in range(2000)])
    assert abs(draws.mean() - quality.mean(x)[1]) < 4 * draws.std() / np.sqrt(draws.size)


@pytest.mark.parametrize("value_scale", [1.0, 2.0, 3.5])
def test_drawn_qualities_have_rows_of_l1_norm_value_scale_and_values_in_range(value_scale):
    quality = LinearQuality.draw(derive_rng(3, "instance"), 6, 5, value_scale, "exponential", 0.2)
    assert quality.theta.shape == (6, 5) and quality.noise == "exponential" and quality.scale == 0.2
    assert np.all(quality.theta >= 0)
    np.testing.assert_allclose(quality.theta.sum(axis=1), value_scale, rtol=1e-12)
    x = derive_rng(3, "contexts").uniform(0.0, 1.0, (1000, 5))
    assert np.all((x @ quality.theta.T >= 0) & (x @ quality.theta.T <= value_scale + 1e-12))
    # the rows' directions are uniform draws: the first row is a U[0, 1]^d draw up to its scale
    raw = derive_rng(3, "instance").uniform(0.0, 1.0, (6, 5))
    np.testing.assert_allclose(quality.theta, value_scale * raw / raw.sum(axis=1, keepdims=True), rtol=1e-14)


def test_noise_laws_are_the_documented_ones():
    rng = np.random.default_rng(1)
    x = np.array([1.0])
    centred = LinearQuality(np.array([[0.5]]), "exponential", 0.2).table(np.tile(x, (20_000, 1)), rng)[:, 0]
    assert stats.kstest((centred - 0.5) / 0.2 + 1.0, "expon").pvalue > 1e-3
    gauss = LinearQuality(np.array([[0.5]]), "gaussian", 0.2).table(np.tile(x, (20_000, 1)), rng)[:, 0]
    assert stats.kstest((gauss - 0.5) / 0.2, "norm").pvalue > 1e-3
    with pytest.raises(MechanismError, match="noise"):
        LinearQuality(np.ones((2, 2)), noise="cauchy")
    with pytest.raises(MechanismError, match="theta . x > 0"):
        LinearQuality(np.array([[-1.0]]), "exponential-mean").sample(0, x, rng)


def test_replay_matches_routellm_accuracies():
    quality = ReplayQuality(mmlu_correctness())
    assert len(quality.subjects) == 57 and quality.d == 57 and quality.n == 2
    total = sum(c.shape[0] for c in quality.correct)
    overall = sum(c.sum(axis=0) for c in quality.correct) / total
    # 14,042 questions minus 5 contaminated; provenance: Mixtral 0.681, GPT-4 0.806
    assert total == 14_037
    np.testing.assert_allclose(overall, [0.681, 0.806], atol=1e-3)
    s = quality.subjects.index("abstract_algebra")
    np.testing.assert_allclose(quality.mean(quality.embedding[s]), quality.correct[s].mean(axis=0))


def test_replay_queries_are_real_rows_and_embedding_recovers_subjects():
    quality = ReplayQuality(mmlu_correctness(), dim=8, projection_seed=3)
    rng = np.random.default_rng(2)
    contexts, rewards = quality.queries(rng, 500)
    assert contexts.shape == (500, 8) and rewards.shape == (500, 2)
    assert set(np.unique(rewards)) <= {0.0, 1.0}
    assert all(np.allclose(quality.embedding[quality.subject_of(x)], x) for x in contexts[:50])
    assert quality.sample(1, contexts[0], rng) in (0.0, 1.0)


def test_price_table_loads():
    prices = llm_prices()
    assert len(prices) == 158
    gpt4 = next(p for p in prices if p["model"] == "gpt-4-1106-preview")
    assert gpt4["input_cost_per_token"] == pytest.approx(1e-5)


def test_replay_is_built_from_the_table_given():
    table = parse_mmlu_correctness("subject,questions,mixtral_correct,gpt4_correct\nalgebra,3,100,111\nlaw,2,01,00\n")
    assert table.subjects == ("algebra", "law")
    quality = ReplayQuality(table)
    assert quality.d == 2
    np.testing.assert_allclose(quality.mean(np.array([1.0, 0.0])), [1 / 3, 1.0])
    np.testing.assert_allclose(quality.mean(np.array([0.0, 1.0])), [0.5, 0.0])
    with pytest.raises(MechanismError, match="one table per subject"):
        MMLUCorrectness(("algebra",), ())


def test_price_rows_parse_to_floats():
    prices = parse_llm_prices("model,provider,input_cost_per_token,output_cost_per_token\nm,p,1e-06,2.5e-06\n")
    assert prices == [{"model": "m", "provider": "p", "input_cost_per_token": 1e-6, "output_cost_per_token": 2.5e-6}]
