"""Every metric is checked against scipy.stats, which the module does not use for them."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from iqa_eval import metrics as m

# Small integer scores produce the heavy ties of coarse MLLM answers.
tied_pairs = st.integers(min_value=2, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)
float_pairs = st.integers(min_value=2, max_value=200).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n),
        st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n),
    )
)


def scipy_value(fn: object, x: object, y: object) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(x, y).statistic)  # type: ignore[operator]


def assert_same(ours: float, theirs: float) -> None:
    if math.isnan(theirs):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(theirs, abs=1e-10)


# ------------------------------------------------------------ elementary metrics


@settings(derandomize=True, max_examples=300, deadline=None)
@given(tied_pairs)
def test_srcc_matches_scipy_with_ties(pair: tuple[list[int], list[int]]) -> None:
    x, y = pair
    assert_same(m.srcc(x, y), scipy_value(stats.spearmanr, x, y))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(tied_pairs)
def test_krcc_matches_scipy_tau_b_with_ties(pair: tuple[list[int], list[int]]) -> None:
    x, y = pair
    assert_same(m.krcc(x, y), scipy_value(stats.kendalltau, x, y))


@settings(derandomize=True, max_examples=50, deadline=None)
@given(float_pairs)
def test_rank_metrics_match_scipy_on_floats(pair: tuple[list[float], list[float]]) -> None:
    x, y = pair
    assert_same(m.srcc(x, y), scipy_value(stats.spearmanr, x, y))
    assert_same(m.krcc(x, y), scipy_value(stats.kendalltau, x, y))


def test_batched_kernels_match_scipy_row_by_row() -> None:
    """The bootstrap runs the kernels on many rows at once; offsets between rows must not leak."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(40, 37)).astype(float)
    y = x + rng.integers(-2, 3, size=x.shape).astype(float)
    tau = m._kendall_rows(x, y)
    rho = m._spearman_rows(x, y)
    for row in range(x.shape[0]):
        assert_same(float(tau[row]), scipy_value(stats.kendalltau, x[row], y[row]))
        assert_same(float(rho[row]), scipy_value(stats.spearmanr, x[row], y[row]))


groups_of_four = st.lists(
    st.tuples(
        st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, math.nan]), min_size=4, max_size=4),
        st.lists(st.sampled_from([10.0, 20.0, 30.0]), min_size=4, max_size=4),
    ),
    min_size=1,
    max_size=30,
)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(groups_of_four)
def test_krcc_rows_is_krcc_of_each_row_and_scipys(groups: list[tuple[list[float], list[float]]]) -> None:
    """What a multiple-stimulus cell computes for its groups of four at once, ties, constant rows
    and non-finite rows included, is what krcc and scipy give one row at a time."""
    x = np.array([ranks for ranks, _ in groups])
    y = np.array([truth for _, truth in groups])
    taus = m.krcc_rows(x, y)
    assert taus.shape == (len(groups),)
    for row, (ranks, truth) in enumerate(groups):
        assert_same(float(taus[row]), m.krcc(ranks, truth))
        if all(math.isfinite(v) for v in ranks):
            assert_same(float(taus[row]), scipy_value(stats.kendalltau, ranks, truth))


def test_krcc_rows_needs_two_arrays_of_one_shape() -> None:
    with pytest.raises(ValueError, match="2-D arrays of one shape"):
        m.krcc_rows(np.zeros((3, 4)), np.zeros((3, 5)))
    assert np.isnan(m.krcc_rows(np.zeros((2, 1)), np.ones((2, 1)))).all()


def test_kendall_on_large_input_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=5000)
    y = np.round(x + rng.normal(size=5000), 1)
    assert_same(m.krcc(x, y), scipy_value(stats.kendalltau, x, y))


@pytest.mark.parametrize(
    ("x", "y"),
    [([1.0], [2.0]), ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [4, 4, 4]), ([1, math.nan, 3], [1, 2, 3])],
)
def test_degenerate_input_gives_nan_without_raising(x: list[float], y: list[float]) -> None:
    assert math.isnan(m.srcc(x, y))
    assert math.isnan(m.krcc(x, y))
    assert math.isnan(m.plcc(x, y)[0])


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="pred has 2 values but truth has 3"):
        m.srcc([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------ PLCC

TRUE_BETA = (4.5, 1.2, 0.3, 0.7)


def test_logistic4_is_the_published_formula() -> None:
    x = np.array([-2.0, 0.3, 5.0])
    b1, b2, b3, b4 = TRUE_BETA
    expected = (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4))) + b2
    np.testing.assert_allclose(m.logistic4(x, *TRUE_BETA), expected)
    np.testing.assert_allclose(m.logistic4(x, b1, b2, b3, -b4), expected)


