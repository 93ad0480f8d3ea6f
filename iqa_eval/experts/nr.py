"""No-reference measures: single properties of one image that distortions push one way.

Each takes an H x W x 3 uint8 RGB array and returns a float in the measure's own units. None
of them is a quality model alone (a foggy landscape is soft, a grey street is dull); the panel
combines the ones that track distortion rather than content.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from iqa_eval.experts.fr import luminance

Rgb = NDArray[np.uint8]

JPEG_BLOCK = 8
_STEP_FLOOR = 0.1
_LAPLACIAN_NOISE_GAIN = 20.0  # sum of the squared taps of the 5-point Laplacian: 4 * 1 + (-4)^2

_MAD_TO_SIGMA = 0.6745
"""Median absolute deviation of a unit normal: turns a robust spread into a standard deviation."""


def sharpness(rgb: Rgb) -> float:
    """Variance of the Laplacian of luminance (Pech-Pacheco et al. 2000) less the part due to noise.

    Blur removes exactly the high frequencies the Laplacian responds to, so its energy falls
    steeply with blur; higher is sharper. White noise of standard deviation s adds 20 s^2 to it
    (the squared taps of the 5-point kernel sum to 20), which would make a noisy image the
    "sharpest"; that share is subtracted using the noise estimate, so this tracks edges only.
    """
    y = luminance(rgb)
    edges_and_noise = float(np.var(ndimage.laplace(y, mode="reflect")))
    return max(edges_and_noise - _LAPLACIAN_NOISE_GAIN * noise_sigma(rgb) ** 2, 0.0)


def noise_sigma(rgb: Rgb) -> float:
    """Estimated standard deviation of additive noise in luminance, 0..255 units.

    Donoho's estimator: the median absolute finest-scale diagonal wavelet coefficient over
    0.6745, the estimator behind skimage.restoration.estimate_sigma. That function needs
    PyWavelets, which the suite does not depend on, so it is written out here with the Haar
    wavelet, whose finest diagonal coefficient is a signed 2x2 difference. The diagonal detail
    of natural images is sparse, so the median sees mostly noise; lower is better.
    """
    y = luminance(rgb)
    h, w = y.shape[0] // 2 * 2, y.shape[1] // 2 * 2
    y = y[:h, :w]
    diagonal = 0.5 * (y[0::2, 0::2] - y[0::2, 1::2] - y[1::2, 0::2] + y[1::2, 1::2])
    return float(np.median(np.abs(diagonal)) / _MAD_TO_SIGMA)


def colourfulness(rgb: Rgb) -> float:
    """Hasler & Süsstrunk (2003) metric M3 in opponent space, on 0..255 RGB.

    The spread of the opponent colours plus a small weight on their mean: the paper's best
    single-number fit to observers' colourfulness ratings (about 0 grey, over 100 extremely
    colourful).
    """
    r, g, b = (np.asarray(rgb[..., c], dtype=np.float64) for c in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = np.hypot(np.std(rg), np.std(yb))
    centre = np.hypot(np.mean(rg), np.mean(yb))
    return float(spread + 0.3 * centre)


def blockiness(rgb: Rgb) -> float:
    """Ratio of luminance steps across 8 px block boundaries to steps inside blocks.

    Block-based coding (JPEG, MPEG) quantises each 8x8 block on its own, so at low quality the
    steps on the block grid outgrow the steps elsewhere. Natural images have no preferred grid:
    about 1. The grid is assumed to start at the top-left pixel, as it does in any image that
    was not cropped after coding.
    """
    y = luminance(rgb)
    across: list[NDArray[np.float64]] = []
    within: list[NDArray[np.float64]] = []
    for steps in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        # steps[:, k] is the jump between columns k and k+1: a boundary when k+1 is a multiple of 8.
        on_grid = (np.arange(steps.shape[1]) + 1) % JPEG_BLOCK == 0
        across.append(steps[:, on_grid].ravel())
        within.append(steps[:, ~on_grid].ravel())
    inside = float(np.mean(np.concatenate(within)))
    boundary = float(np.mean(np.concatenate(across)))
    # A tenth of a grey level, far below a visible step, keeps the ratio finite when blocks are
    # flat inside: a flat image gives 1, flat blocks with steps between them a large value.
    return (boundary + _STEP_FLOOR) / (inside + _STEP_FLOOR)
