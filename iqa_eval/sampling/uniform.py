"""Stage 1: a sample that keeps the spread of quality, evenly spaced by rank (in FR: references
by their mean quality, then images inside each)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iqa_eval.types import Item

NR_SAMPLE = 150
FR_REFERENCES = 15
FR_PER_REFERENCE = 10


def evenly_by_rank(items: Sequence[Item], n: int) -> list[Item]:
    """``n`` items at evenly spaced quality ranks (all of them when there are not more)."""
    ranked = sorted(items, key=lambda i: (i.quality, i.id))
    if len(ranked) <= n:
        return ranked
    picks = np.unique(np.round(np.linspace(0, len(ranked) - 1, n)).astype(int))
    return [ranked[i] for i in picks]


def uniform(items: Sequence[Item], fr: bool) -> tuple[Item, ...]:
    """The stage-1 sample, returned in the dataset's own order so plans stay stable."""
    if len(items) <= FR_REFERENCES * FR_PER_REFERENCE:
        return tuple(items)
    if not fr:
        chosen = evenly_by_rank(items, NR_SAMPLE)
    else:
        by_group: dict[str, list[Item]] = {}
        for item in items:
            by_group.setdefault(item.group, []).append(item)
        groups = sorted(by_group, key=lambda g: (float(np.mean([i.quality for i in by_group[g]])), g))
        if len(groups) > FR_REFERENCES:
            idx = np.unique(np.round(np.linspace(0, len(groups) - 1, FR_REFERENCES)).astype(int))
            groups = [groups[i] for i in idx]
        chosen = [item for g in groups for item in evenly_by_rank(by_group[g], FR_PER_REFERENCE)]
    keep = {item.id for item in chosen}
    return tuple(item for item in items if item.id in keep)


def finegrained(items: Sequence[Item]) -> tuple[Item, ...]:
    """Each group without its most degraded item: the subtle end of every ladder.

    This is the built-in dataset's stage 2. Difficult-sample selection needs human opinion to
    be hard against: a MOS whose prediction can be wrong and a rating spread that says how sure
    people were. A constructed severity ladder has neither (its order is exact by construction
    and it has no std), so for it the hard part is the small steps: what remains differs by
    smaller steps than the whole group. Groups keep at least four items so every protocol (MS
    needs four) can still run; smaller groups are kept whole.
    """
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    drop = {
        min(members, key=lambda i: (i.quality, i.id)).id for members in groups.values() if len(members) >= 5
    }
    return tuple(item for item in items if item.id not in drop)
