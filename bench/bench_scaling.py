"""Time the analytic-gradient MAP scale against the study's SLSQP fit, then at full scale.

Run as `python bench/bench_scaling.py` from anywhere; it needs no installation.
"""

from __future__ import annotations

import sys
import time
import timeit
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from thurstone_slsqp import thurstone_slsqp  # noqa: E402

from iqa_eval.metrics import srcc  # noqa: E402
from iqa_eval.protocols.scaling import Scale, count_matrix, thurstone_map  # noqa: E402

SEED = 20
NOISE = 1.0  # Case V: unit observer noise on the latent scale


def simulate_counts(n_items: int, n_comparisons: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Item k is the first image of comparisons k, k + n, k + 2n, ... with random partners,
    judged by a Thurstone observer on a standard normal latent scale."""
    latent = rng.normal(size=n_items)
    first = np.arange(n_comparisons) % n_items
    partner = (first + rng.integers(1, n_items, size=n_comparisons)) % n_items
    first_wins = latent[first] - latent[partner] + NOISE * rng.normal(size=n_comparisons) > 0
    outcomes = zip(first.tolist(), partner.tolist(), first_wins.astype(int).tolist(), strict=True)
    return count_matrix(n_items, outcomes)


def seconds_per_call(fn: timeit.Timer) -> float:
    number, total = fn.autorange()
    return total / number


def solver_summary(scale: Scale) -> str:
    return f"{scale.iterations} iterations, converged={scale.converged}"


def compare_with_slsqp(rng: np.random.Generator) -> None:
    counts = simulate_counts(150, 750, rng)
    fast = seconds_per_call(timeit.Timer(lambda: thurstone_map(counts)))
    start = time.perf_counter()
    baseline = thurstone_slsqp(counts.astype(np.float64))
    slow = time.perf_counter() - start
    scale = thurstone_map(counts)
    print("150 items, 750 comparisons")
    print(f"  thurstone_map   {fast * 1e3:9.2f} ms  ({solver_summary(scale)})")
    print(f"  SLSQP baseline  {slow * 1e3:9.2f} ms")
    print(f"  speed ratio     {slow / fast:9.0f}x")
    print(f"  SRCC(map, SLSQP) = {srcc(scale.scores, baseline):.6f}")


def full_scale(rng: np.random.Generator) -> None:
    start = time.perf_counter()
    counts = simulate_counts(10_125, 50_000, rng)
    built = time.perf_counter()
    scale = thurstone_map(counts)
    solved = time.perf_counter()
    print("10,125 items, 50,000 comparisons")
    print(f"  count_matrix    {built - start:9.2f} s  (dense {counts.nbytes / 2**20:.0f} MiB)")
    print(f"  thurstone_map   {solved - built:9.2f} s  ({solver_summary(scale)})")
    print(f"  uncompared {len(scale.uncompared)}, components {scale.components}")


def main() -> None:
    rng = np.random.default_rng(SEED)
    compare_with_slsqp(rng)
    full_scale(rng)


if __name__ == "__main__":
    main()
