"""Agreement between predicted quality and human opinion, with bootstrap intervals.

Correlations here are computed by small numpy kernels that work on a whole batch of
resamples at once (one row per resample), because a bootstrap made of a thousand separate
library calls costs seconds per metric and the suite reports many metrics. scipy.stats is
kept out of the kernels on purpose so that the tests can use it as an independent check.

Degenerate input (too few items, constant scores, non-finite values) never raises: the
value is nan and the accompanying note says why, so a report can show the reason instead of
crashing on one bad cell.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit
from scipy.stats import rankdata

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Codes = npt.NDArray[np.intp]
RowStatistic = Callable[[FloatArray, FloatArray], FloatArray]
"""A correlation on every row of a batch (one row per resample); nan where undefined."""
Resampling = Callable[[FloatArray, FloatArray], RowStatistic]
"""The row statistic for resamples of one data set (it may start from what the full data give)."""
GroupStatistic = Callable[[FloatArray, FloatArray, Codes], tuple[FloatArray, str]]
"""A correlation inside every group (codes 0..g-1), nan where a group carries no information,
with the note that says how groups were counted."""
PointStatistic = Callable[[FloatArray, FloatArray], tuple[float, str]]
"""A correlation on well-posed data, with the note a report must carry with it."""
Start = tuple[float, float, float, float]

FIT_FAILED = "logistic fit failed; PLCC on raw values"
# Extra starts of the logistic fit: centre at these quantiles of the predictions, slope width
# these multiples of their standard deviation (the study's own start is always tried first).
_START_QUANTILES = (0.25, 0.5, 0.75)
_START_WIDTHS = (0.05, 0.25, 1.0)
# Upper bound on resampled values held in memory at once (rows x items).
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A point value with its interval and the facts needed to read it honestly."""

    value: float
    low: float
    high: float
    n: int
    aggregation: str
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON has no nan, so undefined numbers become null rather than invalid output."""
        return {
            "value": _json_float(self.value),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "n": self.n,
            "aggregation": self.aggregation,
            "note": self.note,
        }


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


# --------------------------------------------------------------------------- input


def _as_pair(pred: npt.ArrayLike, truth: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mismatched lengths are a caller bug, not degenerate data, so they do raise."""
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(truth, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pred has {x.size} values but truth has {y.size}")
    return x, y


def _is_constant(a: FloatArray) -> bool:
    return a.size > 0 and bool(np.all(a == a[0]))


def _undefined_reason(x: FloatArray, y: FloatArray) -> str:
    """Why no correlation exists for this pair of vectors ("" when one does)."""
    if x.size < 2:
        return "fewer than 2 items"
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return "non-finite values"
    if _is_constant(y):
        return "truth is constant"
    if _is_constant(x):
        return "prediction is constant"
    return ""


# ------------------------------------------------------------- batched kernels


def _row_constant(a: FloatArray) -> npt.NDArray[np.bool_]:
    return np.asarray(np.all(a == a[:, :1], axis=1), dtype=np.bool_)


def _pearson_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """Exact constancy is tested explicitly: centring a constant row in floating point
    can leave residues of 1e-17 that would otherwise yield a meaningless correlation."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(xc * xc, axis=1) * np.sum(yc * yc, axis=1))
    undefined = _row_constant(x) | _row_constant(y)
    r = np.sum(xc * yc, axis=1) / np.where(undefined, 1.0, den)
    return np.where(undefined, np.nan, np.clip(r, -1.0, 1.0))


def _spearman_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    ranks_x = np.asarray(rankdata(x, axis=1), dtype=np.float64)
    ranks_y = np.asarray(rankdata(y, axis=1), dtype=np.float64)
    return _pearson_rows(ranks_x, ranks_y)


def _run_starts(a: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """True where a row of a sorted array begins a new run of equal values."""
    starts = np.ones(a.shape, dtype=bool)
    starts[:, 1:] = a[:, 1:] != a[:, :-1]
    return starts


def _pairs_within_runs(starts: npt.NDArray[np.bool_]) -> IntArray:
    """Tied pairs per row, sum of t(t-1)/2 over runs: each element adds its offset in its run."""
    position = np.arange(starts.shape[1])
    run_start = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    return np.asarray(np.sum(position - run_start, axis=1), dtype=np.int64)


def _inversions(codes: IntArray) -> IntArray:
    """Pairs i < j with codes[i] > codes[j], per row, by a bottom-up merge sort.

    Every merge level is vectorised over all rows: adding a (row, block) offset to the
    codes (which lie in [0, n)) makes one flat sorted array in which np.searchsorted counts,
    for each element of a right half, the larger elements of its left half. O(n log^2 n)
    per row with no Python loop over items or rows.
    """
    rows, n = codes.shape
    position = np.arange(n)
    total = np.zeros(rows, dtype=np.int64)
    values = codes
    width = 1
    while width < n:
        block = position // (2 * width)
        right = (position // width) % 2 == 1
        offset = (np.arange(rows)[:, None] * (block[-1] + 1) + block[None, :]) * n
        keys = offset + values
        left_keys = keys[:, ~right].ravel()
        block_end = np.searchsorted(left_keys, (offset[:, right] + n).ravel())
        not_larger = np.searchsorted(left_keys, keys[:, right].ravel(), side="right")
        total += np.sum((block_end - not_larger).reshape(rows, -1), axis=1)
        values = np.sort(keys, axis=1) - offset
        width *= 2
    return total


def _kendall_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """Kendall tau-b from tie counts and the discordant pairs, in O(n log^2 n).

    After sorting by (x, y), pairs tied in x are in y order, so the strict inversions of y
    are exactly the discordant pairs; concordant = all - x ties - y ties + joint ties - D.
    """
    n = x.shape[1]
    order = np.lexsort((y, x), axis=1)
    xs = np.take_along_axis(x, order, axis=1)
    ys = np.take_along_axis(y, order, axis=1)
    x_starts = _run_starts(xs)
    ties_x = _pairs_within_runs(x_starts)
    ties_y = _pairs_within_runs(_run_starts(np.sort(y, axis=1)))
    ties_xy = _pairs_within_runs(x_starts | _run_starts(ys))
    codes = np.asarray(rankdata(ys, method="dense", axis=1), dtype=np.int64) - 1
    discordant = _inversions(codes)
    pairs = n * (n - 1) // 2
    numerator = pairs - ties_x - ties_y + ties_xy - 2 * discordant
    denominator = np.sqrt((pairs - ties_x).astype(np.float64) * (pairs - ties_y))
    undefined = denominator == 0
    tau = numerator / np.where(undefined, 1.0, denominator)
    return np.where(undefined, np.nan, np.clip(tau, -1.0, 1.0))


def _single(kernel: RowStatistic, pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    x, y = _as_pair(pred, truth)
    if _undefined_reason(x, y):
        return math.nan
    return float(kernel(x[None, :], y[None, :])[0])


# ---------------------------------------------------------- elementary metrics


def srcc(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); nan when undefined."""
    return _single(_spearman_rows, pred, truth)


def krcc(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Kendall tau-b, which stays in [-1, 1] under the ties that coarse scores produce."""
    return _single(_kendall_rows, pred, truth)


def krcc_rows(pred: npt.ArrayLike, truth: npt.ArrayLike) -> FloatArray:
    """Kendall tau-b of each row of ``pred`` against the same row of ``truth``, nan where
    :func:`krcc` is: a multiple-stimulus cell has one per group of four, hundreds per cell,
    and one batched call costs what a few single ones do."""
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"pred and truth must be 2-D arrays of one shape, got {x.shape} and {y.shape}")
    taus = np.full(x.shape[0], np.nan)
    defined = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1)
    if x.shape[1] >= 2 and defined.any():
        # The kernel gives nan itself where a row is constant (no untied pair to compare).
        taus[defined] = _kendall_rows(x[defined], y[defined])
    return taus


def pearson(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Pearson correlation on raw values: the fallback when no logistic can be fitted."""
    return _single(_pearson_rows, pred, truth)


def logistic4(x: FloatArray, b1: float, b2: float, b3: float, b4: float) -> FloatArray:
    """Monotone map from prediction to the opinion scale: (b1-b2)/(1+exp(-(x-b3)/|b4|)) + b2.

    Written with expit, which cannot overflow where exp(-z) would.
    """
    return np.asarray((b1 - b2) * expit((x - b3) / abs(b4)) + b2, dtype=np.float64)


def _logistic4_jacobian(x: FloatArray, b1: float, b2: float, b3: float, b4: float) -> FloatArray:
    """Analytic derivatives for the fit. MINPACK's numeric Jacobian scales its step by
    |beta|, and the prescribed start beta3 = mean(x) is often ~1e-16 for centred scores:
    the step then vanishes, beta3 never moves, and the fit stalls far from the optimum."""
    scale = abs(b4)
    z = (x - b3) / scale
    s = np.asarray(expit(z), dtype=np.float64)
    slope = (b1 - b2) * s * (1.0 - s)
    return np.column_stack([s, 1.0 - s, -slope / scale, -slope * z / scale * np.sign(b4)])


def logistic_starts(x: FloatArray, y: FloatArray) -> list[Start]:
    """Where the fit starts: the study's point first, then a spread of centres and slopes.

    One start is not enough: from the study's start (centre at the mean, slope a quarter of
    the spread) the least-squares surface often leads to a worse local optimum, or to no
    convergence at all, when the true centre lies in a tail or the curve is much steeper or
    flatter than that guess. Every start is increasing (b1 = max y above b2 = min y).
    """
    top, bottom, spread = float(y.max()), float(y.min()), float(x.std())
    starts: list[Start] = [(top, bottom, float(x.mean()), spread / 4.0)]
    for q in _START_QUANTILES:
        for width in _START_WIDTHS:
            starts.append((top, bottom, float(np.quantile(x, q)), spread * width))
    return starts


def fit_logistic(
    pred: npt.ArrayLike, truth: npt.ArrayLike, starts: Sequence[Start] | None = None
) -> tuple[float, float, float, float] | None:
    """The increasing least-squares logistic map with the least error over several starts, or
    None when no start gives a usable one.

    Increasing because the suite orients every prediction higher-is-better: a map allowed to
    decrease would turn a reversed predictor into a high PLCC (SRCC -1, PLCC +0.98 was seen),
    and a gate on PLCC would pass it. A start that ends decreasing is dropped, so a reversed
    predictor usually has no fit and falls back to raw Pearson, which keeps its sign; and no
    increasing map can make an exactly reversed predictor correlate positively (Chebyshev's
    sum inequality).

    A start fails when it does not converge (typical for nearly linear data: the curve keeps
    stretching towards a line), ends flat, or ends decreasing. ``starts`` replaces the default
    spread (the bootstrap passes the full-data optimum and the study's start). The covariance
    warning is silenced, not treated as failure: it concerns parameter uncertainty, which is
    never used, and it fires on perfect fits.
    """
    x, y = _as_pair(pred, truth)
    if x.size < 4 or _undefined_reason(x, y):
        return None
    best: tuple[float, float, float, float] | None = None
    best_sse = math.inf
    for start in logistic_starts(x, y) if starts is None else starts:
        params = _fit_from(x, y, start)
        if params is None:
            continue
        sse = float(np.sum((logistic4(x, *params) - y) ** 2))
        if sse < best_sse:
            best, best_sse = params, sse
    return best


def _fit_from(x: FloatArray, y: FloatArray, start: Start) -> tuple[float, float, float, float] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            params, _ = curve_fit(logistic4, x, y, p0=list(start), jac=_logistic4_jacobian)
        except (RuntimeError, ValueError):
            return None
    b1, b2, b3, b4 = (float(p) for p in params)
    if not all(math.isfinite(b) for b in (b1, b2, b3, b4)) or b4 == 0.0 or b1 <= b2:
        return None
    if _is_constant(logistic4(x, b1, b2, b3, b4)):
        return None
    return b1, b2, b3, abs(b4)


def plcc(
    pred: npt.ArrayLike, truth: npt.ArrayLike, starts: Sequence[Start] | None = None
) -> tuple[float, bool]:
    """Pearson after the logistic map; the flag says whether the map was fitted, because a
    raw-value Pearson is a different number that a report must label."""
    x, y = _as_pair(pred, truth)
    params = fit_logistic(x, y, starts)
    if params is None:
        return pearson(x, y), False
    return pearson(logistic4(x, *params), y), True


# ------------------------------------------------------------------ per group


def _group_spearman(x: FloatArray, y: FloatArray, codes: Codes) -> FloatArray:
    """Spearman inside every group at once, the same numbers a loop over groups gives.

    A rank inside a group is a global rank of (group, global rank) minus the items of the
    groups before it; ties stay ties because equal values share their global rank. Ranks and
    their group means are multiples of 1/2, so every product and sum is exact and the order of
    summation cannot change a bit. One call per cell instead of one per group keeps a baseline
    check of a whole run cheap. A group with constant prediction counts as 0.
    """
    counts = np.bincount(codes).astype(np.float64)
    before = np.cumsum(counts) - counts

    def ranks(v: FloatArray) -> FloatArray:
        combined = codes * (v.size + 1.0) + np.asarray(rankdata(v), dtype=np.float64)
        r = np.asarray(rankdata(combined), dtype=np.float64) - before[codes]
        return np.asarray(r - (np.bincount(codes, weights=r) / counts)[codes], dtype=np.float64)

    rx, ry = ranks(x), ranks(y)
    sxx, syy = np.bincount(codes, weights=rx * rx), np.bincount(codes, weights=ry * ry)
    sxy = np.bincount(codes, weights=rx * ry)
    informative = (counts >= 2) & (syy > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    return np.asarray(np.where(informative, np.where(sxx > 0, r, 0.0), np.nan), dtype=np.float64)


def _each_group(kernel: RowStatistic, x: FloatArray, y: FloatArray, codes: Codes) -> FloatArray:
    """``kernel`` inside each group, one group at a time, with the conventions of
    ``_group_spearman``: nan for fewer than 2 items or constant truth, 0 for constant prediction."""
    out = np.full(int(codes.max()) + 1 if codes.size else 0, np.nan)
    for code in range(out.size):
        member = codes == code
        xg, yg = x[member], y[member]
        if xg.size < 2 or _is_constant(yg):
            continue
        out[code] = 0.0 if _is_constant(xg) else float(kernel(xg[None, :], yg[None, :])[0])
    return out


_GROUP_NOTES = {
    "uninformative": "{} group(s) with fewer than 2 items or constant truth left out",
    "constant prediction": "{} group(s) with constant prediction counted as 0",
    "pooled fit": "logistic fitted once on all items, then PLCC inside each group",
    "fit failed": "logistic fit on all items failed; PLCC on raw values inside each group",
}


def _group_note(values: FloatArray, x: FloatArray, codes: Codes, fit: str = "") -> str:
    """What the reader of a local mean must know: groups left out, groups counted as 0, the fit."""
    lowest = np.full(values.size, np.inf)
    highest = np.full(values.size, -np.inf)
    np.minimum.at(lowest, codes, x)
    np.maximum.at(highest, codes, x)
    informative = np.isfinite(values)
    kinds = {
        "uninformative": int(np.sum(~informative)),
        "constant prediction": int(np.sum(informative & (lowest == highest))),
        fit: 1,
    }
    return "; ".join(text.format(kinds[k]) for k, text in _GROUP_NOTES.items() if kinds.get(k))


def _rank_groups(kernel: RowStatistic, vectorised: bool) -> GroupStatistic:
    def groups(x: FloatArray, y: FloatArray, codes: Codes) -> tuple[FloatArray, str]:
        values = _group_spearman(x, y, codes) if vectorised else _each_group(kernel, x, y, codes)
        return values, _group_note(values, x, codes)

    return groups


def _plcc_groups(x: FloatArray, y: FloatArray, codes: Codes) -> tuple[FloatArray, str]:
    """PLCC inside groups is Pearson after one logistic fitted on all items, because four
    parameters fitted to the handful of items of one group would nearly interpolate them and
    report an inflated, unstable PLCC."""
    params = fit_logistic(x, y)
    mapped = logistic4(x, *params) if params is not None else x
    values = _each_group(_pearson_rows, mapped, y, codes)
    return values, _group_note(values, mapped, codes, "pooled fit" if params is not None else "fit failed")


def _plcc_rows(x: FloatArray, y: FloatArray, starts: Sequence[Start] | None = None) -> FloatArray:
    """PLCC refits the logistic on every resample: the fit is part of the estimator, and
    reusing the full-data fit would understate the interval."""
    return np.array([plcc(xr, yr, starts)[0] for xr, yr in zip(x, y, strict=True)])


def _bootstrap_plcc(x: FloatArray, y: FloatArray) -> RowStatistic:
    """PLCC for resamples, started from the full-data optimum and the study's start only.

    A resample's optimum lies near the full-data one, so two starts find it at a fifth of the
    cost of the full spread, which matters a thousand times per interval.
    """
    starts = logistic_starts(x, y)[:1]
    params = fit_logistic(x, y)
    if params is not None:
        starts.insert(0, params)
    return lambda xr, yr: _plcc_rows(xr, yr, starts)


def _same_rows(kernel: RowStatistic) -> Resampling:
    return lambda x, y: kernel


def _rank_point(kernel: RowStatistic) -> PointStatistic:
    return lambda x, y: (float(kernel(x[None, :], y[None, :])[0]), "")


def _plcc_point(x: FloatArray, y: FloatArray) -> tuple[float, str]:
    value, fitted = plcc(x, y)
    return value, "" if fitted else FIT_FAILED


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Kernel:
    """One correlation, in the three shapes its users need, all giving the same numbers.

    ``point`` is the value a cell reports on all its items (with a note), ``rows`` the value on
    every row of a batch, ``resample`` the row statistic a bootstrap of given data uses (PLCC
    starts its fits from the full data's), ``groups`` the values inside groups that a local mean
    averages. The protocols' aggregation (through ``correlation`` and ``estimate_correlation``)
    and the baseline's paired bootstrap both compute from this table, so the number a
    regression check recomputes is the number the gate judged.
    """

    point: PointStatistic
    rows: RowStatistic
    resample: Resampling
    groups: GroupStatistic


KERNELS: Mapping[str, Kernel] = {
    "srcc": Kernel(
        _rank_point(_spearman_rows),
        _spearman_rows,
        _same_rows(_spearman_rows),
        _rank_groups(_spearman_rows, True),
    ),
    "krcc": Kernel(
        _rank_point(_kendall_rows),
        _kendall_rows,
        _same_rows(_kendall_rows),
        _rank_groups(_kendall_rows, False),
    ),
    "plcc": Kernel(_plcc_point, _plcc_rows, _bootstrap_plcc, _plcc_groups),
}
METRICS = tuple(KERNELS)


# --------------------------------------------------------------- aggregation


def _check_name(name: str) -> None:
    if name not in KERNELS:
        raise ValueError(f"unknown metric {name!r}; expected one of {METRICS}")


def _global(name: str, x: FloatArray, y: FloatArray) -> tuple[float, int, str]:
    reason = _undefined_reason(x, y)
    if reason:
        return math.nan, x.size, reason
    value, note = KERNELS[name].point(x, y)
    return value, x.size, note


def group_codes(groups: Sequence[str] | npt.ArrayLike, n_items: int) -> Codes:
    """Each item's group as a code 0..g-1, in the sorted order of the labels."""
    labels = np.asarray(groups)
    if labels.shape != (n_items,):
        raise ValueError(f"groups has {labels.size} labels but there are {n_items} items")
    return np.asarray(np.unique(labels, return_inverse=True)[1], dtype=np.intp).ravel()


def _group_values(name: str, x: FloatArray, y: FloatArray, groups: Sequence[str]) -> tuple[FloatArray, str]:
    """Per-group metric values of the informative groups, computed once so that a bootstrap
    only resamples them."""
    values, note = KERNELS[name].groups(x, y, group_codes(groups, x.size))
    return values[np.isfinite(values)], note


def _local_mean(
    name: str, x: FloatArray, y: FloatArray, groups: Sequence[str]
) -> tuple[FloatArray, float, str]:
    """The informative groups' values (what a bootstrap resamples), their mean and a note."""
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return np.empty(0), math.nan, "non-finite values"
    values, note = _group_values(name, x, y, groups)
    if values.size == 0:
        return values, math.nan, _join(note, "no informative group")
    return values, float(values.mean()), note


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def correlation(
    name: str,
    pred: npt.ArrayLike,
    truth: npt.ArrayLike,
    groups: Sequence[str] | None = None,
) -> tuple[float, int, str]:
    """(value, units used, note) for a global or a local-mean correlation.

    Local mean exists because per-reference scales (FR MAP scales, per-reference MOS
    ranges) are not comparable across references: correlating inside each group and
    averaging removes the between-group offsets that a global correlation would reward
    or punish. Non-finite values anywhere make the result nan: failed answers must be
    removed by the caller, explicitly, not silently dropped here.
    """
    _check_name(name)
    x, y = _as_pair(pred, truth)
    if groups is None:
        return _global(name, x, y)
    values, value, note = _local_mean(name, x, y, groups)
    return value, values.size, note


# ----------------------------------------------------------------- bootstrap


def _check_bootstrap(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0.0 < level < 1.0:
        raise ValueError("level must lie strictly between 0 and 1")


def _chunk_rows(n_items: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(n_items, 1))


def _resampled_means(values: FloatArray, rng: np.random.Generator, n_resamples: int) -> FloatArray:
    """Bootstrap means of a vector, in chunks so memory stays bounded for large inputs."""
    n, step = values.size, _chunk_rows(values.size)
    parts = [
        values[rng.integers(0, n, size=(min(step, n_resamples - done), n))].mean(axis=1)
        for done in range(0, n_resamples, step)
    ]
    return np.concatenate(parts)


def _resampled_correlations(
    name: str, x: FloatArray, y: FloatArray, rng: np.random.Generator, n_resamples: int
) -> FloatArray:
    kernel = KERNELS[name].resample(x, y)
    n, step = x.size, _chunk_rows(x.size)
    parts = []
    for done in range(0, n_resamples, step):
        idx = rng.integers(0, n, size=(min(step, n_resamples - done), n))
        parts.append(kernel(x[idx], y[idx]))
    return np.concatenate(parts)


def _percentile_interval(samples: FloatArray, level: float) -> tuple[float, float, str]:
    """Percentile interval over the defined resamples; says how many were undefined, since
    a resample that happens to be constant has no correlation and cannot be counted."""
    defined = samples[np.isfinite(samples)]
    dropped = samples.size - defined.size
    note = f"{dropped} of {samples.size} resamples undefined, left out" if dropped else ""
    if defined.size == 0:
        return math.nan, math.nan, note
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return float(low), float(high), note


def estimate_correlation(
    name: str,
    pred: npt.ArrayLike,
    truth: npt.ArrayLike,
    groups: Sequence[str] | None = None,
    *,
    seed: int,
    n_resamples: int = 1000,
    level: float = 0.95,
) -> Estimate:
    """A correlation with a percentile bootstrap interval.

    The resampled unit is the unit of the aggregation: items for a global value, whole
    groups for a local mean (items inside a reference are not independent of each other).
    """
    _check_name(name)
    _check_bootstrap(n_resamples, level)
    x, y = _as_pair(pred, truth)
    if groups is None:
        value, n, note = _global(name, x, y)
        values = None
    else:
        # The group values are what a local mean resamples: made once (a PLCC's pooled
        # logistic fit is most of a cell's evaluation).
        values, value, note = _local_mean(name, x, y, groups)
        n = values.size
    aggregation = "global" if groups is None else "local_mean"
    if math.isnan(value):
        return Estimate(value, math.nan, math.nan, n, aggregation, note)
    rng = np.random.default_rng(seed)
    if values is None:
        samples = _resampled_correlations(name, x, y, rng, n_resamples)
    else:
        samples = _resampled_means(values, rng, n_resamples)
    low, high, boot_note = _percentile_interval(samples, level)
    return Estimate(value, low, high, n, aggregation, _join(note, boot_note))


def estimate_rate(
    outcomes: npt.ArrayLike,
    *,
    seed: int,
    n_resamples: int = 1000,
    level: float = 0.95,
) -> Estimate:
    """Share of credit over units (1 correct, 0 wrong, 0.5 half), with a bootstrap interval.

    Out-of-range or non-finite outcomes raise: they are bookkeeping errors, and averaging
    them would publish a wrong rate.
    """
    _check_bootstrap(n_resamples, level)
    values = np.asarray(outcomes, dtype=np.float64).ravel()
    if values.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "rate", "no outcomes")
    if not (np.all(np.isfinite(values)) and np.all((values >= 0.0) & (values <= 1.0))):
        raise ValueError("outcomes must be finite and lie in [0, 1]")
    samples = _resampled_means(values, np.random.default_rng(seed), n_resamples)
    low, high, _ = _percentile_interval(samples, level)
    note = "all outcomes equal: the percentile interval has zero width" if _is_constant(values) else ""
    return Estimate(float(values.mean()), low, high, values.size, "rate", note)
