"""Test stimuli shared by the expert tests: bundled photos at 256 px and simple degradations."""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray
from skimage import data, filters, transform

Rgb = NDArray[np.uint8]

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@cache
def photo(name: str) -> Rgb:
    image = getattr(data, name)()[..., :3]
    small = transform.resize(image, (256, 256), anti_aliasing=True, preserve_range=True)
    out = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def blur(rgb: Rgb, sigma: float) -> Rgb:
    soft = filters.gaussian(rgb, sigma, channel_axis=-1, preserve_range=True)
    return np.clip(np.rint(soft), 0, 255).astype(np.uint8)


def noise(rgb: Rgb, sigma: float, seed: int = 0) -> Rgb:
    noisy = rgb + np.random.default_rng(seed).normal(0.0, sigma, rgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
