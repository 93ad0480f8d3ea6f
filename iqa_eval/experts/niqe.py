"""NIQE (Mittal, Soundararajan & Bovik 2013): distance of an image's statistics from pristine ones.

Natural, undistorted photographs share regular statistics of their locally normalised (MSCN)
coefficients; blur, noise and compression each bend them away. NIQE fits a multivariate
Gaussian to those statistics on sharp patches of pristine images and reports how far a test
image's patch statistics lie from it. It needs no human scores, which is why it may be trained
here, on images that are never used as test contents.

Features follow the authors' MATLAB code (36 per patch: 18 at full and 18 at half
resolution), except that the MSCN signal is GGD-fitted (shape, variance) as in BRISQUE, borders
are mirrored instead of zero-padded so border patches are not artificially sharp, the half
resolution is a 2x2 block mean, and patches overlap (see STRIDE).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.special import gamma

from iqa_eval.experts.fr import halve, luminance

Floats = NDArray[np.float64]

PATCH = 96
"""Patch side at full resolution, as in the paper; 48 at the second scale."""

STRIDE = 32
"""Patch step. The paper tiles without overlap, which leaves a 256 px image with four patches:
too few for the test image's covariance and, on the small pristine set, for the model's.
Overlapping patches of the same size keep the statistics and multiply the samples."""

SHARP_FRACTION = 0.75
"""Pristine patches kept: those at least this sharp relative to their image's sharpest (paper)."""

PRISTINE_MAX_SIDE = 512
"""Pristine images are block-averaged by the smallest integer factor that brings their short side
to at most this; every source's short side is at least 300 px, so all end between 256 and 512."""

_MSCN_SIGMA = 7.0 / 6.0
_MSCN_RADIUS = 3  # a 7x7 window

_SHAPES = np.arange(0.2, 10.0 + 1e-9, 0.001)
# The moment ratios below are monotone in the shape parameter, so each fit is an interpolation
# on this grid, the same grid as the authors' exhaustive search.
_GGD_RATIO = gamma(1 / _SHAPES) * gamma(3 / _SHAPES) / gamma(2 / _SHAPES) ** 2  # decreasing
_AGGD_RATIO = gamma(2 / _SHAPES) ** 2 / (gamma(1 / _SHAPES) * gamma(3 / _SHAPES))  # increasing

_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))
"""Horizontal, vertical and both diagonal neighbours, for the paired-product statistics."""


@dataclass(frozen=True)
class NiqeModel:
    """The pristine multivariate Gaussian: feature mean and covariance."""

    mean: Floats
    cov: Floats
    n_patches: int


def niqe(rgb: NDArray[np.uint8], model: NiqeModel | None = None) -> float:
    """NIQE of one image (lower is more natural); the default model is fitted once per process."""
    if min(rgb.shape[:2]) < PATCH:
        raise ValueError(
            f"NIQE needs images of at least {PATCH}x{PATCH} px, got {rgb.shape[1]}x{rgb.shape[0]}"
        )
    model = model or default_model()
    features = patch_features(luminance(rgb))
    features = features[np.all(np.isfinite(features), axis=1)]
    if len(features) == 0:
        raise ValueError(
            f"NIQE needs at least one {PATCH}x{PATCH} patch with texture; image {rgb.shape} has none"
        )
    mean = features.mean(axis=0)
    cov = np.cov(features, rowvar=False) if len(features) > 1 else np.zeros_like(model.cov)
    diff = model.mean - mean
    return float(np.sqrt(diff @ np.linalg.pinv((model.cov + cov) / 2) @ diff))


def fit_niqe_model(images: Iterable[NDArray[np.generic]]) -> NiqeModel:
    """Fit the pristine Gaussian on the sharp patches of greyscale or RGB 0..255 images."""
    kept: list[Floats] = []
    for image in images:
        grey = np.asarray(image, dtype=np.float64) if image.ndim == 2 else luminance(image)
        features, patch_sharpness = _features_and_sharpness(grey)
        sharp = patch_sharpness > SHARP_FRACTION * patch_sharpness.max()
        kept.append(features[sharp])
    stacked = np.concatenate(kept)
    stacked = stacked[np.all(np.isfinite(stacked), axis=1)]
    return NiqeModel(mean=stacked.mean(axis=0), cov=np.cov(stacked, rowvar=False), n_patches=len(stacked))


_fit_lock = threading.Lock()


def default_model() -> NiqeModel:
    """The model on the bundled pristine set, fitted on first use.

    The lock makes it once per process even when the first queries of a run arrive on several
    worker threads together; functools.cache alone would let each of them fit its own.
    """
    with _fit_lock:
        return _fit_default()


@cache
def _fit_default() -> NiqeModel:
    return fit_niqe_model(pristine_images())


