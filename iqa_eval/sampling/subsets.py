"""Difficult subsets as files: built once, saved as manifests, reused; and the data commands.

Selecting a difficult subset measures every candidate image (minutes for ten thousand), so a
selection is saved as a manifest, a JSON file holding the chosen item ids with everything that
produced them: dataset digest, proxies and how each was fitted, features, λ, n, seed. The
cache key covers all of these, so a changed score file or option makes a new selection instead
of reusing a stale one. Manifests live under ``<cache>/selections/`` and are written under a
file lock, so pytest-xdist workers that need the same subset build it once.

The ``cmd_*`` functions are what ``iqa-eval select`` and ``iqa-eval datasets ...`` call; each
reports a user mistake (a bad copy, name or option) in one line and returns 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from iqa_eval.datasets import custom
from iqa_eval.datasets.base import Dataset, DatasetError, locked
from iqa_eval.datasets.public import PublicDataset
from iqa_eval.datasets.registry import describe, load_dataset, verify
from iqa_eval.images import ImageError
from iqa_eval.sampling import SelectionError
from iqa_eval.sampling.difficult import LAMBDA, select_difficult
from iqa_eval.sampling.features import FeatureExtractor, feature_extractor
from iqa_eval.sampling.proxies import Proxy, expert_proxies
from iqa_eval.sampling.uniform import NR_SAMPLE
from iqa_eval.types import ATTRIBUTES, SETTINGS, Attribute, Item, Setting

SCHEMA = "iqa_eval.subset/1"
DIFFICULT = "difficult"
FINEGRAINED = "finegrained"
USER_ERRORS = (DatasetError, ImageError, SelectionError)


def stage2_subset(dataset: Dataset) -> str:
    """The subset stage 2 judges: ``difficult`` where ground truth is human opinion (a public
    dataset's MOS, with its std where published), ``finegrained`` for a constructed severity
    ladder such as the built-in set, which has no opinion to be hard against (see
    :func:`iqa_eval.sampling.uniform.finegrained`)."""
    return DIFFICULT if isinstance(dataset, PublicDataset) else FINEGRAINED


@dataclass(frozen=True)
class SelectionRequest:
    """Everything a difficult selection depends on besides the dataset and the cell."""

    n: int = NR_SAMPLE
    lam: float = LAMBDA
    proxies: tuple[str, ...] = ()
    features: str = "handcrafted"
    seed: int = 0
    max_candidates: int | None = None

    def key(self, dataset: Dataset, setting: Setting, attribute: Attribute) -> str:
        payload = {
            "schema": SCHEMA,
            "dataset": dataset.name,
            "digest": dataset.manifest_digest(),
            "cell": f"{setting}_{attribute}",
            "n": self.n,
            "lambda": self.lam,
            "proxies": list(self.proxies),
            "features": self.features,
            "seed": self.seed,
            "max_candidates": self.max_candidates,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


_extractor = cache(feature_extractor)
"""One extractor per spec and process: a CLIP model is loaded once for every cell."""


def build_manifest(
    dataset: Dataset,
    setting: Setting,
    attribute: Attribute,
    request: SelectionRequest,
    *,
    proxies: Sequence[Proxy] | None = None,
    features: FeatureExtractor | None = None,
) -> dict[str, Any]:
    """Select and describe a difficult subset (no caching). Custom ``proxies`` and ``features``
    override the request's names; the manifest records whichever were used."""
    items = dataset.items(setting, attribute)
    candidates = list(items)
    if request.max_candidates is not None and len(candidates) > request.max_candidates:
        rng = np.random.default_rng(request.seed)
        keep = np.sort(rng.choice(len(candidates), request.max_candidates, replace=False))
        candidates = [candidates[i] for i in keep]
    used_proxies: Sequence[Proxy] = (
        tuple(proxies) if proxies is not None else expert_proxies(setting, request.proxies)
    )
    extractor = features if features is not None else _extractor(request.features)
    chosen = select_difficult(
        candidates, setting, proxies=used_proxies, features=extractor, n=request.n, lam=request.lam
    )
    return {
        "schema": SCHEMA,
        "method": DIFFICULT,
        "key": request.key(dataset, setting, attribute),
        "dataset": dataset.name,
        "dataset_digest": dataset.manifest_digest(),
        "setting": setting,
        "attribute": attribute,
        "n": request.n,
        "lambda": request.lam,
        "seed": request.seed,
        "max_candidates": request.max_candidates,
        "candidates": chosen.candidates,
        "proxies": [{"name": f.name, "fit": f.fit, "params": list(f.params)} for f in chosen.fits],
        "features": chosen.features,
        "items": [
            {"id": i, "group": g, "difficulty": d}
            for i, g, d in zip(chosen.item_ids, chosen.groups, chosen.difficulty, strict=True)
        ],
    }


def manifest_path(
    cache_dir: Path, dataset: Dataset, setting: Setting, attribute: Attribute, key: str
) -> Path:
    return cache_dir / "selections" / f"{dataset.name}-{setting}_{attribute}-{key}.json"


def difficult_manifest(
    dataset: Dataset,
    setting: Setting,
    attribute: Attribute,
    request: SelectionRequest,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """The manifest for this request: read from the cache when a valid one is there, else
    built (and saved when there is a cache)."""
    if cache_dir is None:
        return build_manifest(dataset, setting, attribute, request)
    key = request.key(dataset, setting, attribute)
    path = manifest_path(cache_dir, dataset, setting, attribute, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_suffix(".lock")):
        cached = _read_manifest(path, dataset, key)
        if cached is not None:
            return cached
        manifest = build_manifest(dataset, setting, attribute, request)
        _write_json(path, manifest)
        return manifest


def items_of(dataset: Dataset, manifest: dict[str, Any]) -> tuple[Item, ...]:
    """The manifest's items, in the dataset's own order so plans stay stable."""
    items = dataset.items(manifest["setting"], manifest["attribute"])
    wanted = {entry["id"] for entry in manifest["items"]}
    chosen = tuple(item for item in items if item.id in wanted)
    if len(chosen) != len(wanted):
        missing = sorted(wanted - {item.id for item in chosen})
        raise SelectionError(
            f"subset manifest names items {dataset.name} does not have: {', '.join(missing[:5])}"
        )
    return chosen


def difficult_subset(dataset: Dataset, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
    """The stage-2 ``difficult`` subset of a cell, with the run's selection options."""
    if not isinstance(dataset, PublicDataset):
        raise SelectionError(f"{dataset.name} has no human opinion scores to select difficult items by")
    options = dataset.selection
    request = SelectionRequest(features=options.features, seed=options.seed)
    return items_of(dataset, difficult_manifest(dataset, setting, attribute, request, options.cache_dir))


def _read_manifest(path: Path, dataset: Dataset, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        valid = (
            manifest.get("schema") == SCHEMA
            and manifest.get("key") == key
            and manifest.get("dataset_digest") == dataset.manifest_digest()
        )
        if valid:
            items_of(dataset, manifest)
            return dict(manifest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        warnings.warn(f"{path}: unusable subset manifest ({err}); selecting again", stacklevel=3)
        return None
    warnings.warn(
        f"{path}: subset manifest does not match the dataset or request; selecting again", stacklevel=3
    )
    return None


def _write_json(path: Path, payload: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- commands ---------------------------------------------------------------------------------


def _fail(err: Exception) -> int:
    print(f"iqa-eval: {err}", file=sys.stderr)
    return 2


def _cells(dataset: Dataset, wanted: Sequence[str] | None) -> list[tuple[Setting, Attribute]]:
    available = list(dataset.cells())
    if not wanted:
        return available
    chosen = []
    for text in wanted:
        setting, _, attribute = text.partition("_")
        if setting not in SETTINGS or attribute not in ATTRIBUTES or (setting, attribute) not in available:
            raise SelectionError(
                f"{dataset.name} has no cell {text!r}; its cells: "
                + ", ".join(f"{s}_{a}" for s, a in available)
            )
        chosen.append((setting, attribute))
    return chosen


def cmd_select(args: argparse.Namespace) -> int:
    """``iqa-eval select NAME PATH``: difficult subsets of a dataset's cells, cached for the suite."""
    try:
        dataset = load_dataset(args.name, args.path)
        request = SelectionRequest(
            n=args.n,
            proxies=tuple(args.proxy or ()),
            features=args.features,
            seed=args.seed,
            max_candidates=args.max_candidates,
        )
        manifests = []
        for setting, attribute in _cells(dataset, args.cell):
            manifest = difficult_manifest(dataset, setting, attribute, request, Path(args.cache))
            manifests.append(manifest)
            print(
                f"{dataset.name} {setting}_{attribute}: {len(manifest['items'])} of {manifest['candidates']} "
                f"candidates (proxies {', '.join(p['name'] for p in manifest['proxies'])}; features "
                f"{manifest['features']}; key {manifest['key']})"
            )
    except USER_ERRORS as err:
        return _fail(err)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_json(out, {"dataset": dataset.name, "path": str(args.path), "subsets": manifests})
        print(out)
    return 0


def cmd_datasets_list(args: argparse.Namespace) -> int:
    """``iqa-eval datasets list``: the public datasets ``--iqa-data NAME=PATH`` accepts, and the
    generic layout of your own data."""
    del args
    for name, description, layout in describe():
        print(f"{name}: {description}")
        print(f"  layout: {layout}")
    print("your own data: --iqa-data NAME=PATH, or NAME:ATTRIBUTE=PATH to give every row one attribute")
    print(f"  layout: {custom.LAYOUT}")
    print("  check it with: iqa-eval datasets verify NAME PATH (or NAME:ATTRIBUTE PATH)")
    return 0


def cmd_datasets_verify(args: argparse.Namespace) -> int:
    """``iqa-eval datasets verify NAME PATH [--decode]``: 0 for a sound copy, 1 with problems."""
    try:
        problems = verify(args.name, args.path, decode=args.decode)
    except USER_ERRORS as err:
        return _fail(err)
    for problem in problems:
        print(problem)
    print(f"{args.name} at {args.path}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def cmd_make_aug_kadid(args: argparse.Namespace) -> int:
    """``iqa-eval datasets make-aug-kadid KADID_PATH OUT [--seed N]``."""
    from iqa_eval.sampling.make_aug_kadid import generate_aug_kadid

    try:
        out = generate_aug_kadid(Path(args.kadid), Path(args.out), seed=args.seed)
    except USER_ERRORS as err:
        return _fail(err)
    print(out)
    return 0
