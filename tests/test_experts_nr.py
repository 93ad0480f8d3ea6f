"""No-reference experts and NIQE: hand computations, known distributions, and distortion ladders."""

from __future__ import annotations

import io
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from photos import PHOTOS, Rgb, blur, noise, photo
from PIL import Image
from scipy import ndimage, stats
from skimage import filters

from iqa_eval.experts import fr, niqe, nr


def jpeg(rgb: Rgb, quality: int) -> Rgb:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


# ---------------------------------------------------------------- colourfulness


def test_colourfulness_matches_hand_computation() -> None:
    """Half pure red, half pure blue: rg is 255 | 0 and yb is 127.5 | -255, so by hand
    std(rg) = 127.5, std(yb) = 191.25, mean(rg) = 127.5, mean(yb) = -63.75."""
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:, :4, 0] = 255
    image[:, 4:, 2] = 255
    expected = np.sqrt(127.5**2 + 191.25**2) + 0.3 * np.sqrt(127.5**2 + 63.75**2)
    assert nr.colourfulness(image) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(272.619, abs=1e-3)


def test_colourfulness_zero_for_grey_and_falls_with_desaturation() -> None:
    image = photo("coffee").astype(np.float64)
    luma = fr.luminance(photo("coffee"))[..., None]

    def saturated(f: float) -> Rgb:
        return np.clip(np.rint(luma + f * (image - luma)), 0, 255).astype(np.uint8)

    assert nr.colourfulness(saturated(0.0)) == 0.0
    values = [nr.colourfulness(saturated(f)) for f in (1.0, 0.6, 0.3)]
    assert values == sorted(values, reverse=True)


def test_colourfulness_rises_with_noise_which_keeps_it_out_of_the_panel() -> None:
    """The measurement behind leaving it out of the NR panel: noise makes photos more 'colourful'."""
    for name in PHOTOS:
        assert nr.colourfulness(noise(photo(name), 30)) > nr.colourfulness(photo(name)) + 5


# ---------------------------------------------------------------- blockiness


@pytest.mark.parametrize("name", PHOTOS)
def test_blockiness_grows_as_jpeg_quality_falls(name: str) -> None:
    ref = photo(name)
    values = [nr.blockiness(jpeg(ref, q)) for q in (90, 50, 20, 5)]
    assert all(a < b for a, b in pairwise(values)), values
    assert 0.85 < nr.blockiness(ref) < 1.15
    assert values[-1] > 1.8


def test_blockiness_hand_computation_on_flat_blocks() -> None:
    """Blocks flat inside with a step of 10 at every boundary: ratio (10 + 0.1) / (0 + 0.1)."""
    block_values = np.add.outer(np.arange(4), np.arange(4)) * 10.0
    grey = np.kron(block_values, np.ones((8, 8)))
    image = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    assert nr.blockiness(image) == pytest.approx(10.1 / 0.1)
    assert nr.blockiness(np.full((32, 32, 3), 7, dtype=np.uint8)) == 1.0


# ---------------------------------------------------------------- noise and sharpness


@settings(max_examples=8, derandomize=True, deadline=None)
@given(sigma=st.floats(2.0, 30.0), seed=st.integers(0, 1000))
def test_noise_sigma_recovers_added_noise_on_smooth_image(sigma: float, seed: int) -> None:
    """Grey noise of std s on all channels is luminance noise of std s exactly."""
    yy, xx = np.mgrid[0:128, 0:128]
    smooth = 128 + 60 * np.sin(xx / 20.0) * np.cos(yy / 25.0)
    grey = smooth + np.random.default_rng(seed).normal(0, sigma, smooth.shape)
    image = np.repeat(np.clip(np.rint(grey), 0, 255)[..., None], 3, axis=2).astype(np.uint8)
    assert nr.noise_sigma(image) == pytest.approx(sigma, rel=0.12, abs=0.3)


@pytest.mark.parametrize("name", PHOTOS)
def test_noise_sigma_orders_noise_levels(name: str) -> None:
    values = [nr.noise_sigma(noise(photo(name), s)) for s in (0, 5, 15, 30)]
    assert all(a < b for a, b in pairwise(values)), values


@pytest.mark.parametrize("name", PHOTOS)
def test_sharpness_falls_with_blur(name: str) -> None:
    values = [nr.sharpness(blur(photo(name), s)) for s in (0.0, 0.7, 1.4, 2.8)]
    assert all(a > b for a, b in pairwise(values)), values


