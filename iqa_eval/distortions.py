"""Deterministic distortion generators for building synthetic IQA datasets.

Ground truth for a synthetic dataset is the severity ladder inside one
(content, distortion type) group: level 1 must be barely visible, level 5
clearly visible, and the damage must grow with the level.  Nothing here claims
that levels of different types are perceptually equal; only the order within a
ladder is used.

Every generator is a pure function of ``(image, level, seed)`` so a dataset can
be rebuilt bit for bit from its recipe instead of being shipped.  Only the
stochastic types (noise, patch_shuffle) use the seed; directions (of a cast,
hue turn, stretch, shear or tilt) are fixed, so a ladder stays on one axis and
its distance from the original grows with the level even when a caller varies
the seed per level.  With one seed for the whole ladder the stochastic types
are nested too (the same noise field scaled up, a superset of swapped
patches): the ladder is then monotone pixel by pixel, not only on average.

Only numpy, scipy.ndimage and Pillow are used: fast enough to build thousands
of images in seconds, and free of OpenCV/torchvision.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from iqa_eval.types import Attribute

__all__ = ["DISTORTIONS", "LEVELS", "Distortion", "Level", "distort", "misalign"]

Level = int
"""Severity 1 (barely visible) .. 5 (clearly visible)."""

LEVELS: tuple[Level, ...] = (1, 2, 3, 4, 5)

Pixels = NDArray[np.uint8]
Floats = NDArray[np.float64]
Apply = Callable[[Pixels, int, int], Pixels]

# Rec.601 luma, the weighting of JPEG's YCbCr and Pillow's "L": the colour
# generators keep this fixed so that they change colour, not lightness.
_LUMA = np.array([0.299, 0.587, 0.114])
_RGB_TO_YCC = np.array(
    [
        _LUMA,
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)


@dataclass(frozen=True)
class Distortion:
    """One registered distortion type.

    ``apply`` validates its arguments itself, so it is safe to call directly as
    well as through :func:`distort`.  It never modifies its input (stimuli are
    read-only arrays) and returns a new, writable array the caller owns.
    """

    name: str
    attribute: Attribute
    description: str
    apply: Apply


def distort(rgb: Pixels, name: str, level: int, seed: int = 0) -> Pixels:
    """Apply distortion ``name`` at ``level`` (1..5) to an HxWx3 uint8 image."""
    try:
        distortion = DISTORTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown distortion {name!r}; valid names are: {', '.join(sorted(DISTORTIONS))}"
        ) from None
    return distortion.apply(rgb, level, seed)


def _validated(name: str, fn: Apply) -> Apply:
    """Wrap a raw generator so that misuse fails with a message, not an IndexError."""

    def apply(rgb: Pixels, level: int, seed: int) -> Pixels:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level not in LEVELS:
            raise ValueError(f"{name}: level must be an integer 1..5, got {level!r}")
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"{name}: expected an HxWx3 uint8 image, got "
                f"{getattr(rgb, 'shape', type(rgb).__name__)} {getattr(rgb, 'dtype', '')}".rstrip()
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{name}: seed must be a non-negative integer, got {seed!r}")
        return fn(rgb, int(level), int(seed))

    apply.__name__ = apply.__qualname__ = name
    return apply


def _to_u8(x: Floats) -> Pixels:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pick(level: int, table: tuple[float, ...]) -> float:
    return table[level - 1]


def _rng(seed: int, salt: str) -> np.random.Generator:
    """Per-type stream, so that one seed does not correlate different types' randomness."""
    return np.random.default_rng([seed, *salt.encode()])


# --- structure ------------------------------------------------------------------------------


def _blur(rgb: Pixels, level: int, seed: int) -> Pixels:
    sigma = _pick(level, (0.6, 1.1, 1.8, 2.8, 4.2))
    return _to_u8(ndimage.gaussian_filter(rgb.astype(np.float64), (sigma, sigma, 0), mode="reflect"))


def _noise(rgb: Pixels, level: int, seed: int) -> Pixels:
    # One noise field per seed, scaled by the level: level n+1 is level n with more of the same noise.
    std = _pick(level, (3.0, 6.0, 11.0, 18.0, 28.0))
    field = _rng(seed, "noise").standard_normal(rgb.shape)
    return _to_u8(rgb + std * field)


