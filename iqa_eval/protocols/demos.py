"""In-context demonstrations whose written label is true of the images shown.

The demonstration is drawn from the dataset's demonstration pool, which never overlaps the test
items, and from a single comparability group, so that the order or label it claims holds by the
dataset's own ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

from iqa_eval.protocols.base import Demonstration
from iqa_eval.types import Item, Protocol

PAPER_SS_LABEL = "50"


def _best_group(pool: Sequence[Item], size: int) -> list[Item]:
    """The group with the most distinct quality levels (ties: first in dataset order), sorted worst→best."""
    groups: dict[str, list[Item]] = {}
    for item in pool:
        groups.setdefault(item.group, []).append(item)
    usable = [g for g in groups.values() if len({i.quality for i in g}) >= size]
    if not usable:
        raise ValueError(
            f"no demonstration group with {size} distinct quality levels in a pool of {len(pool)} items"
        )
    best = max(usable, key=lambda g: len({i.quality for i in g}))
    return sorted(best, key=lambda i: (i.quality, i.id))


def _spread(ordered: list[Item], k: int) -> list[Item]:
    """k items of strictly increasing quality, spread over the ladder."""
    distinct: dict[float, Item] = {}
    for item in ordered:
        distinct.setdefault(item.quality, item)
    levels = list(distinct.values())
    step = (len(levels) - 1) / (k - 1)
    return [levels[round(j * step)] for j in range(k)]


def demonstration(
    protocol: Protocol,
    pool: Sequence[Item],
    quality_range: tuple[float, float],
    paper: bool = False,
) -> Demonstration:
    """SS: a mid-quality item labelled with its own normalised score (the study's fixed 50 in
    ``paper`` mode); DS: a pair whose first image is better; MS: four items worst to best."""
    if protocol == "ss":
        ordered = _best_group(pool, 1)
        lo, hi = quality_range
        item = min(ordered, key=lambda i: (abs(i.quality - (lo + hi) / 2), i.id))
        label = PAPER_SS_LABEL if paper else f"{round(100 * (item.quality - lo) / (hi - lo))}"
        return Demonstration((item,), label)
    if protocol == "ds":
        worst, _, best = _spread(_best_group(pool, 3), 3)
        return Demonstration((best, worst))
    ascending = _spread(_best_group(pool, 4), 4)
    return Demonstration(tuple(ascending))
