"""Quality predictors that stand in for a model while difficult samples are chosen, and how
their values are mapped onto the MOS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from PIL import Image

from iqa_eval.experts.panel import EXPERTS
from iqa_eval.metrics import fit_logistic, logistic4
from iqa_eval.sampling import SelectionError
from iqa_eval.types import Item, Setting

DEFAULT_PROXIES: dict[Setting, tuple[str, str]] = {"fr": ("ms_ssim", "gmsd"), "nr": ("niqe", "sharpness")}
"""Expert-panel measures standing in for the study's DISTS + LPIPS (FR): a multi-scale structural
measure and a gradient one; in NR a naturalness model and a detail measure."""

Pixels = NDArray[np.uint8]
Floats = NDArray[np.float64]


class Proxy(Protocol):
    """A quality predictor standing in for a model during selection.

    It sees the item and its decoded pixels (the reference is None in NR), so it can measure
    them or look up a score computed elsewhere (say DISTS on a GPU) by ``item.id``.
    """

    @property
    def name(self) -> str: ...

    @property
    def higher_is_better(self) -> bool: ...

    def __call__(self, item: Item, reference: Pixels | None, image: Pixels) -> float: ...


@dataclass(frozen=True)
class ExpertProxy:
    """A measure of the classical expert panel, as a proxy.

    Photos larger than ``PROXY_SIDE`` on their short side are block-averaged down by an integer
    factor first (the study measured at 224-256 px): a proxy only orders candidates, and NIQE
    on a 12-megapixel SPAQ photo would take seconds per image.
    """

    expert: str

    @property
    def name(self) -> str:
        return f"expert:{self.expert}"

    @property
    def higher_is_better(self) -> bool:
        return EXPERTS[self.expert].higher_is_better

    def __call__(self, item: Item, reference: Pixels | None, image: Pixels) -> float:
        measure = EXPERTS[self.expert]
        if measure.setting == "fr":
            if reference is None:
                raise SelectionError(f"{self.name} is full-reference and {item.id} has no reference")
            return float(measure.raw(shrink(reference), shrink(image)))
        return float(measure.raw(shrink(image)))


PROXY_SIDE = 512


def shrink(pixels: Pixels) -> Pixels:
    """``pixels`` block-averaged by the largest integer factor that keeps the short side at least
    ``PROXY_SIDE`` (unchanged when it is shorter than twice that)."""
    factor = min(pixels.shape[:2]) // PROXY_SIDE
    if factor < 2:
        return pixels
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).reduce(factor), dtype=np.uint8)


def expert_proxies(setting: Setting, names: Sequence[str] | None = None) -> tuple[ExpertProxy, ...]:
    """Expert proxies by name (the setting's defaults when none are named)."""
    chosen = tuple(names) if names else DEFAULT_PROXIES[setting]
    for name in chosen:
        expert = EXPERTS.get(name)
        if expert is None or (expert.setting == "fr" and setting == "nr"):
            usable = [n for n, e in EXPERTS.items() if setting == "fr" or e.setting == "nr"]
            raise SelectionError(f"{name!r} is not a {setting.upper()} proxy; use one of {', '.join(usable)}")
    return tuple(ExpertProxy(name) for name in chosen)


@dataclass(frozen=True)
class ProxyFit:
    """How one proxy's raw values were mapped onto the normalised MOS."""

    name: str
    fit: str  # "logistic", "linear" (the logistic failed) or "constant" (no spread to fit)
    params: tuple[float, ...]


def map_to_mos(
    raw: npt.ArrayLike, truth: npt.ArrayLike, name: str, higher_is_better: bool
) -> tuple[Floats, ProxyFit]:
    """A proxy's predictions on the MOS scale: the 4-parameter logistic, oriented first so the
    fit starts on the right slope; a straight line if the logistic will not fit."""
    x = np.asarray(raw, dtype=np.float64) * (1.0 if higher_is_better else -1.0)
    q = np.asarray(truth, dtype=np.float64)
    params = fit_logistic(x, q)
    if params is not None:
        return logistic4(x, *params), ProxyFit(name, "logistic", params)
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, q, 1)
        return np.asarray(slope * x + intercept, dtype=np.float64), ProxyFit(
            name, "linear", (slope, intercept)
        )
    mean = float(q.mean())
    return np.full_like(q, mean), ProxyFit(name, "constant", (mean,))