def _jpeg(rgb: Pixels, level: int, seed: int) -> Pixels:
    quality = int(_pick(level, (43, 22, 12, 7, 4)))
    buf = io.BytesIO()
    # Fixed subsampling and no optimisation pass: libjpeg is then deterministic byte for byte.
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False)
    with Image.open(buf) as img:
        return np.array(img.convert("RGB"), dtype=np.uint8)


def _pixelate(rgb: Pixels, level: int, seed: int) -> Pixels:
    factor = _pick(level, (2, 3, 4, 6, 8))
    height, width = rgb.shape[:2]
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    img = Image.fromarray(rgb).resize(small, Image.Resampling.BOX)
    return np.array(img.resize((width, height), Image.Resampling.NEAREST), dtype=np.uint8)


# --- texture --------------------------------------------------------------------------------


def _smooth(rgb: Pixels, level: int, seed: int) -> Pixels:
    # Kuwahara filter: each pixel takes the mean of whichever of its four corner windows has
    # the lowest luma variance.  Windows never straddle a strong edge when a flat one exists,
    # so edges stay sharp while fine texture is replaced by flat, painterly patches.  Window
    # sums come from a summed-area table, so the cost does not grow with the radius.
    radius = int(_pick(level, (1, 2, 3, 5, 7)))
    height, width = rgb.shape[:2]
    x = rgb.astype(np.float64)
    luma = x @ _LUMA
    stacked = np.dstack([x, luma, luma * luma])
    padded = np.pad(stacked, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1, padded.shape[2]))
    table[1:, 1:] = padded.cumsum(0).cumsum(1)
    k = radius + 1
    # boxes[a, b] = mean of the k x k window whose top-left corner is padded[a, b].
    boxes = (table[k:, k:] - table[:-k, k:] - table[k:, :-k] + table[:-k, :-k]) / (k * k)
    quadrants = np.stack(
        [boxes[dy : dy + height, dx : dx + width] for dy in (0, radius) for dx in (0, radius)]
    )
    variance = quadrants[..., 4] - quadrants[..., 3] ** 2
    best = np.argmin(variance, axis=0)
    means = np.take_along_axis(quadrants[..., :3], best[None, ..., None], axis=0)[0]
    return _to_u8(means)


def _posterize(rgb: Pixels, level: int, seed: int) -> Pixels:
    # Quantise luma only and shift all channels by the same amount, so hue and chroma are kept
    # and the damage is banding/loss of tonal texture rather than a colour change.  Each step
    # doubles the previous one, so every coarser grid is a subset of the finer one and no pixel
    # can move closer to its original value as the level rises.
    step = _pick(level, (5.0, 10.0, 20.0, 40.0, 80.0))
    x = rgb.astype(np.float64)
    luma = x @ _LUMA
    quantised = np.rint(luma / step) * step
    return _to_u8(x + (quantised - luma)[..., None])


_PATCH = 8


def _patch_shuffle(rgb: Pixels, level: int, seed: int) -> Pixels:
    # One seeded pairing of patches; a level swaps the first k pairs, so each level's swaps are
    # a superset of the previous level's.  Partial patches at the right/bottom edge stay put.
    fraction = _pick(level, (0.01, 0.03, 0.07, 0.14, 0.28))
    rows, cols = rgb.shape[0] // _PATCH, rgb.shape[1] // _PATCH
    order = _rng(seed, "patch_shuffle").permutation(rows * cols)
    pairs = round(fraction * rows * cols / 2)
    out = rgb.copy()
    for first, second in order[: 2 * pairs].reshape(-1, 2):
        (r1, c1), (r2, c2) = divmod(int(first), cols), divmod(int(second), cols)
        a = np.s_[r1 * _PATCH : (r1 + 1) * _PATCH, c1 * _PATCH : (c1 + 1) * _PATCH]
        b = np.s_[r2 * _PATCH : (r2 + 1) * _PATCH, c2 * _PATCH : (c2 + 1) * _PATCH]
        out[a], out[b] = rgb[b], rgb[a]
    return out


