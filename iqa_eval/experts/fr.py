"""Full-reference measures: how far a distorted image is from its reference.

Every measure takes the reference first and the distorted image second, both H x W x 3 uint8
RGB of the same shape, and returns a plain float in the measure's own published units, so a
reader can check any value against the paper or another implementation. Mapping to a common
quality scale is the panel's job, not this module's. ``register`` lives here too because it
exists only to make full-reference comparisons fair to a slightly misaligned reference.

Structure measures (SSIM, MS-SSIM, GMSD) work on BT.601 luminance in 0..255, the grey the
original papers and their reference MATLAB code use, so published constants (C1, C2, GMSD's
c = 170) keep their meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage import color, filters, metrics, transform

Rgb = NDArray[np.uint8]
Grey = NDArray[np.float64]
Matrix = NDArray[np.float64]

# scikit-image ships no type hints; these typed names are the whole boundary to it.
_rgb2lab: Callable[[Rgb], Grey] = color.rgb2lab
_delta_e: Callable[[Grey, Grey], Grey] = color.deltaE_ciede2000
_window: Callable[[str, tuple[int, ...]], Grey] = filters.window
_psnr: Callable[..., float] = metrics.peak_signal_noise_ratio
_warp: Callable[..., Grey] = transform.warp
_warp_polar: Callable[..., Grey] = transform.warp_polar

PSNR_CAP_DB = 100.0
"""PSNR reported for identical images: a finite stand-in for infinity keeps means and maps sane."""

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_CROP = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
"""Border left out of the SSIM mean: where the 11x11 gaussian window reaches past the image."""
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Wang, Simoncelli & Bovik (2003), fitted to human data: coarse-to-fine emphasis on mid scales."""

GMSD_C = 170.0
"""Xue et al. (2014)'s stabilising constant for 0..255 luminance."""

REGISTRATION_BORDER = 12
"""Pixels cut from every side after registration: the warp fills them by extrapolation."""

_MAX_ANGLE_DEG = 6.0
_MAX_LOG_SCALE = 0.06
_MAX_SHIFT_PX = 8.0
# Twice the misalignment registration is meant to absorb (±3°, ±3 %, ±4 px). A correlation
# peak beyond that is noise or another picture altogether; trusting it would move a
# well-aligned reference, so the pair is compared as given instead.

_SUBPIXEL = 20
_POLAR_ANGLES = 720
_POLAR_RADII = 512


def luminance(rgb: NDArray[np.generic]) -> Grey:
    """BT.601 luma in 0..255, shared by every expert so they all judge the same grey.

    Written as a weighted sum rather than a matrix product so that it stays off BLAS, whose
    threads only fight the worker threads for the cores on an image this small.
    """
    channels = np.asarray(rgb, dtype=np.float64)
    grey: Grey = 0.299 * channels[..., 0] + 0.587 * channels[..., 1] + 0.114 * channels[..., 2]
    return grey


def halve(grey: Grey) -> Grey:
    """2x2 block mean, dropping an odd last row or column: the coarser scale of a multi-scale measure."""
    h, w = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    g = grey[:h, :w]
    coarse: Grey = 0.25 * (g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2])
    return coarse


def psnr(reference: Rgb, distorted: Rgb) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit data, capped so identical images stay finite."""
    _check_pair(reference, distorted)
    if np.array_equal(reference, distorted):
        return PSNR_CAP_DB
    return min(float(_psnr(reference, distorted, data_range=255)), PSNR_CAP_DB)


def ssim(reference: Rgb, distorted: Rgb) -> float:
    """Wang et al. (2004) SSIM on luminance: gaussian window, population covariances."""
    _check_pair(reference, distorted)
    lum, cs = ssim_maps(luminance(reference), luminance(distorted))
    return float(np.mean(lum * cs))


def ssim_maps(x: Grey, y: Grey) -> tuple[Grey, Grey]:
    """The luminance and contrast-structure maps of SSIM, border cropped.

    They are returned apart because MS-SSIM needs the contrast-structure term alone at all but
    the coarsest scale. The arithmetic follows skimage's structural_similarity (same filter,
    mode and crop), so the product's mean equals it.
    """
    if min(x.shape) <= 2 * SSIM_CROP:
        # Nothing would be left after the crop: numpy's mean of an empty map warns and gives nan.
        raise ValueError(
            f"a {x.shape[0]}x{x.shape[1]} image is too small for one SSIM window "
            f"(each side must exceed {2 * SSIM_CROP} px)"
        )

    def blur(a: Grey) -> Grey:
        smooth: Grey = ndimage.gaussian_filter(a, SSIM_SIGMA, mode="reflect", truncate=SSIM_TRUNCATE)
        return smooth

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    lum = (2 * mu_x * mu_y + SSIM_C1) / (mu_x * mu_x + mu_y * mu_y + SSIM_C1)
    cs = (2 * cov + SSIM_C2) / (var_x + var_y + SSIM_C2)
    inner = (slice(SSIM_CROP, -SSIM_CROP),) * 2
    return lum[inner], cs[inner]


def ms_ssim_scales(short_side: int, available: int = len(MS_SSIM_WEIGHTS)) -> int:
    """How many of the scales fit: the coarsest must keep more than the SSIM window's border."""
    fitting = 0
    while fitting < available and short_side >> fitting > 2 * SSIM_CROP:
        fitting += 1
    return fitting


