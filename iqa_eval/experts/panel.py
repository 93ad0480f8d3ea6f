"""Classical quality measures answering queries as if they were a multimodal model.

The experts go through the same path as an MLLM (prompt, images with roles, a text answer the
ordinary parser reads), so a default run exercises the whole suite and gives every cell a
classical baseline to compare models with. Each expert maps its raw value onto a fixed 0..100
quality scale; the panel answers with the mean quality of its members.

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

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from iqa_eval.experts import fr, nr
from iqa_eval.experts.allocator import keep_freed_buffers
from iqa_eval.experts.measurements import MeasurementCache
from iqa_eval.experts.niqe import niqe
from iqa_eval.images import ImageError, ImageStore
from iqa_eval.models.base import Capabilities, ModelClient, PermanentModelError
from iqa_eval.types import SETTINGS, Answer, Protocol, Query, Setting, Stimulus

VERSION = "2"
"""Part of every expert fingerprint: bump it whenever any measure or map changes a value."""

PANEL = "panel"
JUDGED_PER_PROTOCOL: Mapping[Protocol, int] = MappingProxyType({"ss": 1, "ds": 2, "ms": 4})


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
_MemoKey = tuple[str, str, str]


class _Memo:
    """Thread-safe once-only memo: concurrent askers of one key wait for the single computation.

    A lock-around-a-dict is not enough: two worker threads missing at the same moment would both
    measure. The first asker leaves a Future that the others wait on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[_MemoKey, Future[Mapping[str, float]]] = {}

    def get(self, key: _MemoKey, compute: Callable[[], Mapping[str, float]]) -> Mapping[str, float]:
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if future is None:
                future = self._entries[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                # Forget failures so a later ask retries; the waiting askers see this one.
                with self._lock:
                    del self._entries[key]
                future.set_exception(exc)
        return future.result()


class ExpertModel(ModelClient):
    """A classical expert, or the panel of them, behind the model interface.

    ``spec`` is ``expert`` for the panel or ``expert:<name>`` for one measure. ``reverse``
    turns every quality q into 100 - q, a model that is wrong on purpose: the suite's own tests
    use it to show that their gates can fail.
    """

    def __init__(
        self, spec: str = "expert", store: ImageStore | None = None, *, reverse: bool = False
    ) -> None:
        self.name = _parse_spec(spec)
        self.spec = spec
        self.reverse = reverse
        self.fingerprint = f"expert:{self.name}@{VERSION}" + ("+reversed" if reverse else "")
        settings = SETTINGS if self.name == PANEL else (EXPERTS[self.name].setting,)
        self.capabilities = Capabilities(max_images=None, settings=settings)
        self.cacheable = True
        self._store = store if store is not None else ImageStore()
        self._memo = _Memo()
        self._measurements: MeasurementCache | None = None
        keep_freed_buffers()

    def use_cache_dir(self, directory: Path) -> None:
        self._measurements = MeasurementCache(directory)

    async def aclose(self) -> None:
        if self._measurements is not None:
            self._measurements.close()
            self._measurements = None

    async def answer(self, query: Query) -> Answer:
        # The measures are numpy work that would stall the event loop; a thread keeps other
        # queries (and their network I/O, for real models in the same run) moving.
        start = time.perf_counter()
        try:
            text = await asyncio.to_thread(self._respond, query)
        except ImageError:
            raise  # a broken file is the dataset's error: it stops the run, naming the file
        except ValueError as err:
            # A measure that cannot take these stimuli (too small for even one SSIM window,
            # reference and image of different sizes) is this query's failure, not the run's.
            return Answer(
                None, error="expert_unsupported", detail=str(err), latency_s=time.perf_counter() - start
            )
        return Answer(text=text, latency_s=time.perf_counter() - start)

    def _respond(self, query: Query) -> str:
        members = self._members(query.setting)
        reference, judged = _split_images(query)
        raws = [self._raw_values(members, reference, image) for image in judged]
        qualities = [self._quality(members, raw) for raw in raws]
        score = _score_line(query.setting, query.protocol, qualities)
        if query.strategy != "cot":
            return score
        return f"{_description(members, raws, qualities)}\n{score}"

    def _members(self, setting: Setting) -> tuple[str, ...]:
        if self.name == PANEL:
            return PANELS[setting]
        expert = EXPERTS[self.name]
        if expert.setting != setting:
            raise PermanentModelError(
                "unsupported",
                f"expert:{self.name} is a {expert.setting.upper()} measure and cannot answer "
                f"{setting.upper()} queries; use the panel 'expert' or an expert of that setting: "
                f"{', '.join(n for n, e in EXPERTS.items() if e.setting == setting)}",
            )
        return (self.name,)

    def _raw_values(
        self, members: tuple[str, ...], reference: Stimulus | None, image: Stimulus
    ) -> Mapping[str, float]:
        # Keyed by pixel hashes, not paths: the protocols ask for the same pair many times
        # (SS, DS and MS schedules, every strategy) and it is measured once.
        key = (self.name, reference.sha256 if reference else "", image.sha256)
        measured_as = f"{self.name}@{VERSION}"  # reversal changes qualities, not measurements

        def compute() -> Mapping[str, float]:
            kept = self._measurements.get(measured_as, key[1], key[2]) if self._measurements else None
            if kept is not None:
                return kept
            ref_pixels = self._store.pixels(reference.path) if reference else None
            values = _measure(
                members, ref_pixels, self._store.pixels(image.path), registered=self.name == PANEL
            )
            if self._measurements is not None:
                self._measurements.put(measured_as, key[1], key[2], values)
            return values

        return self._memo.get(key, compute)

    def _quality(self, members: tuple[str, ...], raw: Mapping[str, float]) -> float:
        quality = sum(EXPERTS[name].to_quality(raw[name]) for name in members) / len(members)
        return 100.0 - quality if self.reverse else quality


def make_expert(spec: str, store: ImageStore | None = None, *, reverse: bool = False) -> ExpertModel:
    """Build the expert named by ``spec``; ValueError lists the valid names for a wrong one."""
    return ExpertModel(spec, store, reverse=reverse)


def _parse_spec(spec: str) -> str:
    head, colon, name = spec.partition(":")
    if head == "expert" and not colon:
        return PANEL
    if head == "expert" and name in EXPERTS:
        return name
    raise ValueError(
        f"unknown expert spec {spec!r}: use 'expert' for the panel or 'expert:<name>' with one of "
        f"{', '.join(EXPERTS)}"
    )


def _measure(
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


def _split_images(query: Query) -> tuple[Stimulus | None, list[Stimulus]]:
    """The reference (FR only) and judged images; in-context demonstrations are not evidence."""
    references = [im.stimulus for im in query.images if im.role == "reference"]
    judged = [im.stimulus for im in query.images if im.role == "image"]
    expected_refs = 1 if query.setting == "fr" else 0
    expected = JUDGED_PER_PROTOCOL[query.protocol]
    if len(references) != expected_refs or len(judged) != expected:
        raise PermanentModelError(
            "bad_request",
            f"a {query.setting.upper()} {query.protocol.upper()} query needs {expected_refs} reference and "
            f"{expected} judged image(s), got {len(references)} and {len(judged)}",
        )
    return (references[0] if references else None), judged


def _score_line(setting: Setting, protocol: Protocol, qualities: list[float]) -> str:
    if protocol == "ss":
        return f"Score: {qualities[0]:.1f}"
    if protocol == "ds":
        first, second = qualities
        return f"Score: {1 if first > second else 0 if first < second else 2}"
    return "Score: " + ", ".join(str(r) for r in _ranks(setting, qualities))


def _ranks(setting: Setting, qualities: list[float]) -> list[int]:
    """Ranks from 0 (worst) up, tied qualities handled as each setting's answer format demands.

    FR allows shared ranks, so ties get a dense rank (equal qualities share one, the next rank
    follows on: one tie among four uses ranks 0..2). NR demands every rank once, so ties are
    broken by presentation order, the earlier image ranking lower: arbitrary but reproducible.
    """
    if setting == "fr":
        levels = sorted(set(qualities))
        return [levels.index(q) for q in qualities]
    order = sorted(range(len(qualities)), key=lambda i: qualities[i])
    return [order.index(i) for i in range(len(qualities))]


def _description(members: tuple[str, ...], raws: list[Mapping[str, float]], qualities: list[float]) -> str:
    parts = []
    for index, (raw, quality) in enumerate(zip(raws, qualities, strict=True)):
        measured = ", ".join(EXPERTS[name].label.format(raw[name]) for name in members)
        target = "the image" if len(raws) == 1 else f"image {index + 1}"
        parts.append(f"{measured} for {target} (quality {quality:.1f})")
    return "Description: Measured " + "; ".join(parts) + "."
