"""Tests for iqa_eval.distortions on scikit-image's bundled photos and textures."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from itertools import pairwise

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity
from skimage.transform import resize

from iqa_eval.distortions import DISTORTIONS, LEVELS, distort, misalign

Pixels = NDArray[np.uint8]

EXPECTED = {
    "structure": {"blur", "noise", "jpeg", "pixelate"},
    "texture": {"smooth", "posterize", "patch_shuffle"},
    "color": {"saturation", "hue", "cast", "quantize"},
    "geometry": {"stretch", "shear", "barrel", "tilt"},
}
# Types whose output depends on the seed; for the others the seed must have no effect (a
# seed-dependent direction would let a per-level seed break the ladder).
SEEDED = {"noise", "patch_shuffle"}
# Colour and geometric changes are judged on natural colour photos; structure and texture
# also on a greyscale texture, which is where texture damage matters most.
IMAGES = {
    "structure": ("astronaut", "coffee", "grass"),
    "texture": ("astronaut", "coffee", "grass"),
    "color": ("astronaut", "coffee", "chelsea"),
    "geometry": ("astronaut", "coffee", "chelsea"),
}


@cache
def bundled(name: str) -> Pixels:
    """A 256x256 RGB uint8 version of a scikit-image sample, read-only like load_rgb's output."""
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.dstack([img] * 3)
    out = resize(img, (256, 256), anti_aliasing=True, preserve_range=True).round().astype(np.uint8)
    out.setflags(write=False)
    return out


def mean_abs_error(a: Pixels, b: Pixels) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def one_minus_ssim(a: Pixels, b: Pixels) -> float:
    return 1.0 - float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def mean_delta_e(a: Pixels, b: Pixels) -> float:
    return float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean())


DISTANCE: dict[str, Callable[[Pixels, Pixels], float]] = {
    "structure": mean_abs_error,
    "texture": mean_abs_error,
    "color": mean_delta_e,
    "geometry": one_minus_ssim,
}

CASES = [(name, image) for name, d in DISTORTIONS.items() for image in IMAGES[d.attribute]]


def test_registry_matches_the_catalogue() -> None:
    assert {a: {n for n, d in DISTORTIONS.items() if d.attribute == a} for a in EXPECTED} == EXPECTED
    for name, d in DISTORTIONS.items():
        assert d.name == name
        assert d.description.endswith(".") and d.description.count(". ") == 0
    with pytest.raises(TypeError):
        DISTORTIONS["new"] = DISTORTIONS["blur"]  # type: ignore[index]


@pytest.mark.parametrize(("name", "image"), CASES)
def test_ladder(name: str, image: str) -> None:
    src = bundled(image)
    outputs = [distort(src, name, level) for level in LEVELS]
    for out in outputs:
        assert out.shape == src.shape and out.dtype == np.uint8
        assert out.flags.writeable and not np.shares_memory(out, src)
    assert not np.array_equal(outputs[0], src), "level 1 must change the image"
    distance = DISTANCE[DISTORTIONS[name].attribute]
    distances = [distance(src, out) for out in outputs]
    assert all(a < b for a, b in pairwise(distances)), distances


@pytest.mark.parametrize(("name", "image"), [c for c in CASES if c[0] in SEEDED])
def test_ladder_survives_a_seed_per_level(name: str, image: str) -> None:
    # Dataset builders may derive the seed from (content, type, level); the ladder must hold.
    src = bundled(image)
    distances = [mean_abs_error(src, distort(src, name, lv, seed=1000 + 7 * lv)) for lv in LEVELS]
    assert all(a < b for a, b in pairwise(distances)), distances


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_pure_function_of_image_level_seed(name: str) -> None:
    src = bundled("astronaut")  # read-only: an in-place edit would raise
    first = distort(src, name, 3, seed=5)
    assert distort(src.copy(), name, 3, seed=5).tobytes() == first.tobytes()
    by_seed = {distort(src, name, 3, seed=s).tobytes() for s in range(6)}
    assert (len(by_seed) > 1) == (name in SEEDED)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    name=st.sampled_from(sorted(DISTORTIONS)),
    level=st.sampled_from(LEVELS),
    img=arrays(np.uint8, st.tuples(st.integers(8, 40), st.integers(8, 40), st.just(3))),
)
def test_any_small_odd_shape_is_kept(name: str, level: int, img: Pixels) -> None:
    out = distort(img, name, level, seed=1)
    assert out.shape == img.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", ["noise", "patch_shuffle"])
