"""Which items a cell judges: a sample that keeps the spread of quality, or the hard cases.

Uniform-by-rank sampling is the study's stage-1 design: sort by quality and take evenly spaced
ranks, so a small sample still spans the whole range instead of clustering where most items lie.
In FR it works on two levels: groups (references) evenly spaced by their mean quality, then
distorted images evenly spaced inside each group. A set no larger than the sample is taken whole.

Difficult-sample selection is the study's stage 2. Each candidate gets a difficulty
d = (q̂ − q)² / (σ² + 1) from its MOS q and rating std σ (both min-max normalised over the
candidates) and a proxy prediction q̂: the mean of two expert measures, each mapped onto the
normalised MOS by the 4-parameter logistic fitted on the candidates. Items are then picked
greedily by d + λ·v(S), where v(S) = 1 − cos(φ, mean φ of the items picked so far) (1 while
nothing is picked) rewards semantic novelty, φ being a per-item feature vector normalised to
unit length along the feature axis. In FR the study picks references first, by the mean
difficulty of their images plus λ·v over reference features, then the most difficult images
of each. Proxies and features are pluggable; the defaults need neither a GPU nor a download.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from PIL import Image

from iqa_eval.experts.fr import luminance
from iqa_eval.experts.panel import EXPERTS
from iqa_eval.images import load_rgb
from iqa_eval.metrics import fit_logistic, logistic4
from iqa_eval.types import Item, Setting

NR_SAMPLE = 150
FR_REFERENCES = 15
FR_PER_REFERENCE = 10
LAMBDA = 0.01
"""Weight of semantic diversity against difficulty (the study's value)."""

DEFAULT_PROXIES: dict[Setting, tuple[str, str]] = {"fr": ("ms_ssim", "gmsd"), "nr": ("niqe", "sharpness")}
"""Expert-panel measures standing in for the study's DISTS + LPIPS (FR): a multi-scale structural
measure and a gradient one; in NR a naturalness model and a detail measure."""

Pixels = NDArray[np.uint8]
Floats = NDArray[np.float64]


class SelectionError(ValueError):
    """Selection cannot proceed on these items or with these proxies; the message says why.

    The plugin and the command line report it as a user's problem in one line, as they do a
    DatasetError; it is not one, because sampling works on items and knows no dataset files.
    """


# -- stage 1 ----------------------------------------------------------------------------------


def evenly_by_rank(items: Sequence[Item], n: int) -> list[Item]:
    """``n`` items at evenly spaced quality ranks (all of them when there are not more)."""
    ranked = sorted(items, key=lambda i: (i.quality, i.id))
    if len(ranked) <= n:
        return ranked
    picks = np.unique(np.round(np.linspace(0, len(ranked) - 1, n)).astype(int))
    return [ranked[i] for i in picks]


def uniform(items: Sequence[Item], fr: bool) -> tuple[Item, ...]:
    """The stage-1 sample, returned in the dataset's own order so plans stay stable."""
    if len(items) <= FR_REFERENCES * FR_PER_REFERENCE:
        return tuple(items)
    if not fr:
        chosen = evenly_by_rank(items, NR_SAMPLE)
    else:
        by_group: dict[str, list[Item]] = {}
        for item in items:
            by_group.setdefault(item.group, []).append(item)
        groups = sorted(by_group, key=lambda g: (float(np.mean([i.quality for i in by_group[g]])), g))
        if len(groups) > FR_REFERENCES:
            idx = np.unique(np.round(np.linspace(0, len(groups) - 1, FR_REFERENCES)).astype(int))
            groups = [groups[i] for i in idx]
        chosen = [item for g in groups for item in evenly_by_rank(by_group[g], FR_PER_REFERENCE)]
    keep = {item.id for item in chosen}
    return tuple(item for item in items if item.id in keep)


def finegrained(items: Sequence[Item]) -> tuple[Item, ...]:
    """Each group without its most degraded item: the subtle end of every ladder.

    This is the built-in dataset's stage 2. Difficult-sample selection needs human opinion to
    be hard against: a MOS whose prediction can be wrong and a rating spread that says how sure
    people were. A constructed severity ladder has neither (its order is exact by construction
    and it has no std), so for it the hard part is the small steps: what remains differs by
    smaller steps than the whole group. Groups keep at least four items so every protocol (MS
    needs four) can still run; smaller groups are kept whole.
    """
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    drop = {
        min(members, key=lambda i: (i.quality, i.id)).id for members in groups.values() if len(members) >= 5
    }
    return tuple(item for item in items if item.id not in drop)


# -- proxies and features ---------------------------------------------------------------------


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


class FeatureExtractor(Protocol):
    """Semantic features: one row per image, each of unit L2 norm along the feature axis."""

    @property
    def name(self) -> str: ...

    def __call__(self, images: Sequence[Pixels]) -> Floats: ...


def l2_rows(matrix: npt.ArrayLike) -> Floats:
    """Each row scaled to unit length (rows of zeros stay zero).

    Along axis 1, the feature axis: normalising along axis 0 (over items, as the study's code
    did) makes each item's vector depend on the others and breaks the cosine.
    """
    rows = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms == 0, 1.0, norms), dtype=np.float64)


