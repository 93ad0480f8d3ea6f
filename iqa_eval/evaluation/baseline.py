"""Regression tests against a previous run: a paired bootstrap of the metric difference.

Two runs of a cell are compared on the items both judged, never on their published values: the
published values may rest on different items (another failure pattern, a changed sample), and
a point comparison cannot tell a regression from the noise of a few dozen stimuli. Pairing is
what makes the test sensitive: both runs are resampled with the same draw of units, so the
difficulty of the drawn units cancels in the difference and only the models' disagreement
remains. The resampled unit is the unit of the cell's metric: whole groups for a local mean,
items for a global value.

A cell regresses when the whole 95% interval of (now - baseline) lies below ``-tolerance``, that
is when the one-sided p-value of "no worse than the tolerance allows" is below 0.025.
Improvements are reported, never failed.

Metamorphic cells report a rate (the share of cases whose relation held) and no per-item
predictions; their two runs are compared as independent proportions with Newcombe's hybrid
score interval, which keeps its level for rates near 1 where a bootstrap of a few dozen cases
degenerates. Every selected cell gets a status: ``compared``, ``no baseline`` (the baseline does
not hold it) or ``not comparable`` (its metric changed), so nothing goes unjudged in silence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.stats import norm
from scipy.stats import t as t_dist

from iqa_eval.metrics import KERNELS, group_codes
from iqa_eval.types import BEST

FloatArray = npt.NDArray[np.float64]

DEFAULT_TOLERANCE = 0.02
LEVEL = 0.95
N_RESAMPLES = 1000
RATES = ("invariance",)
"""Primary metrics that are rates over cases: compared as proportions, not from predictions."""
# Truth values of one item in two runs that differ by more than this mean the dataset changed.
_TRUTH_ATOL = 1e-9


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Comparison:
    """One cell against its baseline; ``note`` says why there is no test when values are None."""

    metric: str
    baseline_value: float | None
    now_value: float | None
    delta: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    regressed: bool
    n_units: int
    unit: str
    tolerance: float
    note: str = ""
    status: str = "compared"

    def to_record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "metric": self.metric,
            "baseline_value": self.baseline_value,
            "now_value": self.now_value,
            "delta": self.delta,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "regressed": self.regressed,
            "n_units": self.n_units,
            "unit": self.unit,
            "tolerance": self.tolerance,
            "note": self.note,
        }

    def message(self) -> str:
        if self.status == "no baseline":
            return f"no baseline ({self.note})"
        if self.delta is None:
            return f"baseline: no comparison ({self.note})"
        lo, hi = self.ci
        verdict = "REGRESSED" if self.regressed else "no regression"
        return (
            f"baseline {verdict}: {self.metric} baseline {self.baseline_value:.3f}, "
            f"now {self.now_value:.3f}, "
            f"delta {self.delta:+.3f} (95% CI [{_fmt(lo)}, {_fmt(hi)}], p={self.p_value:.3g}, "
            f"paired over {self.n_units} {self.unit}; tolerance {self.tolerance:g})"
            + (f"; {self.note}" if self.note else "")
        )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


# ------------------------------------------------------------------------ matching cells


def cell_key(record: Mapping[str, Any]) -> str:
    """How a cell is found in another run.

    Stage-2 cells are matched by model, dataset, setting, attribute and subset alone: their
    prompting system is chosen by the run itself, and a model that got worse may well have a
    different best system, which must not hide the regression.
    """
    if record.get("stage") == 2:
        parts = (record["model"], record["dataset"], f"{record['setting']}_{record['attribute']}")
        return "/".join([*parts, BEST, BEST, str(record["subset"])])
    return str(record["id"])


def index_cells(cells: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {cell_key(c): c for c in cells}


# --------------------------------------------------------------------------- statistics


def _group_values(name: str, x: FloatArray, y: FloatArray, labels: npt.NDArray[np.str_]) -> FloatArray:
    """The metric inside each group (nan where a group carries no information), in label order:
    the very values whose mean the cell reported."""
    return KERNELS[name].groups(x, y, group_codes(labels, x.size))[0]


def _point(name: str, x: FloatArray, y: FloatArray) -> float:
    """The metric on all shared items, as a cell computes its global value."""
    return KERNELS[name].point(x, y)[0]


@dataclass(frozen=True)
class PairedSample:
    """Both runs' predictions on the shared items, with the truth and the groups they share."""

    truth: FloatArray
    now: FloatArray
    base: FloatArray
    groups: npt.NDArray[np.str_] | None


