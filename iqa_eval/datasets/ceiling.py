"""The human-noise ceiling: the SRCC a perfect observer could reach against a published MOS.

A published MOS is the mean of n ratings, so it carries sampling noise of about σ/√n (σ the
std of the individual ratings). Even an observer who knew every image's true mean quality would
not rank the items exactly as the noisy published means do. The model simulated here treats
the published MOS q_i as the true mean and draws what another panel of the same size would
publish, q_i + ε_i with ε_i ~ N(0, σ_i²/n_i) (the normal limit of a mean of n_i ratings), then
correlates the draws with q by SRCC and averages over draws; the interval is the 2.5 and 97.5
percentiles over draws. A model's SRCC near this value leaves nothing to gain on the subset.

Items need a rating std and a rating count (meta ``n_ratings``, from the dataset's published
vote counts or design); without both the ceiling is unknown and the function returns None.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from iqa_eval.metrics import KERNELS, Estimate
from iqa_eval.types import Item

DRAWS = 400
MODEL_NOTE = "simulated: published MOS + N(0, std^2 / n_ratings), SRCC against the published MOS"


def noise_ceiling(
    items: Sequence[Item], seed: int, *, local: bool = False, draws: int = DRAWS
) -> Estimate | None:
    """The ceiling on ``items`` (globally, or as a mean over groups with ``local``); None when
    the items publish no std or no rating count, or too few items vary to rank."""
    if draws < 1:
        raise ValueError("draws must be at least 1")
    errors: list[float] = []
    for item in items:
        count = item.meta_dict().get("n_ratings")
        if item.std is None or not isinstance(count, int) or count < 1:
            return None
        errors.append(item.std / np.sqrt(count))
    truth = np.array([item.quality for item in items], dtype=np.float64)
    noise = np.random.default_rng(seed).standard_normal((draws, truth.size)) * np.asarray(errors)
    observed = truth[None, :] + noise
    labels = [item.group for item in items] if local else ["" for _ in items]
    per_group: list[NDArray[np.float64]] = []
    for group in sorted(set(labels)):
        member = np.array([label == group for label in labels])
        if member.sum() >= 2 and np.ptp(truth[member]) > 0:
            rows = observed[:, member]
            per_group.append(KERNELS["srcc"].rows(rows, np.broadcast_to(truth[member], rows.shape)))
    if not per_group:
        return None
    samples = np.mean(per_group, axis=0)
    low, high = np.quantile(samples, [0.025, 0.975])
    return Estimate(
        value=float(samples.mean()),
        low=float(low),
        high=float(high),
        n=len(per_group) if local else truth.size,
        aggregation="local_mean" if local else "global",
        note=f"{MODEL_NOTE}; {draws} draws",
    )
