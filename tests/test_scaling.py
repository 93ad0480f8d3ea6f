"""The MAP scale is checked against the objective written out densely with scipy.stats,
against the study's SLSQP fit, and by recovering known scales from simulated observers."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.optimize import check_grad

from iqa_eval.protocols import scaling
from iqa_eval.protocols.scaling import count_matrix, thurstone_map

BENCH = Path(__file__).resolve().parent.parent / "bench" / "thurstone_slsqp.py"


def load_slsqp_baseline() -> object:
    spec = importlib.util.spec_from_file_location("thurstone_slsqp", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.thurstone_slsqp


def log_posterior(counts: np.ndarray, s: np.ndarray) -> float:
    """L(s) = sum_ij C_ij log Phi(s_i - s_j) - sum_i s_i^2 / 2, dense and diagonal-free."""
    difference = s[:, None] - s[None, :]
    off_diagonal = counts * (1 - np.eye(len(s)))
    return float(np.sum(off_diagonal * stats.norm.logcdf(difference)) - 0.5 * s @ s)


def observer_counts(latent: np.ndarray, per_item: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Each item is first in `per_item` pairs with random partners; the observer picks the
    first when s_first - s_partner + N(0, noise^2) > 0."""
    n = latent.size
    first = np.repeat(np.arange(n), per_item)
    partner = (first + rng.integers(1, n, size=first.size)) % n
    wins = latent[first] - latent[partner] + noise * rng.normal(size=first.size) > 0
    return count_matrix(n, zip(first.tolist(), partner.tolist(), wins.astype(int).tolist(), strict=True))


small_counts = st.integers(2, 9).flatmap(lambda n: hnp.arrays(np.int64, (n, n), elements=st.integers(0, 4)))


# ---------------------------------------------------------------- count_matrix


def test_count_matrix_semantics_including_ties() -> None:
    counts = count_matrix(3, [(0, 1, 1), (0, 1, 0), (1, 2, 2), (2, 0, 1), (2, 0, 1)])
    expected = np.array([[0, 1, 0], [1, 0, 1], [2, 1, 0]])
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(count_matrix(2, []), np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ((0, 3, 1), "index outside 0..2"),
        ((-1, 1, 1), "index outside 0..2"),
        ((1, 1, 1), "compared with itself"),
        ((0, 1, 3), "code must be 0, 1 or 2"),
        ((0, 1, 0.5), "integer triples"),
    ],
)
def test_count_matrix_rejects_bad_outcomes(outcome: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        count_matrix(3, [(0, 1, 1), outcome])


def test_count_matrix_rejects_negative_size() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        count_matrix(-1, [])


# ------------------------------------------------------------------- objective


@pytest.mark.parametrize("spread", [1.0, 12.0])
def test_objective_and_gradient_match_the_dense_formula_and_finite_differences(spread: float) -> None:
    """A spread of 12 puts upsets 20+ deviations into the tail, where naive log(Phi) fails."""
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.7, size=(30, 30)) * (rng.random((30, 30)) < 0.3)
    rows, cols = np.nonzero(counts * (1 - np.eye(30, dtype=int)))
    objective = scaling._negative_log_posterior(rows, cols, counts[rows, cols].astype(float))
    for _ in range(5):
        s = spread * rng.normal(size=30)
        value, gradient = objective(s)
        assert value == pytest.approx(-log_posterior(counts, s), rel=1e-12)
        assert np.all(np.isfinite(gradient))
        error = check_grad(lambda x: objective(x)[0], lambda x: objective(x)[1], s, epsilon=1e-6)
        assert error < 1e-4 * max(1.0, float(np.linalg.norm(gradient)))


# ------------------------------------------------------------------ optimality


def test_solution_is_centred_and_beats_perturbations() -> None:
    rng = np.random.default_rng(2)
    counts = observer_counts(rng.normal(size=60), 5, 1.0, rng)
    scale = thurstone_map(counts)
    assert scale.converged
    assert abs(scale.latent.sum()) < 1e-6
    best = log_posterior(counts, scale.latent)
    for step in (1e-2, 1e-3):
        for _ in range(100):
            assert log_posterior(counts, scale.latent + step * rng.normal(size=60)) < best


@settings(derandomize=True, max_examples=30, deadline=None)
@given(small_counts)
def test_map_properties_on_arbitrary_counts(counts: np.ndarray) -> None:
    """Certified optimum, centred; reversing every judgement mirrors the scale; relabelling
    items relabels the scale."""
    scale = thurstone_map(counts)
    assert scale.converged
    assert abs(scale.latent.sum()) < 1e-6
    np.testing.assert_allclose(thurstone_map(counts.T).latent, -scale.latent, atol=2e-4)
    order = np.random.default_rng(counts.size).permutation(len(counts))
    permuted = thurstone_map(counts[np.ix_(order, order)]).latent
    np.testing.assert_allclose(permuted, scale.latent[order], atol=2e-4)
    assert scale.scores.min() >= 0 and scale.scores.max() <= 100


