"""Stage 2: the difficult subset, picked greedily by difficulty plus semantic novelty."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from iqa_eval.images import load_rgb
from iqa_eval.sampling import SelectionError
from iqa_eval.sampling.features import FeatureExtractor
from iqa_eval.sampling.proxies import Proxy, ProxyFit, map_to_mos
from iqa_eval.sampling.uniform import FR_PER_REFERENCE, NR_SAMPLE
from iqa_eval.types import Item, Setting

LAMBDA = 0.01
"""Weight of semantic diversity against difficulty (the study's value)."""

Pixels = NDArray[np.uint8]
Floats = NDArray[np.float64]


def minmax(values: npt.ArrayLike) -> Floats:
    """Values mapped onto [0, 1]; a constant vector maps to zeros (it carries no spread)."""
    x = np.asarray(values, dtype=np.float64)
    span = float(x.max() - x.min()) if x.size else 0.0
    return np.zeros_like(x) if span == 0 else np.asarray((x - x.min()) / span, dtype=np.float64)


def difficulty(predicted: npt.ArrayLike, truth: npt.ArrayLike, std: npt.ArrayLike) -> Floats:
    """d = (q̂ − q)² / (σ² + 1): large where the proxies are wrong and people agreed."""
    q_hat, q, sigma = (np.asarray(a, dtype=np.float64) for a in (predicted, truth, std))
    return np.asarray((q_hat - q) ** 2 / (sigma**2 + 1.0), dtype=np.float64)


def greedy_diverse(
    difficulties: npt.ArrayLike, features: npt.ArrayLike, n: int, lam: float = LAMBDA
) -> list[int]:
    """Indices picked one by one by argmax d + λ·v(S); ties go to the lower index.

    ``features`` rows must have unit length; v = 1 − cos(φ_i, mean of the picked φ), and 1
    while nothing is picked or the picked features cancel out.
    """
    d = np.asarray(difficulties, dtype=np.float64)
    phi = np.asarray(features, dtype=np.float64)
    if phi.shape[0] != d.size:
        raise SelectionError(f"{d.size} difficulties but {phi.shape[0]} feature rows")
    available = np.ones(d.size, dtype=bool)
    total = np.zeros(phi.shape[1])
    chosen: list[int] = []
    for _ in range(min(n, d.size)):
        norm = float(np.linalg.norm(total))
        diversity = np.ones(d.size) if norm == 0 else 1.0 - phi @ (total / norm)
        score = np.where(available, d + lam * diversity, -np.inf)
        pick = int(np.argmax(score))
        chosen.append(pick)
        available[pick] = False
        total += phi[pick]
    return chosen


@dataclass(frozen=True)
class Selection:
    """A difficult subset and what produced it, in pick order."""

    item_ids: tuple[str, ...]
    difficulty: tuple[float, ...]
    groups: tuple[str, ...]
    fits: tuple[ProxyFit, ...]
    features: str
    candidates: int


Loader = Callable[[str], Pixels]


def select_difficult(
    items: Sequence[Item],
    setting: Setting,
    *,
    proxies: Sequence[Proxy],
    features: FeatureExtractor,
    n: int = NR_SAMPLE,
    lam: float = LAMBDA,
    load: Loader = load_rgb,
    workers: int | None = None,
) -> Selection:
    """The study's difficult sample of ``items`` (all candidates; subsample beforehand to cap
    the cost). Measuring is the expensive part (every candidate decoded and measured), so it
    runs on a few threads: the measures are numpy work that releases the GIL."""
    if not proxies:
        raise SelectionError("difficult selection needs at least one proxy")
    if n < 1:
        raise SelectionError(f"n must be at least 1, got {n}")
    ordered = sorted(items, key=lambda i: i.id)
    if not ordered:
        raise SelectionError("no items to select from")
    threads = workers or min(4, os.cpu_count() or 1)
    q = minmax([i.quality for i in ordered])
    sigma = minmax(_stds(ordered))

    def measure(item: Item) -> tuple[list[float], Floats | None]:
        reference = load(item.reference.path) if setting == "fr" and item.reference is not None else None
        image = load(item.image.path)
        values = []
        for proxy in proxies:
            try:
                values.append(float(proxy(item, reference, image)))
            except SelectionError:
                raise
            except (ValueError, ArithmeticError) as err:
                raise SelectionError(f"{item.id}: proxy {proxy.name} failed: {err}") from None
        if not all(math.isfinite(v) for v in values):
            raise SelectionError(f"{item.id}: a proxy gave a non-finite value {values}")
        return values, (features([image])[0] if setting == "nr" else None)

    with ThreadPoolExecutor(threads) as pool:
        measured = list(pool.map(measure, ordered))
    raw = np.array([values for values, _ in measured], dtype=np.float64)
    mapped = [map_to_mos(raw[:, j], q, p.name, p.higher_is_better) for j, p in enumerate(proxies)]
    q_hat = np.mean([m[0] for m in mapped], axis=0)
    d = difficulty(q_hat, q, sigma)
    fits = tuple(m[1] for m in mapped)
    if setting == "nr":
        phi = np.array([f for _, f in measured], dtype=np.float64)
        picks = greedy_diverse(d, phi, n, lam)
        return Selection(
            tuple(ordered[i].id for i in picks),
            tuple(float(d[i]) for i in picks),
            tuple(ordered[i].group for i in picks),
            fits,
            features.name,
            len(ordered),
        )
    return _select_fr(ordered, d, fits, features, n, lam, load, threads)


def _stds(items: Sequence[Item]) -> list[float]:
    given = [i.std for i in items if i.std is not None]
    if not given:
        return [0.0] * len(items)
    if len(given) != len(items):
        raise SelectionError("some items have a rating std and others not; cannot normalise σ")
    return [float(s) for s in given]


def _select_fr(
    ordered: Sequence[Item],
    d: Floats,
    fits: tuple[ProxyFit, ...],
    features: FeatureExtractor,
    n: int,
    lam: float,
    load: Loader,
    threads: int,
) -> Selection:
    """References first (mean difficulty + λ·v over reference features), then the most
    difficult images of each. A group's reference feature is that of its first item's
    reference, which is every item's reference in datasets with one per group."""
    members: dict[str, list[int]] = {}
    for index, item in enumerate(ordered):
        members.setdefault(item.group, []).append(index)
    groups = sorted(members)
    group_d = np.array([d[members[g]].mean() for g in groups])

    def reference_feature(group: str) -> Floats:
        reference = ordered[members[group][0]].reference
        if reference is None:
            raise SelectionError(
                f"{ordered[members[group][0]].id}: a full-reference item without a reference"
            )
        return np.asarray(features([load(reference.path)])[0], dtype=np.float64)

    with ThreadPoolExecutor(threads) as pool:
        phi = np.array(list(pool.map(reference_feature, groups)), dtype=np.float64)
    n_groups = max(1, round(n / FR_PER_REFERENCE))
    picked_ids: list[str] = []
    picked_d: list[float] = []
    picked_groups: list[str] = []
    for g in greedy_diverse(group_d, phi, n_groups, lam):
        inside = sorted(members[groups[g]], key=lambda i: (-d[i], ordered[i].id))[:FR_PER_REFERENCE]
        picked_ids.extend(ordered[i].id for i in inside)
        picked_d.extend(float(d[i]) for i in inside)
        picked_groups.extend(groups[g] for _ in inside)
    return Selection(
        tuple(picked_ids), tuple(picked_d), tuple(picked_groups), fits, features.name, len(ordered)
    )
