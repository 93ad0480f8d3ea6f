"""Full-reference experts against scikit-image, the papers' formulas, and known transforms."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from photos import PHOTOS, Rgb, blur, noise, photo
from scipy import ndimage
from skimage import color, data, filters, metrics, registration, transform, util

from iqa_eval.experts import fr


def misalign(rgb: Rgb, angle_deg: float, scale: float, shift: tuple[float, float]) -> Rgb:
    """Warp about the centre with a known similarity (an inverse map, as skimage's warp takes)."""
    centre = np.array([rgb.shape[1] - 1, rgb.shape[0] - 1]) / 2
    tform = (
        transform.SimilarityTransform(translation=-centre)
        + transform.SimilarityTransform(rotation=np.deg2rad(angle_deg), scale=scale)
        + transform.SimilarityTransform(translation=centre + np.array(shift))
    )
    moved = transform.warp(rgb, tform, order=3, mode="edge", preserve_range=True)
    return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


def random_pair(seed: int, size: int) -> tuple[Rgb, Rgb]:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.uniform(0, 255, (size, size, 3)), (2, 2, 0))
    ref = np.clip(np.rint(smooth), 0, 255).astype(np.uint8)
    return ref, noise(ref, float(rng.uniform(1, 40)), seed)


def skimage_ssim(ref: Rgb, dist: Rgb) -> float:
    return float(
        metrics.structural_similarity(
            fr.luminance(ref),
            fr.luminance(dist),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
    )


# ---------------------------------------------------------------- PSNR and SSIM


@pytest.mark.parametrize("name", PHOTOS)
def test_psnr_matches_skimage_and_caps_identical(name: str) -> None:
    ref = photo(name)
    dist = noise(ref, 8)
    assert fr.psnr(ref, dist) == pytest.approx(metrics.peak_signal_noise_ratio(ref, dist, data_range=255))
    assert fr.psnr(ref, ref) == fr.PSNR_CAP_DB


def test_luminance_is_bt601() -> None:
    pixel = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    expected = [0.299 * 255, 0.587 * 255, 0.114 * 255, 0.299 * 10 + 0.587 * 20 + 0.114 * 30]
    np.testing.assert_allclose(fr.luminance(pixel)[0], expected)


@pytest.mark.parametrize("name", PHOTOS)
def test_ssim_equals_skimage_on_photos(name: str) -> None:
    ref = photo(name)
    for dist in (blur(ref, 1.5), noise(ref, 12), ref):
        assert fr.ssim(ref, dist) == pytest.approx(skimage_ssim(ref, dist), abs=1e-6)


@settings(max_examples=15, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(24, 64))
def test_ssim_equals_skimage_on_random_images(seed: int, size: int) -> None:
    ref, dist = random_pair(seed, size)
    assert fr.ssim(ref, dist) == pytest.approx(skimage_ssim(ref, dist), abs=1e-6)


# ---------------------------------------------------------------- MS-SSIM


def reference_ms_ssim(ref: Rgb, dist: Rgb, weights: tuple[float, ...]) -> float:
    """Straight loop over scales with skimage's gaussian, crop and 2x2 block mean."""
    x, y = fr.luminance(ref), fr.luminance(dist)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    value = 1.0
    for level, weight in enumerate(weights):

        def g(a: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(
                filters.gaussian(a, sigma=1.5, truncate=3.5, mode="reflect", preserve_range=True)
            )

        mx, my = g(x), g(y)
        vx, vy, cxy = g(x * x) - mx**2, g(y * y) - my**2, g(x * y) - mx * my
        cs = util.crop((2 * cxy + c2) / (vx + vy + c2), 5)
        lum = util.crop((2 * mx * my + c1) / (mx**2 + my**2 + c1), 5)
        term = np.mean(lum * cs) if level == len(weights) - 1 else np.mean(cs)
        value *= float(term) ** weight
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = transform.downscale_local_mean(x[:h, :w], (2, 2))
        y = transform.downscale_local_mean(y[:h, :w], (2, 2))
    return value


@pytest.mark.parametrize("name", PHOTOS)
def test_ms_ssim_matches_reference_loop(name: str) -> None:
    ref = photo(name)
    for dist in (blur(ref, 2.0), noise(ref, 15)):
        assert fr.ms_ssim(ref, dist) == pytest.approx(
            reference_ms_ssim(ref, dist, fr.MS_SSIM_WEIGHTS), rel=1e-9
        )


def test_ms_ssim_single_scale_is_ssim_and_identity_is_one() -> None:
    ref = photo("coffee")
    dist = noise(ref, 10)
    assert fr.ms_ssim(ref, dist, weights=(1.0,)) == pytest.approx(fr.ssim(ref, dist), abs=1e-12)
    assert fr.ms_ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", PHOTOS)
def test_ms_ssim_falls_monotonically_with_blur(name: str) -> None:
    ref = photo(name)
    values = [fr.ms_ssim(ref, blur(ref, s)) for s in (0.5, 1.0, 2.0, 3.0, 4.0)]
    assert all(a > b for a, b in pairwise(values)), values


@pytest.mark.parametrize(
    ("size", "scales"), [(176, 5), (175, 4), (192, 5), (120, 4), (64, 3), (22, 2), (11, 1)]
)
def test_ms_ssim_on_small_images_uses_the_scales_that_fit_with_renormalised_weights(
    size: int, scales: int
) -> None:
    """Checked against the straight loop with the first weights scaled to the same sum."""
    ref, dist = random_pair(size, size)
    assert fr.ms_ssim_scales(size) == scales
    kept = fr.MS_SSIM_WEIGHTS[:scales]
    renormalised = tuple(w * sum(fr.MS_SSIM_WEIGHTS) / sum(kept) for w in kept)
    expected = reference_ms_ssim(ref, dist, renormalised)
    assert fr.ms_ssim(ref, dist) == pytest.approx(expected, rel=1e-9)
    assert fr.ms_ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_on_a_small_non_square_image_follows_its_short_side() -> None:
    ref, _ = random_pair(3, 200)
    ref = ref[:100]  # 100 x 200: four scales fit the short side (100, 50, 25, 12)
    dist = noise(ref, 10, 3)
    kept = fr.MS_SSIM_WEIGHTS[:4]
    expected = reference_ms_ssim(ref, dist, tuple(w * sum(fr.MS_SSIM_WEIGHTS) / sum(kept) for w in kept))
    assert fr.ms_ssim(ref, dist) == pytest.approx(expected, rel=1e-9)


def test_ms_ssim_refuses_images_smaller_than_one_ssim_window() -> None:
    ref, dist = random_pair(1, 10)
    with pytest.raises(ValueError, match="short side of at least 11 px"):
        fr.ms_ssim(ref, dist)


# ---------------------------------------------------------------- GMSD


def paper_gmsd(ref: Rgb, dist: Rgb) -> float:
    """Xue et al.'s MATLAB code, line by line: conv2 'same' with zero padding, then std2."""

    def conv2_same(a: NDArray[np.float64], kernel: NDArray[np.float64]) -> NDArray[np.float64]:
        # MATLAB's 'same' keeps the full convolution from offset floor(k/2): for the 2x2 kernel
        # out(i, j) combines a(i..i+1, j..j+1), which is also where ndimage centres an even kernel.
        return np.asarray(ndimage.convolve(a, kernel, mode="constant", cval=0.0))

    dx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64) / 3
    dy = dx.T
    average = np.full((2, 2), 0.25)
    maps = []
    for rgb in (ref, dist):
        y = fr.luminance(rgb)
        y = conv2_same(y, average)[0::2, 0::2]
        maps.append(np.sqrt(conv2_same(y, dx) ** 2 + conv2_same(y, dy) ** 2))
    quality_map = (2 * maps[0] * maps[1] + 170) / (maps[0] ** 2 + maps[1] ** 2 + 170)
    return float(np.std(quality_map, ddof=1))


@pytest.mark.parametrize("name", PHOTOS)
def test_gmsd_matches_paper_transcription(name: str) -> None:
    ref = photo(name)
    for dist in (blur(ref, 1.5), noise(ref, 20)):
        assert fr.gmsd(ref, dist) == pytest.approx(paper_gmsd(ref, dist), rel=1e-9, abs=1e-12)


def test_gmsd_zero_for_identical_and_grows_with_blur() -> None:
    ref = photo("chelsea")
    assert fr.gmsd(ref, ref) == 0.0
    values = [fr.gmsd(ref, blur(ref, s)) for s in (0.7, 1.5, 3.0)]
    assert values == sorted(values) and values[0] > 0


# ---------------------------------------------------------------- CIEDE2000


def test_ciede2000_pure_lightness_difference_follows_formula() -> None:
    """For greys only the lightness term is left: dE00 = |dL| / S_L (Sharma et al. 2005, eq. 10)."""
    dark = np.full((16, 16, 3), 100, dtype=np.uint8)
    light = np.full((16, 16, 3), 140, dtype=np.uint8)
    l1 = float(color.rgb2lab(dark)[0, 0, 0])
    l2 = float(color.rgb2lab(light)[0, 0, 0])
    mean_l = (l1 + l2) / 2
    s_l = 1 + 0.015 * (mean_l - 50) ** 2 / np.sqrt(20 + (mean_l - 50) ** 2)
    assert fr.ciede2000(dark, light) == pytest.approx(abs(l2 - l1) / s_l, abs=1e-3)


def test_ciede2000_zero_for_identical_and_sees_colour_shift() -> None:
    ref = photo("coffee")
    assert fr.ciede2000(ref, ref) == 0.0
    warmer = ref.astype(np.int16)
    warmer[..., 0] += 20
    warmer[..., 2] -= 20
    shifted = np.clip(warmer, 0, 255).astype(np.uint8)
    assert fr.ciede2000(ref, shifted) > 3.0


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        fr.psnr(photo("coffee"), photo("coffee")[:128])


# ---------------------------------------------------------------- registration

MISALIGNMENTS = [
    (2.0, 1.0, (0.0, 0.0)),
    (0.0, 1.03, (0.0, 0.0)),
    (-3.0, 0.97, (3.0, -2.0)),
    (1.0, 1.02, (-4.0, 4.0)),
    (0.0, 1.0, (2.5, -1.5)),
]


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("distortion", ["blur", "noise"])
def test_registered_ssim_undoes_known_misalignment(name: str, distortion: str) -> None:
    ref = photo(name)
    dist = blur(ref, 1.0) if distortion == "blur" else noise(ref, 10)
    # Compared on the region registered SSIM scores, so the crop itself is not counted as error.
    truth = fr.ssim(fr.crop_border(ref), fr.crop_border(dist))
    for angle, scale, shift in MISALIGNMENTS:
        moved = misalign(ref, angle, scale, shift)
        plain_error = abs(fr.ssim(fr.crop_border(moved), fr.crop_border(dist)) - truth)
        registered_error = abs(fr.registered_ssim(moved, dist) - truth)
        assert plain_error > 0.09, "the misalignment must matter for the test to mean anything"
        # What is left is the softening of two resamplings (the test's and the registration's).
        assert registered_error < min(0.08, 0.4 * plain_error), (angle, scale, shift)


def native_photo(name: str) -> Rgb:
    """Non-square photos at their native size: Aug-KADID's 512 x 384, and chelsea's 451 x 300."""
    if name == "astronaut":
        return np.ascontiguousarray(data.astronaut()[64:448, :, :3])
    return np.ascontiguousarray(data.chelsea()[..., :3])


NON_SQUARE_MISALIGNMENTS = [
    (-2.0, 1.0, (0.0, 0.0)),
    (1.5, 1.0, (2.0, -1.0)),
    (-1.5, 1.02, (3.0, 1.5)),
    (2.5, 0.98, (-2.0, 2.0)),
    (0.0, 1.03, (0.0, 0.0)),
]


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_registration_on_non_square_photos_recovers_known_transforms(name: str) -> None:
    """Angle within 0.2 deg, scale within 0.002, and registered SSIM within 0.01 of the oracle:
    SSIM to the shown reference warped back with the true transform. On an FFT with unequal
    axes the log-polar step misread -2 deg as -2.65 deg before the spectrum was made square."""
    ref = native_photo(name)
    dist = noise(blur(ref, 1.0), 5)
    for angle, scale, shift in NON_SQUARE_MISALIGNMENTS:
        moved = misalign(ref, angle, scale, shift)
        inverse_map = fr._rotation_scale(fr.luminance(moved), fr.luminance(dist))
        # The map takes the distorted image's grid to the shown reference's, so it undoes the
        # misalignment: its angle and scale are the inverse of the ones applied.
        estimated_angle = -np.rad2deg(np.arctan2(inverse_map[1, 0], inverse_map[0, 0]))
        estimated_scale = 1.0 / float(np.hypot(inverse_map[0, 0], inverse_map[1, 0]))
        assert estimated_angle == pytest.approx(angle, abs=0.2), (angle, scale, shift)
        assert estimated_scale == pytest.approx(scale, abs=0.002), (angle, scale, shift)
        centre = np.array([ref.shape[1] - 1, ref.shape[0] - 1]) / 2
        true_map = (
            transform.SimilarityTransform(translation=-centre)
            + transform.SimilarityTransform(rotation=np.deg2rad(angle), scale=scale)
            + transform.SimilarityTransform(translation=centre + np.array(shift))
        )
        back = transform.warp(moved, true_map.inverse, order=3, mode="edge", preserve_range=True)
        oracle = fr.ssim(
            fr.crop_border(np.clip(np.rint(back), 0, 255).astype(np.uint8)), fr.crop_border(dist)
        )
        assert fr.registered_ssim(moved, dist) == pytest.approx(oracle, abs=0.01), (angle, scale, shift)


@pytest.mark.parametrize("name", PHOTOS)
def test_register_recovers_the_reference_pixels(name: str) -> None:
    ref = photo(name)
    moved = misalign(ref, -2.0, 1.02, (3.0, 1.5))
    back = fr.register(moved, ref)
    assert fr.psnr(fr.crop_border(ref), fr.crop_border(back)) > 28.0
    assert fr.psnr(fr.crop_border(ref), fr.crop_border(moved)) < 22.0


@pytest.mark.parametrize("name", PHOTOS)
def test_registration_of_aligned_pair_costs_under_a_hundredth(name: str) -> None:
    ref = photo(name)
    for dist in (blur(ref, 1.0), noise(ref, 10)):
        same_crop = fr.ssim(fr.crop_border(ref), fr.crop_border(dist))
        assert fr.registered_ssim(ref, dist) >= same_crop - 0.01


def test_registration_leaves_gross_misalignment_alone() -> None:
    """20 px is no slight misalignment: the pair is compared as given rather than re-cut."""
    ref = photo("chelsea")
    rolled = np.roll(ref, 20, axis=1)
    assert fr.register(rolled, ref) is rolled


@pytest.mark.parametrize("name", PHOTOS)
def test_phase_shift_agrees_with_skimage_phase_cross_correlation(name: str) -> None:
    ref = photo(name)
    for shift in ((0.3, -1.7), (2.5, 0.5), (-3.2, 3.9)):
        moved = fr.luminance(misalign(ref, 0.0, 1.0, shift))
        dist = fr.luminance(noise(blur(ref, 1.0), 5))
        expected, _, _ = registration.phase_cross_correlation(dist, moved, upsample_factor=20)
        np.testing.assert_allclose(fr.phase_shift(dist, moved), expected, atol=0.15)
        np.testing.assert_allclose(fr.phase_shift(dist, moved), (shift[1], shift[0]), atol=0.35)
    assert fr.phase_shift(fr.luminance(ref), fr.luminance(ref)) == (0.0, 0.0)
