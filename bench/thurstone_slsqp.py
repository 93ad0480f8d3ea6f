"""Baseline: the original study's way of fitting the Case V MAP scale, for benchmarking only.

Same objective as iqa_eval.protocols.scaling.thurstone_map, solved the way the study did:
SLSQP with the sum-to-zero equality constraint, a zero start and no analytic gradient, so
every gradient costs one objective evaluation per item. Kept out of the library on purpose.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import log_ndtr


def thurstone_slsqp(counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Scores in [0, 100] from a count matrix (C[i, j] = times i beat j)."""
    matrix = np.asarray(counts, dtype=np.float64)
    n_items = matrix.shape[0]

    def negative_log_posterior(s: npt.NDArray[np.float64]) -> float:
        difference = s[:, None] - s[None, :]
        return float(0.5 * (s @ s) - np.sum(matrix * log_ndtr(difference)))

    result = minimize(
        negative_log_posterior,
        np.zeros(n_items),
        method="SLSQP",
        constraints=[{"type": "eq", "fun": np.sum}],
    )
    latent = np.asarray(result.x, dtype=np.float64)
    return np.asarray(100.0 * (latent - latent.min()) / np.ptp(latent), dtype=np.float64)