@pytest.mark.parametrize("name", PHOTOS)
def test_sharpness_is_laplacian_energy_less_the_noise_share(name: str) -> None:
    image = noise(photo(name), 8)
    laplacian = filters.laplace(fr.luminance(image), ksize=3)  # skimage's own kernel
    expected = max(float(np.var(laplacian)) - 20 * nr.noise_sigma(image) ** 2, 0.0)
    assert nr.sharpness(image) == pytest.approx(expected, rel=1e-9)


def test_laplacian_noise_gain_is_twenty() -> None:
    """The constant behind the correction: the 5-point Laplacian of unit white noise has variance 20."""
    white = np.random.default_rng(3).normal(size=(512, 512))
    assert np.var(ndimage.laplace(white)) == pytest.approx(20.0, rel=0.02)


@pytest.mark.parametrize("name", PHOTOS)
def test_sharpness_is_not_fooled_by_noise_as_raw_laplacian_is(name: str) -> None:
    clean, noisy = photo(name), noise(photo(name), 15)
    raw = [float(np.var(ndimage.laplace(fr.luminance(im)))) for im in (clean, noisy)]
    assert raw[1] > 2 * raw[0]
    assert nr.sharpness(noisy) < 1.1 * nr.sharpness(clean)


# ---------------------------------------------------------------- NIQE


@pytest.mark.parametrize("shape", [0.6, 1.0, 2.0, 3.0])
def test_ggd_fit_recovers_gennorm_shape(shape: float) -> None:
    samples = stats.gennorm.rvs(shape, scale=1.7, size=(4, 20_000), random_state=np.random.default_rng(1))
    fitted_shape, variance = niqe.fit_ggd(samples)
    np.testing.assert_allclose(fitted_shape, shape, rtol=0.08)
    np.testing.assert_allclose(variance, stats.gennorm.var(shape, scale=1.7), rtol=0.08)


@pytest.mark.parametrize("shape", [0.6, 1.0, 2.0, 3.0])
def test_aggd_fit_recovers_shape_and_side_scales(shape: float) -> None:
    """AGGD samples: a side chosen with probability proportional to its scale, then a gennorm magnitude."""
    rng = np.random.default_rng(2)
    left_scale, right_scale = 0.8, 2.4
    magnitude = np.abs(stats.gennorm.rvs(shape, size=(4, 20_000), random_state=rng))
    on_left = rng.random(magnitude.shape) < left_scale / (left_scale + right_scale)
    samples = np.where(on_left, -left_scale * magnitude, right_scale * magnitude)
    fitted_shape, left, right = niqe.fit_aggd(samples)
    np.testing.assert_allclose(fitted_shape, shape, rtol=0.08)
    np.testing.assert_allclose(left, left_scale, rtol=0.1)
    np.testing.assert_allclose(right, right_scale, rtol=0.1)


def test_pristine_fit_uses_enough_patches_and_is_done_once() -> None:
    model = niqe.fit_niqe_model(niqe.pristine_images())
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36)
    assert model.n_patches > 3 * 36
    assert all(256 <= min(im.shape) <= 512 for im in niqe.pristine_images())
    np.testing.assert_allclose(niqe.default_model().mean, model.mean)
    assert niqe.default_model() is niqe.default_model()


@pytest.mark.parametrize("name", PHOTOS)
def test_niqe_prefers_clean_to_strong_blur_and_noise(name: str) -> None:
    clean = niqe.niqe(photo(name))
    assert clean < niqe.niqe(blur(photo(name), 2.0))
    assert clean < niqe.niqe(noise(photo(name), 25))


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_niqe_increases_monotonically_with_blur(name: str) -> None:
    values = [niqe.niqe(blur(photo(name), s)) for s in (0.5, 1.0, 1.5, 2.0)]
    assert all(a < b for a, b in pairwise(values)), values


def test_niqe_with_explicit_model_and_refuses_flat_images() -> None:
    model = niqe.fit_niqe_model([photo("rocket"), fr.luminance(photo("coffee"))])
    assert niqe.niqe(photo("astronaut"), model) > 0
    with pytest.raises(ValueError, match="patch"):
        niqe.niqe(np.full((128, 128, 3), 90, dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe.niqe(photo("rocket")[:64])