def test_plcc_recovers_an_exact_logistic_from_a_centred_start() -> None:
    """mean(x) is ~1e-16 here: the start value that stalls a numeric-Jacobian fit."""
    x = np.linspace(-3, 3, 61)
    y = m.logistic4(x, *TRUE_BETA)
    beta = m.fit_logistic(x, y)
    assert beta is not None
    assert beta[:3] == pytest.approx(TRUE_BETA[:3], abs=1e-6)
    assert abs(beta[3]) == pytest.approx(TRUE_BETA[3], abs=1e-6)
    value, fitted = m.plcc(x, y)
    assert fitted
    assert value == pytest.approx(1.0, abs=1e-9)
    assert value == pytest.approx(stats.pearsonr(m.logistic4(x, *beta), y).statistic, abs=1e-12)


@pytest.mark.parametrize("b4", [0.7, -0.7])
def test_logistic_jacobian_matches_finite_differences(b4: float) -> None:
    """|b4| makes the curve even in b4, so the derivative must flip sign with it."""
    x = np.linspace(-2, 3, 11)
    beta = np.array([*TRUE_BETA[:3], b4])
    step = 1e-6
    numeric = np.column_stack(
        [
            (m.logistic4(x, *(beta + step * e)) - m.logistic4(x, *(beta - step * e))) / (2 * step)
            for e in np.eye(4)
        ]
    )
    np.testing.assert_allclose(m._logistic4_jacobian(x, *beta), numeric, atol=1e-7)


def test_fitted_logistic_is_a_least_squares_optimum() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=120)
    y = m.logistic4(x, *TRUE_BETA) + 0.3 * rng.normal(size=120)
    beta = np.array(m.fit_logistic(x, y))

    def sse(b: np.ndarray) -> float:
        return float(np.sum((m.logistic4(x, *b) - y) ** 2))

    perturbations = 1e-3 * rng.normal(size=(200, 4))
    assert all(sse(beta) <= sse(beta + d) for d in perturbations)
    value, fitted = m.plcc(x, y)
    assert fitted
    assert value == pytest.approx(stats.pearsonr(m.logistic4(x, *beta), y).statistic, abs=1e-12)
    assert value > stats.pearsonr(x, y).statistic


def _sse(x: np.ndarray, y: np.ndarray, beta: tuple[float, ...]) -> float:
    return float(np.sum((m.logistic4(x, *beta) - y) ** 2))


def _scipy_best_increasing_fit(x: np.ndarray, y: np.ndarray) -> float:
    """Least SSE of scipy's own curve_fit over a wide grid of starts, increasing fits only."""
    best = math.inf
    for b3 in np.quantile(x, np.linspace(0.05, 0.95, 10)):
        for width in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optimize.OptimizeWarning)
                    params, _ = optimize.curve_fit(
                        m.logistic4, x, y, p0=[y.max(), y.min(), b3, width * x.std()], maxfev=20000
                    )
            except RuntimeError:
                continue
            if params[0] > params[1]:
                best = min(best, _sse(x, y, tuple(params)))
    return best


def test_logistic_fit_escapes_the_local_optimum_of_the_studys_start() -> None:
    """A steep curve centred in a tail: from the study's start alone the fit stops at an
    optimum with twice the error; the spread of starts reaches the one scipy finds."""
    rng = np.random.default_rng(26)
    x = rng.normal(size=40)
    y = m.logistic4(x, 90, 10, 1.2, 0.1) + rng.normal(scale=8, size=40)
    study_only = m.fit_logistic(x, y, starts=m.logistic_starts(x, y)[:1])
    beta = m.fit_logistic(x, y)
    assert study_only is not None and beta is not None
    assert _sse(x, y, beta) < 0.5 * _sse(x, y, study_only)
    assert _sse(x, y, beta) == pytest.approx(_scipy_best_increasing_fit(x, y), rel=1e-6)
    assert m.plcc(x, y)[0] == pytest.approx(stats.pearsonr(m.logistic4(x, *beta), y).statistic, abs=1e-12)