THUMB = 64
COLOUR_BINS = 4
ORIENTATION_BINS = 8
LAYOUT_GRID = 8


class HandcraftedFeatures:
    """Colour, edge and layout statistics of a 64x64 thumbnail: offline semantics for diversity.

    Three blocks, each normalised to unit length so none dominates: the joint RGB histogram
    (4x4x4 bins, square-rooted: the Hellinger embedding), gradient orientations weighted by
    magnitude in each image quadrant (4x8), and the 8x8 luminance layout with its mean removed.
    Two photos of one scene land close; a texture and a portrait land far apart.
    """

    name = "handcrafted-v1"

    def __call__(self, images: Sequence[Pixels]) -> Floats:
        return l2_rows([self._one(image) for image in images])

    @staticmethod
    def _one(image: Pixels) -> Floats:
        thumb = np.asarray(
            Image.fromarray(np.ascontiguousarray(image)).resize((THUMB, THUMB), Image.Resampling.BILINEAR),
            dtype=np.float64,
        )
        bins = np.minimum((thumb / 256.0 * COLOUR_BINS).astype(int), COLOUR_BINS - 1)
        joint = bins[..., 0] * COLOUR_BINS * COLOUR_BINS + bins[..., 1] * COLOUR_BINS + bins[..., 2]
        colour = np.sqrt(np.bincount(joint.ravel(), minlength=COLOUR_BINS**3) / joint.size)
        grey = luminance(thumb)
        gy, gx = np.gradient(grey)
        magnitude = np.hypot(gx, gy)
        orientation = np.minimum(
            (np.mod(np.arctan2(gy, gx), np.pi) / np.pi * ORIENTATION_BINS).astype(int), ORIENTATION_BINS - 1
        )
        half = THUMB // 2
        edges = np.concatenate(
            [
                np.bincount(
                    orientation[r : r + half, c : c + half].ravel(),
                    weights=magnitude[r : r + half, c : c + half].ravel(),
                    minlength=ORIENTATION_BINS,
                )
                for r in (0, half)
                for c in (0, half)
            ]
        )
        step = THUMB // LAYOUT_GRID
        layout = grey.reshape(LAYOUT_GRID, step, LAYOUT_GRID, step).mean(axis=(1, 3)).ravel()
        layout = layout - layout.mean()
        return np.concatenate([l2_rows(colour)[0], l2_rows(edges)[0], l2_rows(layout)[0]])


