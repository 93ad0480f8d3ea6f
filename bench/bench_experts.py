"""Expert metrics on 384x384 RGB against scikit-image's implementations, in the same run.

Run: python bench/bench_experts.py
Prints, per metric, our time, the baseline's time, their ratio, and the largest difference of
values over a set of distorted pairs. Baselines: skimage.metrics.structural_similarity (gaussian
weights, population covariance, the Wang et al. recipe) on luminance; skimage.color.deltaE_ciede2000 on
rgb2lab for CIEDE2000. MS-SSIM and GMSD have no scikit-image implementation: they are timed
alone (their values are checked against direct transcriptions in tests/test_experts_fr.py).

The suite measures with glibc's thresholds raised (``iqa_eval.experts.allocator``): the FR
panel's whole measurement of a pair (registration, then every member) is timed first with the
allocator as the process started, then with the thresholds raised, and every row after that runs
as the suite does, ours and scikit-image's alike.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skimage import color, data, metrics
from skimage.transform import resize

from iqa_eval.distortions import distort
from iqa_eval.experts import fr
from iqa_eval.experts.allocator import keep_freed_buffers
from iqa_eval.experts.panel import PANELS, measure

SIZE = 384
REPEAT = 15


def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for image in (data.astronaut(), data.chelsea(), data.coffee()):
        ref = (resize(image, (SIZE, SIZE), anti_aliasing=True) * 255).round().astype(np.uint8)
        for kind in ("blur", "noise", "jpeg", "hue"):
            out.append((ref, distort(ref, kind, 3, seed=1)))
    return out


def sk_ssim_lum(x: np.ndarray, y: np.ndarray, full: bool = False) -> tuple[float, np.ndarray] | float:
    return metrics.structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0, full=full
    )


def sk_ssim(ref: np.ndarray, dist: np.ndarray) -> float:
    return float(sk_ssim_lum(fr.luminance(ref), fr.luminance(dist)))  # type: ignore[arg-type]


def sk_ciede(ref: np.ndarray, dist: np.ndarray) -> float:
    return float(np.mean(color.deltaE_ciede2000(color.rgb2lab(ref), color.rgb2lab(dist))))


def fr_panel(ref: np.ndarray, dist: np.ndarray) -> float:
    return sum(measure(PANELS["fr"], ref, dist, registered=True).values())


def timed(
    fn: Callable[[np.ndarray, np.ndarray], float], work: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, list[float]]:
    values = [fn(a, b) for a, b in work]  # warm-up, and the values to compare
    start = time.perf_counter()
    for _ in range(REPEAT):
        for a, b in work:
            fn(a, b)
    return (time.perf_counter() - start) / (REPEAT * len(work)), values


def main() -> None:
    work = pairs()
    rows = [
        ("SSIM", fr.ssim, sk_ssim),
        ("MS-SSIM", fr.ms_ssim, None),
        ("CIEDE2000", fr.ciede2000, sk_ciede),
        ("GMSD", fr.gmsd, None),
    ]
    print(f"{len(work)} pairs of {SIZE}x{SIZE} RGB, {REPEAT} repeats; times per pair")
    shifted = [(np.roll(a, (3, -2), axis=(0, 1)), b) for a, b in work]
    t_default, _ = timed(fr_panel, shifted)
    kept = keep_freed_buffers()
    t_kept, _ = timed(fr_panel, shifted)
    print(
        f"FR panel per pair: {1e3 * t_default:.2f} ms with the allocator as started, {1e3 * t_kept:.2f} ms "
        f"with freed buffers kept ({'applied' if kept else 'not glibc: unchanged'}): "
        f"{t_default / t_kept:.2f}x"
    )
    print(f"{'metric':<10} {'ours ms':>8} {'skimage ms':>11} {'ratio':>6} {'max |diff|':>11}")
    for name, ours, baseline in rows:
        t_ours, v_ours = timed(ours, work)
        if baseline is None:
            print(f"{name:<10} {1e3 * t_ours:8.2f} {'-':>11} {'-':>6} {'-':>11}  (none in skimage)")
            continue
        t_base, v_base = timed(baseline, work)
        diff = max(abs(a - b) for a, b in zip(v_ours, v_base, strict=True))
        print(f"{name:<10} {1e3 * t_ours:8.2f} {1e3 * t_base:11.2f} {t_base / t_ours:6.2f} {diff:11.2e}")


if __name__ == "__main__":
    main()