def test_the_studys_start_is_tried_first() -> None:
    x = np.linspace(-1, 3, 9)
    y = x**2
    assert m.logistic_starts(x, y)[0] == pytest.approx((9.0, 0.0, 1.0, float(np.std(x)) / 4))


@settings(derandomize=True, max_examples=120, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=4, max_size=60, unique=True),
    st.sampled_from(["linear", "cubic", "logistic", "exp"]),
)
def test_a_reversed_predictor_never_gets_a_positive_plcc(xs: list[float], shape: str) -> None:
    """Truth strictly decreasing in the prediction: no increasing map can correlate it
    positively, so PLCC (fitted or fallen back) is never above 0, and never above SRCC's -1
    by the margin a decreasing map would give it."""
    x = np.array(xs)
    z = (x - x.mean()) / (x.std() or 1.0)
    down = {"linear": -z, "cubic": -(z**3), "logistic": -np.tanh(3 * z), "exp": -np.exp(z)}[shape]
    y = 50 + 10 * down
    value, _ = m.plcc(x, y)
    assert value <= 1e-12
    assert m.correlation("plcc", x, y)[0] <= 1e-12
    beta = m.fit_logistic(x, y)
    assert beta is None or beta[0] > beta[1]


def test_a_reversed_predictor_keeps_a_negative_plcc_and_interval() -> None:
    """The reported case: exactly reversed scores had SRCC -1 and PLCC +0.978."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 100, 150)
    reversed_pred = 100 - truth + rng.normal(scale=0.5, size=150)
    estimate = m.estimate_correlation("plcc", reversed_pred, truth, seed=0, n_resamples=200)
    assert estimate.value < -0.9
    assert estimate.high < 0
    assert estimate.note == m.FIT_FAILED


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_fitted_maps_are_increasing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=30)
    y = rng.normal(size=30) + rng.choice([-1.0, 1.0]) * x
    beta = m.fit_logistic(x, y)
    if beta is not None:
        assert beta[0] > beta[1] and beta[3] > 0
        assert np.all(np.diff(m.logistic4(np.sort(x), *beta)) >= 0)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        # Too few points to fit four parameters.
        (np.array([0.0, 1.0, 3.0]), np.array([0.5, 0.7, 3.0])),
        # Decreasing and nearly linear: the curve stretches without converging.
        (np.linspace(-1, 1, 21), -np.linspace(-1, 1, 21) + 0.05 * np.cos(7 * np.linspace(-1, 1, 21))),
    ],
)
def test_plcc_falls_back_to_raw_pearson_when_the_fit_fails(x: np.ndarray, y: np.ndarray) -> None:
    assert m.fit_logistic(x, y) is None
    value, fitted = m.plcc(x, y)
    assert not fitted
    assert value == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert m.correlation("plcc", x, y)[2] == m.FIT_FAILED


# ----------------------------------------------------------------- aggregation


def test_global_correlation_reports_units_and_reasons() -> None:
    value, n, note = m.correlation("srcc", [1, 2, 3, 4], [1, 3, 2, 4])
    assert value == pytest.approx(0.8) and n == 4 and note == ""
    value, n, note = m.correlation("krcc", [1, 2, 3], [5, 5, 5])
    assert math.isnan(value) and n == 3 and note == "truth is constant"
    value, _, note = m.correlation("srcc", [2, 2, 2], [1, 2, 3])
    assert math.isnan(value) and note == "prediction is constant"
    with pytest.raises(ValueError, match="unknown metric"):
        m.correlation("rmse", [1, 2], [1, 2])


def hand_local_mean(fn: object, x: np.ndarray, y: np.ndarray, groups: list[str]) -> float:
    """The local-mean rules, written out directly with scipy."""
    labels = np.array(groups)
    values = []
    for label in sorted(set(groups)):
        gx, gy = x[labels == label], y[labels == label]
        if len(gx) < 2 or len(set(gy)) == 1:
            continue
        values.append(0.0 if len(set(gx)) == 1 else scipy_value(fn, gx, gy))
    return float(np.mean(values))


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.integers(0, 4), st.integers(0, 3)), min_size=4, max_size=80
    )
)
def test_local_mean_matches_a_hand_loop(rows: list[tuple[str, int, int]]) -> None:
    groups = [g for g, _, _ in rows]
    x = np.array([p for _, p, _ in rows], dtype=float)
    y = np.array([t for _, _, t in rows], dtype=float)
    for name, fn in (("srcc", stats.spearmanr), ("krcc", stats.kendalltau)):
        value, n, _ = m.correlation(name, x, y, groups)
        informative = [g for g in set(groups) if len(set(y[np.array(groups) == g])) > 1]
        assert n == len(informative)
        if informative:
            assert value == pytest.approx(hand_local_mean(fn, x, y, groups), abs=1e-10)
        else:
            assert math.isnan(value)


def test_constant_prediction_group_counts_as_zero_and_is_reported() -> None:
    groups = list("aaaabbbbcccd")
    pred = [1, 2, 3, 4, 7, 7, 7, 7, 1, 2, 3, 5]
    truth = [1, 2, 3, 4, 1, 2, 3, 4, 2, 2, 2, 1]
    value, n, note = m.correlation("srcc", pred, truth, groups)
    assert value == pytest.approx(0.5) and n == 2
    assert "1 group(s) with constant prediction counted as 0" in note
    assert "2 group(s) with fewer than 2 items or constant truth left out" in note


def test_local_plcc_fits_one_logistic_on_all_items_then_correlates_per_group() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    y = m.logistic4(x, 5, 1, 0.2, 0.6) + rng.normal(scale=0.3, size=60)
    groups = np.repeat(list("abcdef"), 10)
    beta0 = [y.max(), y.min(), x.mean(), x.std() / 4]
    params, _ = optimize.curve_fit(m.logistic4, x, y, p0=beta0, maxfev=20000)
    mapped = m.logistic4(x, *params)
    expected = np.mean([stats.pearsonr(mapped[groups == g], y[groups == g]).statistic for g in "abcdef"])
    value, n, note = m.correlation("plcc", x, y, list(groups))
    assert value == pytest.approx(expected, abs=1e-6) and n == 6
    assert note == "logistic fitted once on all items, then PLCC inside each group"


def test_local_plcc_says_when_the_pooled_fit_failed() -> None:
    x = np.linspace(-1, 1, 21)
    bad_y = -x + 0.05 * np.cos(7 * x)
    value, n, note = m.correlation(
        "plcc", np.concatenate([x, x]), np.concatenate([bad_y, bad_y]), ["a"] * 21 + ["b"] * 21
    )
    assert value == pytest.approx(stats.pearsonr(x, bad_y).statistic, abs=1e-9) and n == 2
    assert note == "logistic fit on all items failed; PLCC on raw values inside each group"


def test_non_finite_values_make_local_mean_undefined() -> None:
    value, n, note = m.correlation("srcc", [1, 2, math.inf, 4], [1, 2, 3, 4], ["a", "a", "b", "b"])
    assert math.isnan(value) and n == 0 and note == "non-finite values"


# ------------------------------------------------------------------- bootstrap


def bivariate_normal(rng: np.random.Generator, rho: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)


@pytest.mark.parametrize("name", m.METRICS)
def test_interval_contains_estimate_and_is_seed_deterministic(name: str) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=80)
    y = np.tanh(1.5 * x) + 0.4 * rng.normal(size=80)
    first = m.estimate_correlation(name, x, y, seed=11, n_resamples=150)
    assert first == m.estimate_correlation(name, x, y, seed=11, n_resamples=150)
    assert first != m.estimate_correlation(name, x, y, seed=12, n_resamples=150)
    assert first.low < first.value < first.high
    assert (first.n, first.aggregation) == (80, "global")


def test_local_mean_resamples_groups_not_items() -> None:
    """With one informative group a group bootstrap has nothing to vary; an item bootstrap would."""
    rng = np.random.default_rng(7)
    pred = rng.normal(size=30)
    truth = pred + rng.normal(size=30)
    groups = ["a"] * 20 + ["b"] * 10
    truth[20:] = 1.0
    est = m.estimate_correlation("srcc", pred, truth, groups, seed=1, n_resamples=100)
    expected = scipy_value(stats.spearmanr, pred[:20], truth[:20])
    assert [est.value, est.low, est.high] == pytest.approx([expected] * 3)
    assert (est.n, est.aggregation) == (1, "local_mean")


def test_local_mean_interval_spans_the_group_values() -> None:
    rng = np.random.default_rng(8)
    groups = [str(g) for g in range(15) for _ in range(10)]
    pred = rng.normal(size=150)
    truth = pred + rng.normal(size=150)
    est = m.estimate_correlation("krcc", pred, truth, groups, seed=3, n_resamples=500)
    per_group = [
        scipy_value(stats.kendalltau, pred[i : i + 10], truth[i : i + 10]) for i in range(0, 150, 10)
    ]
    assert est.value == pytest.approx(np.mean(per_group))
    assert min(per_group) < est.low < est.value < est.high < max(per_group)
    assert est.n == 15


def test_undefined_estimate_has_undefined_bounds() -> None:
    est = m.estimate_correlation("srcc", [1, 2, 3], [4, 4, 4], seed=0)
    assert math.isnan(est.low) and math.isnan(est.high) and est.note == "truth is constant"
    assert est.to_dict() == {
        "value": None,
        "low": None,
        "high": None,
        "n": 3,
        "aggregation": "global",
        "note": "truth is constant",
    }


def test_bootstrap_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="n_resamples"):
        m.estimate_correlation("srcc", [1, 2, 3], [1, 2, 3], seed=0, n_resamples=0)
    with pytest.raises(ValueError, match="level"):
        m.estimate_rate([1, 0], seed=0, level=1.0)


def test_small_samples_report_undefined_resamples() -> None:
    est = m.estimate_correlation("srcc", [1, 2, 3], [1, 3, 2], seed=0, n_resamples=200)
    assert "resamples undefined, left out" in est.note


@pytest.mark.parametrize(
    ("name", "population"), [("srcc", 6 / math.pi * math.asin(0.3)), ("krcc", 2 / math.pi * math.asin(0.6))]
)
def test_correlation_interval_coverage_by_simulation(name: str, population: float) -> None:
    """200 bivariate-normal samples (rho 0.6) of 60 items: the 95% interval must cover the
    population value (Spearman 6/pi asin(rho/2), Kendall 2/pi asin(rho)) about 95% of the time."""
    rng = np.random.default_rng(20)
    hits = 0
    for run in range(200):
        x, y = bivariate_normal(rng, 0.6, 60)
        est = m.estimate_correlation(name, x, y, seed=run, n_resamples=300)
        hits += est.low <= population <= est.high
    assert 0.88 <= hits / 200 <= 0.99


# ------------------------------------------------------------------------ rate


def test_rate_is_the_mean_credit() -> None:
    est = m.estimate_rate([1, 0, 0.5, 1], seed=0, n_resamples=300)
    assert (est.value, est.n, est.aggregation, est.note) == (0.625, 4, "rate", "")
    assert est.low <= est.value <= est.high


def test_rate_edge_cases() -> None:
    empty = m.estimate_rate([], seed=0)
    assert math.isnan(empty.value) and empty.n == 0 and empty.note == "no outcomes"
    perfect = m.estimate_rate(np.ones(20), seed=0)
    assert (perfect.low, perfect.high) == (1.0, 1.0) and "zero width" in perfect.note
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.estimate_rate([0.5, 2.0], seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.estimate_rate([0.5, math.nan], seed=0)


@pytest.mark.parametrize(("level", "z"), [(0.95, 1.959964), (0.8, 1.281552)])
def test_rate_interval_width_matches_normal_theory(level: float, z: float) -> None:
    """For 2000 fair coin flips the bootstrap distribution is close to normal, so the
    interval's half-width must be z * sqrt(p(1 - p) / n) for the requested level."""
    outcomes = np.repeat([0.0, 1.0], 1000)
    est = m.estimate_rate(outcomes, seed=4, n_resamples=4000, level=level)
    half_width = (est.high - est.low) / 2
    assert half_width == pytest.approx(z * math.sqrt(0.25 / 2000), rel=0.06)


def test_rate_interval_coverage_by_simulation() -> None:
    rng = np.random.default_rng(21)
    p = 0.3
    hits = sum(
        est.low <= p <= est.high
        for est in (m.estimate_rate(rng.random(100) < p, seed=run, n_resamples=400) for run in range(300))
    )
    assert 0.88 <= hits / 300 <= 0.99
