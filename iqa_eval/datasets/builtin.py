"""The embedded default: a synthetic IQA set made from images that ship with scikit-image.

It exists so that the suite runs anywhere with nothing to download. Each (content, distortion
type) pair is a ladder of five severity levels; the ladder is the ground truth, so scores are
comparable only inside a group and the primary metrics are local means over groups. One content
per attribute is kept out of the test items and serves the in-context demonstrations.

Images are generated on first use into the cache directory, with a manifest of content hashes,
and checked against it on every later use; a damaged copy is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from iqa_eval.datasets.base import Dataset, DatasetCard, locked
from iqa_eval.distortions import distort, misalign
from iqa_eval.experts.fr import ciede2000
from iqa_eval.images import encode_png, pixel_hash
from iqa_eval.types import ATTRIBUTES, SETTINGS, Attribute, Item, Setting, Stimulus

VERSION = 1
SIZE = 256
LEVELS = (1, 2, 3, 4, 5)


def _square(rgb: np.ndarray) -> np.ndarray:
    """Centre square crop resized to SIZE: the whole scene at a size a model reads quickly."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(rgb[top : top + side, left : left + side])
    return np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS))


def _patch(rgb: np.ndarray) -> np.ndarray:
    """Centre crop at native resolution: resizing would wash out the fine texture under test."""
    h, w = rgb.shape[:2]
    top, left = (h - SIZE) // 2, (w - SIZE) // 2
    return np.ascontiguousarray(rgb[top : top + SIZE, left : left + SIZE])


