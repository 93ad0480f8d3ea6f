"""The classical measures the expert panel judges with, and the 0..100 quality map of each.

Each expert maps its raw value onto a fixed 0..100 quality scale, so measures of different
units can be averaged: the panel of a setting judges by the mean quality of its members.
:mod:`iqa_eval.models.expert` puts the panel behind the model interface.

The maps are fixed, not fitted to any dataset, so a panel score never leaks ground truth. They
are monotone and chosen so that values seen on 256 px test photos (clean to strongly
distorted) spread over the scale:

==================  =============================================  ==========================
expert              quality map                                    typical raw range
==================  =============================================  ==========================
psnr                100 * clip((dB - 15) / 30, 0, 1)               18 .. 35 dB
ssim, registered    100 * clip(v, 0, 1)                            0.25 .. 1
ms_ssim             100 * clip(1 - 2.5 * (1 - v), 0, 1)            0.6 .. 1 (compressed high)
gmsd                100 * clip(1 - g / 0.3, 0, 1)                  0 .. 0.23
ciede2000           100 * exp(-dE / 12)                            1 .. 22
sharpness           100 * clip(log10(v) / 3.5, 0, 1)               1 .. 3500
noise               100 * exp(-sigma / 10)                         0.2 .. 20
colourfulness       100 * clip(M / 100, 0, 1)                      0 .. 110
blockiness          100 * clip(1 - (b - 1) / 2.5, 0, 1)            0.9 .. 3.6
niqe                100 * exp(-niqe / 15)                          3 .. 35
==================  =============================================  ==========================

Colourfulness is not in the no-reference panel, on measurement: additive noise raises it by
9 to 56 units on every test photo (chroma noise is colour variance), blur and JPEG move it by
under 8, and across contents it spans 0 (greyscale photos) to 110. In the panel it would
reward noise and punish grey scenes; it stays available alone as ``expert:colourfulness``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from iqa_eval.experts import fr, nr
from iqa_eval.experts.niqe import niqe
from iqa_eval.types import Setting

VERSION = "2"
"""Part of every expert fingerprint: bump it whenever any measure or map changes a value."""


@dataclass(frozen=True)
class Expert:
    """One classical measure: how to compute it, which way is better, and its quality map.

    ``raw`` takes (reference, image) for a full-reference expert and (image) for a
    no-reference one, uint8 RGB arrays. ``label`` formats a raw value for a description.
    """

    name: str
    setting: Setting
    description: str
    raw: Callable[..., float]
    higher_is_better: bool
    to_quality: Callable[[float], float]
    label: str


def _clip100(fraction: float) -> float:
    return 100.0 * min(max(fraction, 0.0), 1.0)


def _decay100(distance: float, scale: float) -> float:
    """100 at no distance, falling by a factor e every ``scale``; distances are never negative."""
    return 100.0 * math.exp(-max(distance, 0.0) / scale)


def _psnr_quality(db: float) -> float:
    return _clip100((db - 15.0) / 30.0)


def _similarity_quality(value: float) -> float:
    return _clip100(value)


def _ms_ssim_quality(value: float) -> float:
    return _clip100(1.0 - 2.5 * (1.0 - value))


def _gmsd_quality(deviation: float) -> float:
    return _clip100(1.0 - deviation / 0.3)


def _ciede2000_quality(delta_e: float) -> float:
    return _decay100(delta_e, 12.0)


def _sharpness_quality(energy: float) -> float:
    return _clip100(math.log10(max(energy, 1.0)) / 3.5)


def _noise_quality(sigma: float) -> float:
    return _decay100(sigma, 10.0)


def _colourfulness_quality(m3: float) -> float:
    return _clip100(m3 / 100.0)


def _blockiness_quality(ratio: float) -> float:
    return _clip100(1.0 - (ratio - 1.0) / 2.5)


def _niqe_quality(distance: float) -> float:
    return _decay100(distance, 15.0)


EXPERTS: Mapping[str, Expert] = MappingProxyType(
    {
        e.name: e
        for e in (
            Expert(
                name="psnr",
                setting="fr",
                description="peak signal-to-noise ratio",
                raw=fr.psnr,
                higher_is_better=True,
                to_quality=_psnr_quality,
                label="PSNR {:.1f} dB",
            ),
            Expert(
                name="ssim",
                setting="fr",
                description="SSIM on luminance (Wang et al. 2004)",
                raw=fr.ssim,
                higher_is_better=True,
                to_quality=_similarity_quality,
                label="SSIM {:.3f}",
            ),
            Expert(
                name="ms_ssim",
                setting="fr",
                description=(
                    "MS-SSIM (Wang et al. 2003): five scales, or on images with a short side under "
                    "176 px the scales that fit, their standard weights renormalised"
                ),
                raw=fr.ms_ssim,
                higher_is_better=True,
                to_quality=_ms_ssim_quality,
                label="MS-SSIM {:.3f}",
            ),
            Expert(
                name="gmsd",
                setting="fr",
                description="gradient magnitude similarity deviation (Xue et al. 2014)",
                raw=fr.gmsd,
                higher_is_better=False,
                to_quality=_gmsd_quality,
                label="GMSD {:.3f}",
            ),
            Expert(
                name="ciede2000",
                setting="fr",
                description="mean CIEDE2000 colour difference",
                raw=fr.ciede2000,
                higher_is_better=False,
                to_quality=_ciede2000_quality,
                label="CIEDE2000 {:.2f}",
            ),
            Expert(
                name="registered_ssim",
                setting="fr",
                description="SSIM after similarity registration of the reference",
                raw=fr.registered_ssim,
                higher_is_better=True,
                to_quality=_similarity_quality,
                label="registered SSIM {:.3f}",
            ),
            Expert(
                name="sharpness",
                setting="nr",
                description="noise-corrected variance of the Laplacian",
                raw=nr.sharpness,
                higher_is_better=True,
                to_quality=_sharpness_quality,
                label="sharpness {:.0f}",
            ),
            Expert(
                name="noise",
                setting="nr",
                description="estimated noise sigma",
                raw=nr.noise_sigma,
                higher_is_better=False,
                to_quality=_noise_quality,
                label="noise sigma {:.1f}",
            ),
            Expert(
                name="colourfulness",
                setting="nr",
                description="Hasler-Suesstrunk colourfulness M3",
                raw=nr.colourfulness,
                higher_is_better=True,
                to_quality=_colourfulness_quality,
                label="colourfulness {:.1f}",
            ),
            Expert(
                name="blockiness",
                setting="nr",
                description="8x8 block-boundary step ratio",
                raw=nr.blockiness,
                higher_is_better=False,
                to_quality=_blockiness_quality,
                label="blockiness {:.2f}",
            ),
            Expert(
                name="niqe",
                setting="nr",
                description="NIQE naturalness distance",
                raw=niqe,
                higher_is_better=False,
                to_quality=_niqe_quality,
                label="NIQE {:.1f}",
            ),
        )
    }
)

PANELS: Mapping[Setting, tuple[str, ...]] = MappingProxyType(
    {
        "fr": ("registered_ssim", "ms_ssim", "gmsd", "ciede2000", "psnr"),
        "nr": ("niqe", "sharpness", "noise", "blockiness"),
    }
)

_ON_REGISTERED: Mapping[str, Callable[..., float]] = MappingProxyType({"registered_ssim": fr.ssim})
"""What a self-registering measure reduces to once the panel has registered the pair itself."""

Rgb = NDArray[np.uint8]


def measure(
    members: tuple[str, ...], reference: Rgb | None, image: Rgb, *, registered: bool
) -> dict[str, float]:
    """Raw values of the members for one image (and its reference), registering at most once.

    In the full-reference panel every member sees the reference registered onto the image and
    both cropped, so a slightly shifted or turned reference does not dominate the verdict.
    """
    if reference is None:
        return {name: EXPERTS[name].raw(image) for name in members}
    if not registered:
        return {name: EXPERTS[name].raw(reference, image) for name in members}
    aligned = fr.crop_border(fr.register(reference, image))
    judged = fr.crop_border(image)
    return {name: _ON_REGISTERED.get(name, EXPERTS[name].raw)(aligned, judged) for name in members}