def ms_ssim(reference: Rgb, distorted: Rgb, weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM (Wang et al. 2003) with 2x2 average downsampling between scales.

    An image too small for every scale (a short side under 176 px for the standard five) is
    measured on the finest scales that fit, with their weights renormalised to sum as before,
    the usual practice for small images: refusing it would leave a dataset of small crops with
    no full-reference panel at all. The coarsest scale kept takes the luminance term, as the
    coarsest always does. A negative mean contrast-structure term (anti-correlated structure)
    is clipped to 0 before the fractional power, which would otherwise be undefined; such an
    image scores 0.
    """
    _check_pair(reference, distorted)
    short = min(reference.shape[:2])
    fitting = ms_ssim_scales(short, len(weights))
    if fitting == 0:
        raise ValueError(
            f"MS-SSIM needs a short side of at least {2 * SSIM_CROP + 1} px (one SSIM window), got {short}"
        )
    if fitting < len(weights):
        kept = weights[:fitting]
        weights = tuple(w * sum(weights) / sum(kept) for w in kept)
    x, y = luminance(reference), luminance(distorted)
    result = 1.0
    for scale, weight in enumerate(weights):
        if scale:
            x, y = halve(x), halve(y)
        lum, cs = ssim_maps(x, y)
        coarsest = scale == len(weights) - 1
        term = float(np.mean(lum * cs if coarsest else cs))
        result *= max(term, 0.0) ** weight
    return result


def gmsd(reference: Rgb, distorted: Rgb) -> float:
    """Gradient magnitude similarity deviation (Xue et al. 2014); 0 for identical images.

    The deviation rather than the mean is the point of the paper: distortions that damage
    structure unevenly are worse than uniform ones, and the spread captures that.
    """
    _check_pair(reference, distorted)
    g_ref = _prewitt_magnitude(halve(luminance(reference)))
    g_dist = _prewitt_magnitude(halve(luminance(distorted)))
    similarity = (2 * g_ref * g_dist + GMSD_C) / (g_ref**2 + g_dist**2 + GMSD_C)
    # ddof=1 as MATLAB's std2 in the authors' code.
    return float(np.std(similarity, ddof=1))


def ciede2000(reference: Rgb, distorted: Rgb) -> float:
    """Mean CIEDE2000 colour difference per pixel; about 1 is a just noticeable difference."""
    _check_pair(reference, distorted)
    return float(np.mean(_delta_e(_rgb2lab(reference), _rgb2lab(distorted))))


def registered_ssim(reference: Rgb, distorted: Rgb) -> float:
    """SSIM after aligning the reference to the distorted image, borders excluded.

    A reference shifted by a few pixels or turned by a degree makes plain SSIM collapse
    although a viewer sees the same picture; registering first leaves only the real distortion.
    """
    aligned = register(reference, distorted)
    return ssim(crop_border(aligned), crop_border(distorted))


def register(reference: Rgb, distorted: Rgb) -> Rgb:
    """The reference warped onto the distorted image's pixel grid by a similarity transform.

    Rotation and scale come first, from phase correlation of the log-polar Fourier magnitudes,
    which ignore translation; translation is then found by subpixel phase correlation of the
    de-rotated reference. The reference is resampled once with the composed transform so it is
    interpolated (and slightly softened) only once, bicubically to soften it least.
    """
    _check_pair(reference, distorted)
    lum_ref, lum_dist = luminance(reference), luminance(distorted)
    rot_scale = _rotation_scale(lum_ref, lum_dist)
    derotated = _warp(lum_ref, rot_scale, order=1, mode="edge", preserve_range=True)
    dy, dx = phase_shift(lum_dist, derotated)
    if max(abs(dy), abs(dx)) > _MAX_SHIFT_PX:
        dy, dx = 0.0, 0.0
    # Inverse maps compose right to left: undo the shift, then the rotation and scale.
    to_reference = rot_scale @ np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]])
    if np.allclose(to_reference, np.eye(3), rtol=0.0, atol=1e-9):
        return reference
    moved = _warp(reference, to_reference, order=3, mode="edge", preserve_range=True)
    return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


def crop_border(rgb: Rgb) -> Rgb:
    """The part of an image that registration never fills by extrapolation."""
    b = REGISTRATION_BORDER
    return rgb[b:-b, b:-b]


def phase_shift(fixed: Grey, moving: Grey) -> tuple[float, float]:
    """Subpixel (rows, columns) shift that moves ``moving`` onto ``fixed``, by phase correlation.

    The estimate of skimage's phase_cross_correlation, with the subpixel step done by a parabola
    through the peak and its two neighbours instead of an upsampled DFT, and kept to the same
    1/20 px resolution so that an aligned pair comes out exactly unshifted (and is not
    resampled). The upsampled DFT is matrix products, which go through multi-threaded BLAS; on
    a busy machine with many worker threads that made registration three times slower.
    """
    cross = np.fft.fft2(fixed) * np.conj(np.fft.fft2(moving))
    cross /= np.maximum(np.abs(cross), np.finfo(np.float64).tiny)
    surface = np.fft.ifft2(cross).real
    peak = np.unravel_index(int(np.argmax(surface)), surface.shape)
    shift = []
    for axis, size in enumerate(surface.shape):
        before, after = list(peak), list(peak)
        before[axis] = (peak[axis] - 1) % size
        after[axis] = (peak[axis] + 1) % size
        low, centre, high = surface[tuple(before)], surface[peak], surface[tuple(after)]
        curvature = low - 2 * centre + high
        fraction = 0.5 * (low - high) / curvature if curvature < 0 else 0.0
        position = round((peak[axis] + fraction) * _SUBPIXEL) / _SUBPIXEL
        shift.append(position - size if position > size / 2 else position)
    return shift[0], shift[1]


def _rotation_scale(lum_ref: Grey, lum_dist: Grey) -> Matrix:
    """Inverse map of the rotation and scaling about the centre that turn reference into distorted.

    The magnitude spectra are high-pass emphasised (Reddy & Chatterji 1996) before the log-polar
    warp: without it the rotation-invariant low-frequency peak wins the correlation and the
    estimate sticks at zero, which is what the plain gallery recipe does on 256 px images.
    """
    shape = lum_ref.shape
    spectra = [_emphasised_spectrum(lum) for lum in (lum_ref, lum_dist)]
    side = spectra[0].shape[0]
    centre = (side // 2, side // 2)
    radius = side // 2
    polar = [
        _warp_polar(
            s, centre, radius=radius, output_shape=(_POLAR_ANGLES, _POLAR_RADII), scaling="log", order=1
        )[: _POLAR_ANGLES // 2]
        for s in spectra
    ]
    # The magnitude spectrum is point-symmetric, so half the turn holds all the information.
    row_shift, col_shift = phase_shift(polar[1], polar[0])
    angle = -np.deg2rad(360.0 / _POLAR_ANGLES * row_shift)
    log_scale = col_shift * np.log(radius) / _POLAR_RADII
    if abs(np.rad2deg(angle)) > _MAX_ANGLE_DEG or abs(log_scale) > _MAX_LOG_SCALE:
        angle, log_scale = 0.0, 0.0
    return _about_centre(shape, angle, float(np.exp(log_scale)))


def _about_centre(shape: tuple[int, ...], angle: float, scale: float) -> Matrix:
    """Homogeneous (x, y) matrix rotating by ``angle`` and scaling about the image centre."""
    cx, cy = (shape[1] - 1) / 2, (shape[0] - 1) / 2
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    return np.array(
        [
            [cos, -sin, cx - cos * cx + sin * cy],
            [sin, cos, cy - sin * cx - cos * cy],
            [0.0, 0.0, 1.0],
        ]
    )


def _emphasised_spectrum(lum: Grey) -> Grey:
    """The windowed image's magnitude spectrum on a square frequency grid.

    An FFT of an H x W image samples frequencies in steps of 1/H and 1/W: on a non-square image
    the spectrum's pixel grid is stretched along one axis, so a rotation of the image is not a
    rotation of the spectrum image and the log-polar step misreads angle and scale (-2 deg came
    out as -2.65 deg on 512 x 384 photos). Zero-padding the windowed image to a square, which
    the Hann window makes seamless, gives equal steps on both axes.
    """
    side = max(lum.shape)
    hann, emphasis = _spectrum_filters(lum.shape, side)
    magnitude = np.abs(np.fft.fftshift(np.fft.fft2(lum * hann, s=(side, side))))
    return magnitude * emphasis


@cache
def _spectrum_filters(shape: tuple[int, ...], side: int) -> tuple[Grey, Grey]:
    """Hann window for one image shape and high-pass emphasis for its square spectrum."""
    hann = _window("hann", shape)
    f = np.fft.fftshift(np.fft.fftfreq(side))
    x = np.cos(np.pi * f)[:, None] * np.cos(np.pi * f)[None, :]
    return hann, (1.0 - x) * (2.0 - x)


def _prewitt_magnitude(grey: Grey) -> Grey:
    # scipy's prewitt is the paper's 1/3-normalised kernel times 3; zero padding as conv2 'same'.
    gx = ndimage.prewitt(grey, axis=1, mode="constant") / 3.0
    gy = ndimage.prewitt(grey, axis=0, mode="constant") / 3.0
    magnitude: Grey = np.hypot(gx, gy)
    return magnitude


def _check_pair(reference: Rgb, distorted: Rgb) -> None:
    if reference.shape != distorted.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(
            "full-reference measures need two HxWx3 arrays of one shape, "
            f"got {reference.shape} and {distorted.shape}"
        )