def _rgb(gray_or_rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(gray_or_rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        data = getattr(skimage.data, name)()
        return _rgb(data[0] if isinstance(data, tuple) else data)

    return load


CONTENTS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": lambda: _square(_skimage("astronaut")()),
    "chelsea": lambda: _square(_skimage("chelsea")()),
    "coffee": lambda: _square(_skimage("coffee")()),
    "rocket": lambda: _square(_skimage("rocket")()),
    "motorcycle": lambda: _square(_skimage("stereo_motorcycle")()),
    "brick": lambda: _patch(_skimage("brick")()),
    "grass": lambda: _patch(_skimage("grass")()),
    "gravel": lambda: _patch(_skimage("gravel")()),
    "fur": lambda: _patch(_skimage("chelsea")()),
    "moon": lambda: _patch(_skimage("moon")()),
}

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
STRUCTURE_TYPES = ("blur", "noise", "jpeg", "pixelate")


@dataclass(frozen=True)
class Ladder:
    """How one (setting, attribute) is built: test contents, a demo content, distortion types."""

    contents: tuple[str, ...]
    demo: str
    types: tuple[str, ...]
    misaligned_reference: bool = False


def _ladders() -> dict[tuple[Setting, Attribute], Ladder]:
    structure = Ladder(PHOTOS, "motorcycle", STRUCTURE_TYPES)
    texture = Ladder(("brick", "grass", "gravel", "fur"), "moon", ("smooth", "posterize", "patch_shuffle"))
    color = Ladder(PHOTOS, "motorcycle", ("saturation", "hue", "cast", "quantize"))
    return {
        ("fr", "structure"): structure,
        ("nr", "structure"): structure,
        ("fr", "texture"): texture,
        ("nr", "texture"): texture,
        ("fr", "color"): color,
        ("nr", "color"): color,
        # The Aug-KADID idea: the reference is slightly shifted, rotated or scaled while the
        # judged image carries a known distortion, so the model must judge the distortion and
        # look past the misalignment.
        ("fr", "geometry"): Ladder(PHOTOS, "motorcycle", STRUCTURE_TYPES, misaligned_reference=True),
        ("nr", "geometry"): Ladder(PHOTOS, "motorcycle", ("stretch", "shear", "barrel", "tilt")),
    }


LADDERS = _ladders()


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@dataclass(frozen=True)
class _FileEntry:
    sha256_file: str
    pixels: str
    width: int
    height: int


class BuiltinDataset(Dataset):
    card = DatasetCard(
        name="builtin",
        description=(
            "Synthetic ladders of five severity levels per content and distortion type, made from "
            "photos and textures bundled with scikit-image."
        ),
        license="scikit-image sample images: public domain or CC0/CC-BY as listed in skimage.data",
        provenance=f"generated by iqa_eval.datasets.builtin v{VERSION}",
        ground_truth="severity level 1 (slight) .. 5 (strong); lower is better; comparable within a group",
        score_range=(1.0, 5.0),
        higher_is_better=False,
        aggregation="local_mean",
    )

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.root = Path(cache_dir) / "datasets" / f"builtin-v{VERSION}"

    def cells(self) -> tuple[tuple[Setting, Attribute], ...]:
        return tuple((s, a) for s in SETTINGS for a in ATTRIBUTES if (s, a) in LADDERS)

    def items(self, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
        ladder = LADDERS[(setting, attribute)]
        return tuple(self._ladder_items(setting, attribute, ladder, ladder.contents))

    def demo_pool(self, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
        ladder = LADDERS[(setting, attribute)]
        return tuple(self._ladder_items(setting, attribute, ladder, (ladder.demo,)))

    def manifest_digest(self) -> str:
        return hashlib.sha256(self._manifest_path.read_bytes()).hexdigest()[:16] if self._files else ""

    # -- building and verifying -------------------------------------------------------------

    @property
    def _manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @cached_property
    def _manifest(self) -> dict[str, object]:
        with locked(self.root.with_suffix(".lock")):
            manifest = self._verified_manifest()
            if manifest is None:
                self._build()
                manifest = self._verified_manifest()
                if manifest is None:
                    raise RuntimeError(f"{self.root}: freshly built dataset does not verify")
        return manifest

    @cached_property
    def _files(self) -> dict[str, _FileEntry]:
        files = self._manifest["files"]
        assert isinstance(files, dict)
        return {k: _FileEntry(**v) for k, v in files.items()}

    @cached_property
    def _meta(self) -> dict[str, dict[str, float]]:
        meta = self._manifest["meta"]
        assert isinstance(meta, dict)
        return meta

    def _verified_manifest(self) -> dict[str, object] | None:
        if not self._manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self._manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if manifest.get("version") != VERSION:
            return None
        damaged = [
            rel
            for rel, entry in manifest["files"].items()
            if not (self.root / rel).is_file() or _file_hash(self.root / rel) != entry["sha256_file"]
        ]
        if damaged:
            warnings.warn(
                f"{self.root}: {len(damaged)} generated file(s) do not match the manifest "
                f"(first: {damaged[0]}); rebuilding the built-in dataset",
                stacklevel=2,
            )
            return None
        return dict(manifest)

    def _build(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="builtin-", dir=self.root.parent))
        try:
            files: dict[str, dict[str, object]] = {}
            meta: dict[str, dict[str, float]] = {}
            for rel, pixels, extra in _generate():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encode_png(pixels))
                files[rel] = {
                    "sha256_file": _file_hash(path),
                    "pixels": pixel_hash(pixels),
                    "width": int(pixels.shape[1]),
                    "height": int(pixels.shape[0]),
                }
                if extra:
                    meta[rel] = extra
            manifest = {"version": VERSION, "files": files, "meta": meta}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
            if self.root.exists():
                shutil.rmtree(self.root)
            tmp.rename(self.root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def _stimulus(self, rel: str) -> Stimulus:
        entry = self._files[rel]
        return Stimulus(str(self.root / rel), entry.pixels, entry.width, entry.height)

    def _ladder_items(
        self, setting: Setting, attribute: Attribute, ladder: Ladder, contents: tuple[str, ...]
    ) -> Iterator[Item]:
        for content in contents:
            for kind in ladder.types:
                for level in LEVELS:
                    rel = _image_rel(ladder, attribute, content, kind, level)
                    meta: list[tuple[str, str | int | float]] = [
                        ("content", content),
                        ("distortion", kind),
                        ("level", level),
                    ]
                    meta.extend(sorted(self._meta.get(rel, {}).items()))
                    reference = None
                    if setting == "fr":
                        ref_rel = (
                            _misaligned_rel(content, kind, level)
                            if ladder.misaligned_reference
                            else _ref_rel(content)
                        )
                        reference = self._stimulus(ref_rel)
                        meta.extend(sorted(self._meta.get(ref_rel, {}).items()))
                    yield Item(
                        id=f"{setting}_{attribute}/{content}/{kind}/{level}",
                        dataset=self.name,
                        setting=setting,
                        attribute=attribute,
                        image=self._stimulus(rel),
                        reference=reference,
                        score=float(level),
                        higher_is_better=False,
                        group=f"{content}/{kind}",
                        meta=tuple(meta),
                    )


def _ref_rel(content: str) -> str:
    return f"references/{content}.png"


def _misaligned_rel(content: str, kind: str, level: int) -> str:
    return f"references/misaligned/{content}-{kind}-{level}.png"


def _image_rel(ladder: Ladder, attribute: Attribute, content: str, kind: str, level: int) -> str:
    # FR geometry reuses the structure images: only its references differ.
    folder = "structure" if ladder.misaligned_reference else attribute
    return f"{folder}/{content}-{kind}-{level}.png"


def _generate() -> Iterator[tuple[str, np.ndarray, dict[str, float]]]:
    """Every file of the dataset, each exactly once, deterministically."""
    done: set[str] = set()
    references: dict[str, np.ndarray] = {}
    for (_, attribute), ladder in LADDERS.items():
        for content in (*ladder.contents, ladder.demo):
            if content not in references:
                references[content] = CONTENTS[content]()
                yield _ref_rel(content), references[content], {}
            ref = references[content]
            for kind in ladder.types:
                for level in LEVELS:
                    if ladder.misaligned_reference:
                        rel = _misaligned_rel(content, kind, level)
                        if rel not in done:
                            done.add(rel)
                            moved, params = misalign(ref, _seed("misalign", content, kind, level))
                            yield rel, moved, {f"ref_{k}": float(v) for k, v in params.items()}
                    rel = _image_rel(ladder, attribute, content, kind, level)
                    if rel in done:
                        continue
                    done.add(rel)
                    # One seed per ladder: seeded damage (noise, patch shuffles) then nests level by level.
                    img = distort(ref, kind, level, _seed(content, kind))
                    extra: dict[str, float] = {}
                    if attribute == "color":
                        extra["ciede2000"] = round(ciede2000(ref, img), 4)
                    yield rel, img, extra


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
