"""Semantic features for diversity: one unit-length row per image, handcrafted (offline) or CLIP."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from PIL import Image

from iqa_eval.experts.fr import luminance
from iqa_eval.sampling import SelectionError

Pixels = NDArray[np.uint8]
Floats = NDArray[np.float64]


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