class ClipFeatures:
    """CLIP image embeddings through transformers (``hf:<local path or hub id>``).

    The study used CLIP ViT-B/32 (``hf:openai/clip-vit-base-patch32``). torch and transformers
    are imported on first use only, so the default path never needs them.
    """

    def __init__(self, source: str) -> None:
        if not source:
            raise SelectionError("hf: features need a CLIP model path or hub id after 'hf:'")
        self.source = source
        self.name = f"hf:{source}"
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                try:
                    from transformers import CLIPModel, CLIPProcessor
                except ImportError:
                    raise SelectionError(
                        f"{self.name} needs torch and transformers: pip install 'iqa-eval[hf]'"
                    ) from None
                try:
                    model: Any = CLIPModel.from_pretrained(self.source)
                    processor: Any = CLIPProcessor.from_pretrained(self.source)
                except (OSError, ValueError) as err:
                    raise SelectionError(f"cannot load CLIP from {self.source!r}: {err}") from None
                model.eval()
                self._loaded = (model, processor)
            return self._loaded

    def __call__(self, images: Sequence[Pixels]) -> Floats:
        import torch

        model, processor = self._load()
        inputs = processor(images=[np.asarray(image) for image in images], return_tensors="pt")
        with torch.no_grad():
            output = model.get_image_features(pixel_values=inputs["pixel_values"])
        # transformers 5 returns a model output whose pooler_output is the projected embedding;
        # older releases return the tensor itself.
        embedding = output if isinstance(output, torch.Tensor) else output.pooler_output
        return l2_rows(embedding.detach().float().cpu().numpy())


def feature_extractor(spec: str) -> FeatureExtractor:
    """``handcrafted`` (the default) or ``hf:<CLIP path or hub id>``."""
    if spec == "handcrafted":
        return HandcraftedFeatures()
    if spec.startswith("hf:"):
        return ClipFeatures(spec[3:])
    raise SelectionError(f"unknown feature extractor {spec!r}; use 'handcrafted' or 'hf:<CLIP path or id>'")


# -- the selection itself ---------------------------------------------------------------------


def minmax(values: npt.ArrayLike) -> Floats:
    """Values mapped onto [0, 1]; a constant vector maps to zeros (it carries no spread)."""
    x = np.asarray(values, dtype=np.float64)
    span = float(x.max() - x.min()) if x.size else 0.0
    return np.zeros_like(x) if span == 0 else np.asarray((x - x.min()) / span, dtype=np.float64)


def difficulty(predicted: npt.ArrayLike, truth: npt.ArrayLike, std: npt.ArrayLike) -> Floats:
    """d = (q̂ − q)² / (σ² + 1): large where the proxies are wrong and people agreed."""
    q_hat, q, sigma = (np.asarray(a, dtype=np.float64) for a in (predicted, truth, std))
    return np.asarray((q_hat - q) ** 2 / (sigma**2 + 1.0), dtype=np.float64)


def greedy_diverse(
    difficulties: npt.ArrayLike, features: npt.ArrayLike, n: int, lam: float = LAMBDA
) -> list[int]:
    """Indices picked one by one by argmax d + λ·v(S); ties go to the lower index.

    ``features`` rows must have unit length; v = 1 − cos(φ_i, mean of the picked φ), and 1
    while nothing is picked or the picked features cancel out.
    """
    d = np.asarray(difficulties, dtype=np.float64)
    phi = np.asarray(features, dtype=np.float64)
    if phi.shape[0] != d.size:
        raise SelectionError(f"{d.size} difficulties but {phi.shape[0]} feature rows")
    available = np.ones(d.size, dtype=bool)
    total = np.zeros(phi.shape[1])
    chosen: list[int] = []
    for _ in range(min(n, d.size)):
        norm = float(np.linalg.norm(total))
        diversity = np.ones(d.size) if norm == 0 else 1.0 - phi @ (total / norm)
        score = np.where(available, d + lam * diversity, -np.inf)
        pick = int(np.argmax(score))
        chosen.append(pick)
        available[pick] = False
        total += phi[pick]
    return chosen


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


@dataclass(frozen=True)
class Selection:
    """A difficult subset and what produced it, in pick order."""

    item_ids: tuple[str, ...]
    difficulty: tuple[float, ...]
    groups: tuple[str, ...]
    fits: tuple[ProxyFit, ...]
    features: str
    candidates: int


Loader = Callable[[str], Pixels]


