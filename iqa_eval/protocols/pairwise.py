"""What the comparison methods (DS, MS) share: Thurstone scales per group and their metrics.

Comparisons only tie items together inside a comparison graph, so in FR (and in any dataset
whose scores are comparable only inside a group) one scale is solved per group and metrics are
local means; a global dataset gets one scale over all items. Items that no valid judgement
compared keep the prior mean by construction and are left out of every metric, with a note.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iqa_eval.metrics import estimate_correlation
from iqa_eval.protocols.base import metric_value
from iqa_eval.protocols.scaling import count_matrix, soft_count_matrix, thurstone_map
from iqa_eval.types import Item, MetricValue, Prediction

# (winner-or-first item id, other item id, code): 1 first better, 0 second better, 2 tie.
Outcome = tuple[str, str, int]
# (first item id, second item id, p): the probability that the first is the better one.
Preference = tuple[str, str, float]


def scale(
    items: Sequence[Item],
    outcomes: Sequence[Outcome] | Sequence[Preference],
    local: bool,
    *,
    soft: bool = False,
) -> tuple[dict[str, float], list[str]]:
    """Thurstone MAP scores (0–100) per compared item, and notes on what was left out.

    ``soft`` outcomes are preferences (a weighted comparison each, see ``soft_count_matrix``);
    otherwise they are codes."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group if local else "", []).append(item)
    group_of = {item.id: (item.group if local else "") for item in items}
    by_group: dict[str, list[tuple[str, str, float]]] = {}
    for a, b, code in outcomes:
        by_group.setdefault(group_of[a], []).append((a, b, code))
    scores: dict[str, float] = {}
    uncompared = split = 0
    unconverged = 0
    for name, members in groups.items():
        index = {item.id: k for k, item in enumerate(members)}
        triples = [(index[a], index[b], code) for a, b, code in by_group.get(name, [])]
        if soft:
            solved = thurstone_map(soft_count_matrix(len(members), triples))
        else:
            solved = thurstone_map(count_matrix(len(members), [(a, b, int(c)) for a, b, c in triples]))
        uncompared += len(solved.uncompared)
        split += solved.components > 1
        unconverged += not solved.converged
        left_out = set(solved.uncompared)
        scores.update({m.id: float(solved.scores[k]) for k, m in enumerate(members) if k not in left_out})
    notes = []
    if uncompared:
        notes.append(f"{uncompared} item(s) had no valid comparison and are left out of the scale metrics")
    if split:
        notes.append(
            f"{split} comparison graph(s) fall into disconnected parts, tied together only by the prior"
        )
    if unconverged:
        notes.append(f"{unconverged} Thurstone solve(s) did not reach the gradient tolerance")
    return scores, notes


def scale_metrics(
    items: Sequence[Item], scores: dict[str, float], local: bool, seed: int, n_resamples: int
) -> tuple[dict[str, MetricValue], tuple[Prediction, ...]]:
    """SRCC and PLCC of the scale against the truth."""
    scored = [item for item in items if item.id in scores]
    predicted = [scores[item.id] for item in scored]
    truth = [item.quality for item in scored]
    groups = [item.group for item in scored] if local else None
    metrics = {
        name: metric_value(
            estimate_correlation(name, predicted, truth, groups, seed=seed, n_resamples=n_resamples)
        )
        for name in ("srcc", "plcc")
    }
    predictions = tuple(Prediction(i.id, i.quality, scores[i.id], i.group) for i in scored)
    return metrics, predictions


POSITION_BALANCE_NOTE = (
    "1 = no position preference, 0 = always the same position; "
    "1 - |share answering first - share answering second|, the 2AFC study's position bias P_b"
)


def position_balance(codes: Sequence[int], seed: int, n_resamples: int) -> MetricValue:
    """The 2AFC study's position-bias measure P_b, under a name that reads the right way.

    The study calls it bias, but it is 1 when a model has no preference for a position, so a
    reader of "bias 1.000" concluded the opposite; the note carries the direction and the
    study's name into every report.
    """
    signed = np.array([1.0 if c == 1 else -1.0 if c == 0 else 0.0 for c in codes])
    if signed.size == 0:
        return MetricValue(None, None, None, 0, "rate", f"no valid answers; {POSITION_BALANCE_NOTE}")
    value = 1.0 - abs(float(signed.mean()))
    rng = np.random.default_rng(seed)
    samples = 1.0 - np.abs(signed[rng.integers(0, signed.size, (n_resamples, signed.size))].mean(axis=1))
    low, high = np.quantile(samples, [0.025, 0.975])
    return MetricValue(value, float(low), float(high), int(signed.size), "rate", POSITION_BALANCE_NOTE)


def mean_with_ci(values: Sequence[float], seed: int, n_resamples: int, note: str = "") -> MetricValue:
    """Mean of per-unit values with a percentile bootstrap interval over units."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return MetricValue(None, None, None, 0, "mean", note or "no units")
    rng = np.random.default_rng(seed)
    samples = arr[rng.integers(0, arr.size, (n_resamples, arr.size))].mean(axis=1)
    low, high = np.quantile(samples, [0.025, 0.975])
    return MetricValue(float(arr.mean()), float(low), float(high), int(arr.size), "mean", note)


def partners(item: Item, items: Sequence[Item], same_group: bool) -> list[Item]:
    """Items a comparison with ``item`` is meaningful for: its group, or all when scores are global."""
    return [o for o in items if o.id != item.id and (not same_group or o.group == item.group)]