# --- color ----------------------------------------------------------------------------------


def _saturation(rgb: Pixels, level: int, seed: int) -> Pixels:
    keep = 1.0 - _pick(level, (0.15, 0.3, 0.5, 0.7, 0.9))
    x = rgb.astype(np.float64)
    luma = (x @ _LUMA)[..., None]
    return _to_u8(luma + keep * (x - luma))


def _hue(rgb: Pixels, level: int, seed: int) -> Pixels:
    # Rotate the (Cb, Cr) chroma vector: luma and chroma magnitude stay, only hue turns.
    angle = np.deg2rad(_pick(level, (6.0, 12.0, 20.0, 32.0, 50.0)))
    cos, sin = np.cos(angle), np.sin(angle)
    rotate = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = _YCC_TO_RGB @ rotate @ _RGB_TO_YCC
    return _to_u8(rgb.astype(np.float64) @ matrix.T)


def _srgb_to_linear(x: Floats) -> Floats:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: Floats) -> Floats:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _cast(rgb: Pixels, level: int, seed: int) -> Pixels:
    # A white-balance error is a per-channel gain in linear light: red up and blue down by the
    # same log amount (a warm, tungsten-like cast), so overall exposure is roughly unchanged.
    strength = _pick(level, (0.05, 0.10, 0.17, 0.26, 0.38))
    gains = np.exp(strength * np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0))
    linear = _srgb_to_linear(rgb / 255.0)
    return _to_u8(255.0 * _linear_to_srgb(linear * gains))