def select_difficult(
    items: Sequence[Item],
    setting: Setting,
    *,
    proxies: Sequence[Proxy],
    features: FeatureExtractor,
    n: int = NR_SAMPLE,
    lam: float = LAMBDA,
    load: Loader = load_rgb,
    workers: int | None = None,
) -> Selection:
    """The study's difficult sample of ``items`` (all candidates; subsample beforehand to cap
    the cost). Measuring is the expensive part (every candidate decoded and measured), so it
    runs on a few threads: the measures are numpy work that releases the GIL."""
    if not proxies:
        raise SelectionError("difficult selection needs at least one proxy")
    if n < 1:
        raise SelectionError(f"n must be at least 1, got {n}")
    ordered = sorted(items, key=lambda i: i.id)
    if not ordered:
        raise SelectionError("no items to select from")
    threads = workers or min(4, os.cpu_count() or 1)
    q = minmax([i.quality for i in ordered])
    sigma = minmax(_stds(ordered))

    def measure(item: Item) -> tuple[list[float], Floats | None]:
        reference = load(item.reference.path) if setting == "fr" and item.reference is not None else None
        image = load(item.image.path)
        values = []
        for proxy in proxies:
            try:
                values.append(float(proxy(item, reference, image)))
            except SelectionError:
                raise
            except (ValueError, ArithmeticError) as err:
                raise SelectionError(f"{item.id}: proxy {proxy.name} failed: {err}") from None
        if not all(math.isfinite(v) for v in values):
            raise SelectionError(f"{item.id}: a proxy gave a non-finite value {values}")
        return values, (features([image])[0] if setting == "nr" else None)

    with ThreadPoolExecutor(threads) as pool:
        measured = list(pool.map(measure, ordered))
    raw = np.array([values for values, _ in measured], dtype=np.float64)
    mapped = [map_to_mos(raw[:, j], q, p.name, p.higher_is_better) for j, p in enumerate(proxies)]
    q_hat = np.mean([m[0] for m in mapped], axis=0)
    d = difficulty(q_hat, q, sigma)
    fits = tuple(m[1] for m in mapped)
    if setting == "nr":
        phi = np.array([f for _, f in measured], dtype=np.float64)
        picks = greedy_diverse(d, phi, n, lam)
        return Selection(
            tuple(ordered[i].id for i in picks),
            tuple(float(d[i]) for i in picks),
            tuple(ordered[i].group for i in picks),
            fits,
            features.name,
            len(ordered),
        )
    return _select_fr(ordered, d, fits, features, n, lam, load, threads)


def _stds(items: Sequence[Item]) -> list[float]:
    given = [i.std for i in items if i.std is not None]
    if not given:
        return [0.0] * len(items)
    if len(given) != len(items):
        raise SelectionError("some items have a rating std and others not; cannot normalise σ")
    return [float(s) for s in given]


def _select_fr(
    ordered: Sequence[Item],
    d: Floats,
    fits: tuple[ProxyFit, ...],
    features: FeatureExtractor,
    n: int,
    lam: float,
    load: Loader,
    threads: int,
) -> Selection:
    """References first (mean difficulty + λ·v over reference features), then the most
    difficult images of each. A group's reference feature is that of its first item's
    reference, which is every item's reference in datasets with one per group."""
    members: dict[str, list[int]] = {}
    for index, item in enumerate(ordered):
        members.setdefault(item.group, []).append(index)
    groups = sorted(members)
    group_d = np.array([d[members[g]].mean() for g in groups])

    def reference_feature(group: str) -> Floats:
        reference = ordered[members[group][0]].reference
        if reference is None:
            raise SelectionError(
                f"{ordered[members[group][0]].id}: a full-reference item without a reference"
            )
        return np.asarray(features([load(reference.path)])[0], dtype=np.float64)

    with ThreadPoolExecutor(threads) as pool:
        phi = np.array(list(pool.map(reference_feature, groups)), dtype=np.float64)
    n_groups = max(1, round(n / FR_PER_REFERENCE))
    picked_ids: list[str] = []
    picked_d: list[float] = []
    picked_groups: list[str] = []
    for g in greedy_diverse(group_d, phi, n_groups, lam):
        inside = sorted(members[groups[g]], key=lambda i: (-d[i], ordered[i].id))[:FR_PER_REFERENCE]
        picked_ids.extend(ordered[i].id for i in inside)
        picked_d.extend(float(d[i]) for i in inside)
        picked_groups.extend(groups[g] for _ in inside)
    return Selection(
        tuple(picked_ids), tuple(picked_d), tuple(picked_groups), fits, features.name, len(ordered)
    )