def paired_bootstrap(
    name: str,
    sample: PairedSample,
    *,
    tolerance: float,
    seed: int,
    n_resamples: int = N_RESAMPLES,
) -> Comparison:
    """The difference now - baseline of a correlation metric, its interval and its p-value."""
    if name not in KERNELS:
        raise ValueError(f"cannot recompute metric {name!r} from predictions; comparable: {tuple(KERNELS)}")
    rng = np.random.default_rng(seed)
    y, a, b = sample.truth, sample.now, sample.base
    if sample.groups is not None:
        unit = "groups"
        va, vb = _group_values(name, a, y, sample.groups), _group_values(name, b, y, sample.groups)
        keep = np.isfinite(va) & np.isfinite(vb)
        diffs, va, vb = va[keep] - vb[keep], va[keep], vb[keep]
        n = int(diffs.size)
        if n < 2:
            return _untestable(name, tolerance, n, unit, "fewer than 2 informative shared groups")
        now_value, base_value = float(va.mean()), float(vb.mean())
        samples = diffs[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    else:
        unit, n = "items", int(y.size)
        now_value, base_value = _point(name, a, y), _point(name, b, y)
        if n < 3 or not (math.isfinite(now_value) and math.isfinite(base_value)):
            return _untestable(name, tolerance, n, unit, "the metric is undefined on the shared items")
        idx = rng.integers(0, n, size=(n_resamples, n))
        resample = KERNELS[name].resample
        samples = resample(a, y)(a[idx], y[idx]) - resample(b, y)(b[idx], y[idx])
    defined = samples[np.isfinite(samples)]
    if defined.size == 0:
        return _untestable(name, tolerance, n, unit, "the metric is undefined on every resample")
    expansion = _expansion(n)
    tail = float(norm.cdf(-expansion * t_dist.ppf(1.0 - (1.0 - LEVEL) / 2.0, n - 1)))
    low, high = (float(q) for q in np.quantile(defined, [tail, 1.0 - tail]))
    share = max(float(np.mean(defined >= -tolerance)), 1.0 / (defined.size + 1))
    p_value = float(t_dist.sf(-norm.ppf(share) / expansion, n - 1))
    dropped = samples.size - defined.size
    return Comparison(
        metric=name,
        baseline_value=base_value,
        now_value=now_value,
        delta=now_value - base_value,
        ci=(low, high),
        p_value=p_value,
        regressed=high < -tolerance,
        n_units=n,
        unit=unit,
        tolerance=tolerance,
        note=f"{dropped} of {samples.size} resamples undefined, left out" if dropped else "",
    )


def _expansion(n: int) -> float:
    """Widening of the percentile interval for few units (Hesterberg's expanded percentile).

    A percentile bootstrap over n units is too narrow by about sqrt((n-1)/n) and by using normal
    instead of t quantiles; with the 16 groups of a typical FR cell that alone would raise the
    false alarm rate from 2.5% to about 4%. Mapping the tail through t with n-1 degrees of
    freedom, times sqrt(n/(n-1)), restores the nominal level; the p-value goes through the same
    map, so "p < 0.025" and "interval below -tolerance" are the same decision.
    """
    return math.sqrt(n / (n - 1))


def _untestable(
    name: str, tolerance: float, n: int, unit: str, note: str, status: str = "compared"
) -> Comparison:
    return Comparison(name, None, None, None, (None, None), None, False, n, unit, tolerance, note, status)


def _wilson(k: float, n: int, z: float) -> tuple[float, float]:
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def _newcombe(k1: float, n1: int, k2: float, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) of p1 - p2 for independent proportions."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1, z)
    l2, u2 = _wilson(k2, n2, z)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def compare_rates(
    name: str, now: Mapping[str, Any], base: Mapping[str, Any], *, tolerance: float
) -> Comparison:
    """A rate's change (now - baseline) over independent sets of cases, its interval and p-value.

    The p-value is the one-sided level at which the interval's upper end touches ``-tolerance``,
    so "p < 0.025" and "the 95% interval lies below -tolerance" are the same decision, as for
    the paired bootstrap.
    """
    n1, n2 = int(now.get("n") or 0), int(base.get("n") or 0)
    v1, v2 = now.get("value"), base.get("value")
    if n1 < 1 or n2 < 1 or v1 is None or v2 is None:
        return _untestable(name, tolerance, min(n1, n2), "cases", "no valid cases in one of the runs")
    k1, k2 = round(float(v1) * n1), round(float(v2) * n2)
    z95 = float(norm.ppf(1.0 - (1.0 - LEVEL) / 2.0))
    low, high = _newcombe(k1, n1, k2, n2, z95)
    delta = k1 / n1 - k2 / n2

    def upper(z: float) -> float:
        return _newcombe(k1, n1, k2, n2, z)[1] + tolerance

    if delta >= -tolerance:
        p_value = float(norm.sf(0.0))
    elif upper(40.0) < 0:
        p_value = float(norm.sf(40.0))
    else:
        p_value = float(norm.sf(brentq(upper, 0.0, 40.0)))
    return Comparison(
        metric=name,
        baseline_value=k2 / n2,
        now_value=k1 / n1,
        delta=delta,
        ci=(low, high),
        p_value=p_value,
        regressed=high < -tolerance,
        n_units=min(n1, n2),
        unit="cases",
        tolerance=tolerance,
        note=f"independent proportions over {n1} and {n2} cases (Newcombe)",
    )


# ------------------------------------------------------------------- records and files


def pair_predictions(now: Mapping[str, Any], base: Mapping[str, Any]) -> tuple[PairedSample, list[str]]:
    """Both cells' predictions on the items they share (same id and same truth), and notes.

    An item whose truth differs between the runs is not the same stimulus any more (the data
    changed): comparing its predictions would measure the data, not the model.
    """
    base_by_item = {p["item"]: p for p in base["predictions"]}
    truth, a, b, groups = [], [], [], []
    changed = 0
    for p in now["predictions"]:
        q = base_by_item.get(p["item"])
        if q is None:
            continue
        if abs(float(p["truth"]) - float(q["truth"])) > _TRUTH_ATOL:
            changed += 1
            continue
        truth.append(float(p["truth"]))
        a.append(float(p["predicted"]))
        b.append(float(q["predicted"]))
        groups.append(str(p["group"]))
    notes = []
    if changed:
        notes.append(f"{changed} item(s) left out: their ground truth differs from the baseline's")
    only = len(now["predictions"]) + len(base["predictions"]) - 2 * (len(truth) + changed)
    if only:
        notes.append(f"{only} item(s) judged in only one of the runs left out")
    metric = now["metrics"].get(now["primary_metric"]) or {}
    local = metric.get("aggregation") == "local_mean"
    sample = PairedSample(
        np.asarray(truth, dtype=np.float64),
        np.asarray(a, dtype=np.float64),
        np.asarray(b, dtype=np.float64),
        np.asarray(groups, dtype=np.str_) if local else None,
    )
    return sample, notes


def compare_cells(
    now: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    *,
    tolerance: float,
    seed: int,
    n_resamples: int = N_RESAMPLES,
) -> Comparison:
    """Compare a cell record with its baseline record (None: the baseline lacks the cell)."""
    name = str(now.get("primary_metric") or "")
    if base is None:
        return _untestable(name, tolerance, 0, "items", "the baseline has no such cell", "no baseline")
    if base.get("primary_metric") != name:
        return _untestable(
            name,
            tolerance,
            0,
            "items",
            f"the primary metric changed from {base.get('primary_metric')!r} to {name!r}",
            "not comparable",
        )
    if name in RATES:
        now_metric, base_metric = now["metrics"].get(name) or {}, base["metrics"].get(name) or {}
        return compare_rates(name, now_metric, base_metric, tolerance=tolerance)
    if name not in KERNELS:
        return _untestable(
            name,
            tolerance,
            0,
            "items",
            f"primary metric {name!r} cannot be recomputed from predictions",
            "not comparable",
        )
    sample, notes = pair_predictions(now, base)
    if base["id"] != now["id"]:
        notes.insert(0, f"best system changed: baseline {base['protocol']}/{base['strategy']}")
    result = paired_bootstrap(name, sample, tolerance=tolerance, seed=seed, n_resamples=n_resamples)
    return replace(result, note="; ".join(filter(None, [result.note, *notes])))


class Baseline:
    """A previous run's report, indexed for lookups by cell."""

    def __init__(self, cells: Sequence[Mapping[str, Any]], source: str) -> None:
        self.cells = index_cells(cells)
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BaselineError(f"{path}: baseline not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BaselineError(f"{path}: not a JSON report: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise BaselineError(f"{path}: not an iqa-eval report (no 'cells' list)")
        for n, cell in enumerate(data["cells"]):
            if not isinstance(cell, dict) or not {"id", "stage", "predictions", "metrics"} <= set(cell):
                raise BaselineError(f"{path}: cell #{n} lacks id, stage, metrics or predictions")
        return cls(data["cells"], str(path))

    def find(self, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self.cells.get(cell_key(record))