def _quantize(rgb: Pixels, level: int, seed: int) -> Pixels:
    # Median-cut palette without dithering: the false-contour/palette look of colour reduction.
    # The palette is fitted on a box-reduced copy (about 64 px on the short side), which gives
    # the same palette quality at a tenth of the cost of median cut on every pixel.
    colors = int(_pick(level, (64, 32, 16, 8, 4)))
    img = Image.fromarray(rgb)
    sample = img.reduce(max(1, min(img.size) // 64))
    palette = sample.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    mapped = img.quantize(palette=palette, dither=Image.Dither.NONE)
    return np.array(mapped.convert("RGB"), dtype=np.uint8)


# --- geometry -------------------------------------------------------------------------------


def _remap(rgb: Pixels, rows: Floats, cols: Floats) -> Pixels:
    """Sample ``rgb`` at (rows, cols) bilinearly; reflect outside so no black borders appear."""
    out = np.empty_like(rgb)
    for channel in range(3):
        out[..., channel] = _to_u8(
            ndimage.map_coordinates(
                rgb[..., channel].astype(np.float64), (rows, cols), order=1, mode="reflect"
            )
        )
    return out


def _affine(rgb: Pixels, matrix: Floats, shift: tuple[float, float] = (0.0, 0.0)) -> Pixels:
    """Warp about the image centre, then move by ``shift`` (rows, cols) output pixels.

    ``matrix`` maps output offsets from the centre to input offsets, i.e. it is the inverse of
    the visible transform; sampling this way leaves no holes in the output.
    """
    height, width = rgb.shape[:2]
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    grid = np.indices((height, width), dtype=np.float64).reshape(2, -1)
    src = matrix @ (grid - (centre + np.asarray(shift))[:, None]) + centre[:, None]
    return _remap(rgb, src[0].reshape(height, width), src[1].reshape(height, width))


def _stretch(rgb: Pixels, level: int, seed: int) -> Pixels:
    # Widen the picture and crop back to the frame: what a wrong aspect ratio looks like.
    factor = 1.0 + _pick(level, (0.04, 0.08, 0.14, 0.22, 0.34))
    return _affine(rgb, np.diag([1.0, 1.0 / factor]))


def _shear(rgb: Pixels, level: int, seed: int) -> Pixels:
    amount = _pick(level, (0.03, 0.06, 0.10, 0.15, 0.22))
    return _affine(rgb, np.array([[1.0, 0.0], [amount, 1.0]]))


def _barrel(rgb: Pixels, level: int, seed: int) -> Pixels:
    # Output radius r samples the source at r(1 + k r^2)/(1 + k), r = 1 at the corners: the
    # corners stay put and the centre is magnified, so straight lines bow outwards and every
    # sample stays inside the frame.
    k = _pick(level, (0.04, 0.08, 0.14, 0.22, 0.34))
    height, width = rgb.shape[:2]
    centre_r, centre_c = (height - 1) / 2.0, (width - 1) / 2.0
    rows, cols = np.indices((height, width), dtype=np.float64)
    dr, dc = rows - centre_r, cols - centre_c
    r2 = (dr * dr + dc * dc) / (centre_r**2 + centre_c**2)
    factor = (1.0 + k * r2) / (1.0 + k)
    return _remap(rgb, centre_r + dr * factor, centre_c + dc * factor)


def _rotation(degrees: float, scale: float = 1.0) -> Floats:
    """Output-to-input matrix, in (row, col) coordinates, for the visible transform "rotate
    counter-clockwise by ``degrees`` and scale by ``scale``"."""
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) / scale


def _tilt(rgb: Pixels, level: int, seed: int) -> Pixels:
    degrees = _pick(level, (1.0, 2.0, 3.5, 5.5, 8.0))
    return _affine(rgb, _rotation(degrees))


def misalign(rgb: Pixels, seed: int) -> tuple[Pixels, dict[str, float]]:
    """Warp a reference by a small random similarity transform.

    Full-reference judgements should not hinge on pixel-exact registration
    (the Aug-KADID idea): a model that calls a barely moved reference
    "distorted" is checking alignment, not quality.  The returned parameters
    describe the visible transform about the image centre: ``dx`` (right) and
    ``dy`` (down) in pixels, up to 4; ``rotation_deg`` counter-clockwise, up to
    3; ``scale`` in 0.97..1.03.  Borders are filled by reflection, never black.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"misalign: expected an HxWx3 uint8 image, got {rgb.shape} {rgb.dtype}")
    rng = np.random.default_rng(seed)
    params = {
        "dx": float(rng.uniform(-4.0, 4.0)),
        "dy": float(rng.uniform(-4.0, 4.0)),
        "rotation_deg": float(rng.uniform(-3.0, 3.0)),
        "scale": float(rng.uniform(0.97, 1.03)),
    }
    matrix = _rotation(params["rotation_deg"], params["scale"])
    return _affine(rgb, matrix, shift=(params["dy"], params["dx"])), params


_SPECS: tuple[tuple[str, Attribute, str, Apply], ...] = (
    ("blur", "structure", "Gaussian blur that softens edges and fine detail.", _blur),
    ("noise", "structure", "Additive Gaussian noise, independent per pixel and channel.", _noise),
    ("jpeg", "structure", "JPEG compression at decreasing quality: blocking and ringing.", _jpeg),
    ("pixelate", "structure", "Downscaling then nearest-neighbour upscaling: visible blocks.", _pixelate),
    ("smooth", "texture", "Edge-preserving smoothing that wipes out fine texture.", _smooth),
    ("posterize", "texture", "Luminance quantised to few levels: banding, lost tonal texture.", _posterize),
    ("patch_shuffle", "texture", "Small patches swapped at random: broken local texture.", _patch_shuffle),
    ("saturation", "color", "Colours faded towards grey.", _saturation),
    ("hue", "color", "Hues rotated at constant lightness: wrong colours.", _hue),
    ("cast", "color", "A white-balance error tinting the whole image.", _cast),
    ("quantize", "color", "Reduced colour palette without dithering: false contours.", _quantize),
    ("stretch", "geometry", "One axis stretched and cropped: a wrong aspect ratio.", _stretch),
    ("shear", "geometry", "A shear that slants vertical lines.", _shear),
    ("barrel", "geometry", "Barrel lens distortion that bows straight lines outwards.", _barrel),
    ("tilt", "geometry", "A rotation that tilts the horizon.", _tilt),
)

DISTORTIONS: Mapping[str, Distortion] = MappingProxyType(
    {
        name: Distortion(name, attribute, description, _validated(name, fn))
        for name, attribute, description, fn in _SPECS
    }
)