def test_seeded_damage_is_nested_per_pixel(name: str) -> None:
    # The design promise: a higher level adds to the lower level's damage, pixel by pixel.
    src = bundled("coffee").astype(np.int16)
    errors = [np.abs(distort(bundled("coffee"), name, lv, seed=3) - src) for lv in LEVELS]
    for lower, higher in pairwise(errors):
        assert np.all(lower <= higher)


def test_saturation_keeps_luma() -> None:
    src = bundled("chelsea")
    luma = np.array([0.299, 0.587, 0.114])
    for level in LEVELS:
        out = distort(src, "saturation", level)
        assert np.max(np.abs(out @ luma - src @ luma)) <= 0.5 + 1e-9


def test_smooth_keeps_strong_edges_while_removing_texture() -> None:
    # A step edge with fine texture on both sides: texture goes, the step stays sharp.
    rng = np.random.default_rng(0)
    img = np.where(np.arange(64) < 32, 60.0, 190.0)[None, :, None] + rng.normal(0, 6, (64, 64, 3))
    src = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    out = distort(src, "smooth", 5).astype(np.float64)
    assert out[:, 4:26].std() < 0.5 * src[:, 4:26].astype(np.float64).std()
    assert out[:, 33:36].mean() - out[:, 28:31].mean() > 100


@pytest.mark.parametrize("level", [0, 6, -1, 2.5, True, "3", None])
def test_bad_level_is_refused(level: object) -> None:
    with pytest.raises(ValueError, match=r"blur: level must be an integer 1\.\.5"):
        distort(bundled("astronaut"), "blur", level)  # type: ignore[arg-type]


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown distortion 'gaussian'") as info:
        distort(bundled("astronaut"), "gaussian", 1)
    assert ", ".join(sorted(DISTORTIONS)) in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((16, 16), np.uint8), np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 3), np.float64)],
)
def test_bad_image_is_refused(bad: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="expected an HxWx3 uint8 image"):
        DISTORTIONS["tilt"].apply(bad, 1, 0)  # type: ignore[arg-type]


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        distort(bundled("astronaut"), "noise", 1, seed=-1)


# --- misalign -------------------------------------------------------------------------------


@settings(max_examples=25, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_misalign_parameters_within_bounds(seed: int) -> None:
    src = bundled("chelsea")[:48, :64]
    out, params = misalign(src, seed)
    assert set(params) == {"dx", "dy", "rotation_deg", "scale"}
    assert abs(params["dx"]) <= 4 and abs(params["dy"]) <= 4
    assert abs(params["rotation_deg"]) <= 3
    assert 0.97 <= params["scale"] <= 1.03
    again, params_again = misalign(src, seed)
    assert params_again == params and again.tobytes() == out.tobytes()
    assert out.shape == src.shape and out.dtype == np.uint8


def test_misalign_never_paints_black_borders() -> None:
    # Reflection only ever samples the image, so an image with no dark pixel stays dark-free;
    # constant (zero) padding would put black wedges along the border.
    src = np.maximum(bundled("astronaut"), 40)
    for seed in range(5):
        out, _ = misalign(src, seed)
        assert out.min() >= 40
        assert not np.array_equal(out, src)


def test_misalign_parameters_describe_the_visible_motion() -> None:
    # A bright dot off-centre must land where the reported similarity transform puts it.
    size, spot = 129, np.array([40.0, 90.0])
    rows, cols = np.indices((size, size))
    blob = 250 * np.exp(-((rows - spot[0]) ** 2 + (cols - spot[1]) ** 2) / (2 * 2.0**2))
    src = np.dstack([np.rint(blob).astype(np.uint8)] * 3)
    for seed in range(4):
        out, p = misalign(src, seed)
        t = np.deg2rad(p["rotation_deg"])
        # Counter-clockwise on screen, written for (row, col) offsets with rows pointing down.
        ccw = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        centre = np.array([(size - 1) / 2.0] * 2)
        expected = centre + p["scale"] * ccw @ (spot - centre) + [p["dy"], p["dx"]]
        found = np.array(ndimage.center_of_mass(out[..., 0].astype(np.float64)))
        np.testing.assert_allclose(found, expected, atol=0.3)


def test_misalign_refuses_non_rgb8() -> None:
    with pytest.raises(ValueError, match="misalign: expected an HxWx3 uint8 image"):
        misalign(np.zeros((16, 16), np.uint8), 0)