def test_undefeated_item_stays_finite_and_on_top() -> None:
    """Without the prior, an item that wins every comparison would run off to infinity."""
    counts = count_matrix(4, [(0, k, 1) for k in (1, 2, 3)] * 5 + [(1, 2, 1), (2, 3, 1)])
    scale = thurstone_map(counts)
    assert np.all(np.isfinite(scale.latent))
    assert scale.scores[0] == 100.0
    assert list(np.argsort(-scale.latent)) == [0, 1, 2, 3]


# ------------------------------------------------------------------- recovery


def mean_recovery(per_item: int, noise: float, seeds: int = 5) -> float:
    values = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        latent = rng.normal(size=150)
        scale = thurstone_map(observer_counts(latent, per_item, noise, rng))
        values.append(stats.spearmanr(scale.scores, latent).statistic)
    return float(np.mean(values))


NOISES = (0.25, 0.5, 1.0, 2.0)


def test_recovery_of_a_known_scale_degrades_with_noise_and_improves_with_density() -> None:
    sparse = [mean_recovery(5, noise) for noise in NOISES]
    dense = [mean_recovery(20, noise) for noise in NOISES]
    assert sparse[0] >= 0.9
    assert dense[0] >= 0.98
    assert sparse == sorted(sparse, reverse=True) and len(set(sparse)) == len(NOISES)
    assert dense == sorted(dense, reverse=True) and len(set(dense)) == len(NOISES)
    assert all(d > s for d, s in zip(dense, sparse, strict=True))


# ------------------------------------------------------------ degenerate designs


def test_uncompared_items_and_disconnected_components_are_reported() -> None:
    counts = count_matrix(7, [(0, 1, 1), (1, 2, 1), (2, 0, 0), (3, 4, 1), (4, 3, 2), (4, 6, 1)])
    scale = thurstone_map(counts)
    assert scale.uncompared == (5,)
    assert scale.latent[5] == 0.0
    assert scale.components == 2
    assert scale.converged and np.all(np.isfinite(scale.scores))


def test_without_evidence_every_score_is_fifty() -> None:
    empty = thurstone_map(np.zeros((4, 4)))
    assert empty.uncompared == (0, 1, 2, 3) and empty.components == 0
    np.testing.assert_array_equal(empty.scores, np.full(4, 50.0))
    all_ties = thurstone_map(count_matrix(3, [(0, 1, 2), (1, 2, 2), (2, 0, 2)]))
    assert all_ties.uncompared == () and all_ties.components == 1
    np.testing.assert_array_equal(all_ties.scores, np.full(3, 50.0))
    assert thurstone_map(np.zeros((0, 0))).scores.shape == (0,)


def test_spread_below_solver_accuracy_is_no_spread() -> None:
    """1.0002 wins against 1 moves the MAP by ~1e-4, inside the certified accuracy: min-max
    would otherwise stretch it into a 0-versus-100 verdict."""
    scale = thurstone_map(np.array([[0.0, 1.0002], [1.0, 0.0]]))
    assert 0 < np.ptp(scale.latent) < 2 * scaling.GRADIENT_TOLERANCE
    np.testing.assert_array_equal(scale.scores, [50.0, 50.0])


def test_self_comparisons_carry_no_information() -> None:
    counts = count_matrix(3, [(0, 1, 1), (1, 2, 1)])
    with_diagonal = counts + np.diag([5, 0, 3])
    np.testing.assert_array_equal(thurstone_map(with_diagonal).latent, thurstone_map(counts).latent)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros(4), "square"),
        (np.array([[0, -1], [1, 0]]), "non-negative"),
        (np.array([[0, math.nan], [1, 0]]), "finite"),
        (np.array([[0, math.inf], [1, 0]]), "finite"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_invalid_count_matrices_are_rejected(counts: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        thurstone_map(counts)


# -------------------------------------------------------------------- baseline


def test_agrees_with_the_studys_slsqp_fit() -> None:
    rng = np.random.default_rng(3)
    counts = observer_counts(rng.normal(size=40), 5, 1.0, rng)
    baseline = load_slsqp_baseline()(counts.astype(float))  # type: ignore[operator]
    assert stats.spearmanr(thurstone_map(counts).scores, baseline).statistic >= 0.999