def pristine_images() -> list[NDArray[np.float64]]:
    """Greyscale pristine set from scikit-image's bundled data, short side brought into 256..512.

    Only images that no dataset of the suite uses as content, so NIQE is never scored on what it
    was fitted on. Downscaling is by an integer block mean, which anti-aliases without adding
    a resampling kernel's own texture.
    """
    from skimage import data

    loaders: list[Callable[[], NDArray[np.uint8]]] = [
        data.camera,
        data.clock,
        data.coins,
        data.moon,
        data.hubble_deep_field,
        data.retina,
        data.immunohistochemistry,
    ]
    stereo: Callable[[], tuple[NDArray[np.uint8], ...]] = data.stereo_motorcycle
    images = []
    for source in [load() for load in loaders] + [stereo()[1]]:
        grey = np.asarray(source, dtype=np.float64) if source.ndim == 2 else luminance(source)
        factor = -(-min(grey.shape) // PRISTINE_MAX_SIDE)
        h, w = grey.shape[0] // factor * factor, grey.shape[1] // factor * factor
        images.append(grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)))
    return images


def patch_features(grey: Floats) -> Floats:
    """36 NIQE features for every 96x96 patch (32 px apart) of a 0..255 greyscale image, one row each."""
    return _features_and_sharpness(grey)[0]


def _features_and_sharpness(grey: Floats) -> tuple[Floats, Floats]:
    """Features per patch and, for the pristine selection, each patch's mean local contrast."""
    mscn, local_sigma = _mscn(grey)
    # Halving the image, patch and stride tiles the same patches in the same order at both scales.
    full = _scale_features(mscn, PATCH, STRIDE)
    half = _scale_features(_mscn(halve(grey))[0], PATCH // 2, STRIDE // 2)
    sharpness = _patch_rows(local_sigma, PATCH, STRIDE).mean(axis=1)
    return np.hstack([full, half]), sharpness


def _mscn(grey: Floats) -> tuple[Floats, Floats]:
    """Mean-subtracted contrast-normalised coefficients and the local standard deviation."""
    taps = np.exp(-0.5 * (np.arange(-_MSCN_RADIUS, _MSCN_RADIUS + 1) / _MSCN_SIGMA) ** 2)
    taps /= taps.sum()

    def smooth(a: Floats) -> Floats:
        rows = ndimage.correlate1d(a, taps, axis=0, mode="reflect")
        both: Floats = ndimage.correlate1d(rows, taps, axis=1, mode="reflect")
        return both

    mu = smooth(grey)
    sigma = np.sqrt(np.abs(smooth(grey * grey) - mu * mu))
    return (grey - mu) / (sigma + 1.0), sigma


def _scale_features(mscn: Floats, size: int, stride: int) -> Floats:
    """18 features per patch at one scale: GGD of MSCN, then AGGD of four neighbour products."""
    columns = list(fit_ggd(_patch_rows(mscn, size, stride)))
    for dy, dx in _NEIGHBOURS:
        # Circular shift as in the reference code; only the last row/column pair wraps.
        product = mscn * np.roll(mscn, (-dy, -dx), axis=(0, 1))
        alpha, left, right = fit_aggd(_patch_rows(product, size, stride))
        mean = (right - left) * gamma(2 / alpha) / gamma(1 / alpha)
        columns += [alpha, mean, left, right]
    return np.stack(columns, axis=1)


def fit_ggd(samples: Floats) -> tuple[Floats, Floats]:
    """Shape and variance of a zero-mean generalised Gaussian, per row, by moment matching.

    E[x^2] / E[|x|]^2 equals Γ(1/α)Γ(3/α)/Γ(2/α)^2 for a GGD of shape α, a function of the shape
    alone, so inverting it on the sample ratio gives the shape (Sharifi & Leon-Garcia 1995).
    """
    x = np.atleast_2d(samples)
    second = np.mean(x * x, axis=1)
    ratio = second / np.mean(np.abs(x), axis=1) ** 2
    # np.interp needs increasing abscissae: walk the decreasing ratio curve backwards.
    shape = np.interp(ratio, _GGD_RATIO[::-1], _SHAPES[::-1])
    return shape, second


def fit_aggd(samples: Floats) -> tuple[Floats, Floats, Floats]:
    """Shape and left/right scales of an asymmetric generalised Gaussian, per row.

    Lasmar et al. (2009)'s moment matching, as in the NIQE and BRISQUE code: the two half
    variances give the asymmetry, which corrects the symmetric moment ratio before inversion.
    """
    x = np.atleast_2d(samples)
    negative, positive = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.sum(np.where(negative, x * x, 0), axis=1) / np.sum(negative, axis=1))
        right_std = np.sqrt(np.sum(np.where(positive, x * x, 0), axis=1) / np.sum(positive, axis=1))
        g = left_std / right_std
        r_hat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(x * x, axis=1)
        r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    shape = np.interp(r_norm, _AGGD_RATIO, _SHAPES)
    shape[~np.isfinite(r_norm)] = np.nan
    to_scale = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    return shape, left_std * to_scale, right_std * to_scale


def _patch_rows(a: Floats, size: int, stride: int) -> Floats:
    """Every size x size patch at the given stride, flattened to one row each (a view, no copy)."""
    windows = np.lib.stride_tricks.sliding_window_view(a, (size, size))[::stride, ::stride]
    return windows.reshape(-1, size * size)
