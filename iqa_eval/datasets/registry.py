"""The public datasets the suite can read, by name: loading, listing and verifying a copy.

Loader modules are imported only when a dataset is loaded, so that reading the list of names
(the run configuration does, to check ``--iqa-data``) costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iqa_eval.datasets.base import DatasetError
from iqa_eval.datasets.public import PublicDataset, SelectionOptions
from iqa_eval.images import ImageError, ImageStore, load_rgb

Loader = Callable[..., PublicDataset]
MAX_LISTED = 20
"""Problems of one kind listed one by one before the rest are only counted."""


@dataclass(frozen=True)
class Known:
    """A dataset the suite reads: what it is, where its files go, and what a full copy holds."""

    name: str
    description: str
    layout: str
    module: str
    loader: str
    images: int | None = None
    references: int | None = None
    per_reference: int | None = None
    check_range: bool = True


KNOWN: dict[str, Known] = {
    k.name: k
    for k in (
        Known(
            "kadid10k",
            "KADID-10k: 81 photos x 25 synthetic distortions x 5 levels; FR and NR, structure and color",
            "dmos.csv + images/ (I01.png, I01_01_01.png, ...) as in the authors' kadid10k.zip",
            "kadid",
            "load_kadid10k",
            images=10125,
            references=81,
            per_reference=125,
        ),
        Known(
            "aug_kadid",
            "Aug-KADID: 150 KADID-10k items with a shifted, rotated, scaled reference; FR geometry",
            "made by 'iqa-eval datasets make-aug-kadid KADID_PATH OUT': aug_kadid.csv, images/, references/",
            "kadid",
            "load_aug_kadid",
        ),
        Known(
            "tqd",
            "TQD (DISTS paper): 10 reference textures x 15 versions; FR texture",
            "TQD_mos.txt (reference<TAB>image<TAB>score) + images/ (5-0.png reference, 5-1.png ...)",
            "tqd",
            "load_tqd",
            images=150,
            references=10,
            per_reference=15,
        ),
        Known(
            "spcd",
            "SPCD: smartphone photo pairs of one scene scored for colour difference (higher worse); FR color",
            "train_data.csv (image1,image2,score) + images/ (I0001_01_01.png ...), as in the authors' "
            "CD-Net repository",
            "spcd",
            "load_spcd",
            check_range=False,
        ),
        Known(
            "spaq",
            "SPAQ: 11,125 smartphone photos, MOS and five attribute scores; NR structure, color, texture",
            "TestImage/ + Annotations/MOS and Image attribute scores.xlsx (needs openpyxl)",
            "spaq",
            "load_spaq",
            images=11125,
        ),
        Known(
            "agiqa3k",
            "AGIQA-3K: 2,982 AI-generated images rated for quality; NR structure",
            "data.csv (from the authors' repository) + AGIQA-3K/ (the image archive)",
            "agiqa",
            "load_agiqa3k",
            images=2982,
        ),
        Known(
            "koniq10k",
            "KonIQ-10k: 10,073 in-the-wild photos with crowd vote histograms; NR structure",
            "koniq10k_scores_and_distributions.csv + 1024x768/",
            "koniq",
            "load_koniq10k",
            images=10073,
        ),
        Known(
            "tid2013",
            "TID2013: 25 references x 24 distortions x 5 levels; FR structure and color",
            "mos_with_names.txt + mos_std.txt + distorted_images/ + reference_images/",
            "tid2013",
            "load_tid2013",
            images=3000,
            references=25,
            per_reference=120,
        ),
        Known(
            "csiq",
            "CSIQ: 30 references x 6 distortions x 4-5 levels (DMOS, higher worse); FR structure",
            "csiq.DMOS.xlsx (sheet all_by_image; needs openpyxl) + src_imgs/ + dst_imgs/<type>/",
            "csiq",
            "load_csiq",
            images=866,
            references=30,
        ),
        Known(
            "live_challenge",
            "LIVE Challenge: 1,162 authentic mobile photos; NR structure",
            "Images/ + Data/AllImages_release.mat, AllMOS_release.mat, AllStdDev_release.mat",
            "livec",
            "load_live_challenge",
            images=1162,
        ),
    )
}

NAMES: tuple[str, ...] = tuple(KNOWN)


def known(name: str) -> Known:
    if name not in KNOWN:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    return KNOWN[name]


def describe() -> list[tuple[str, str, str]]:
    """(name, description, expected folder layout) of every known dataset, for ``datasets list``."""
    return [(k.name, k.description, k.layout) for k in KNOWN.values()]


def load_dataset(
    name: str,
    path: str | Path,
    *,
    store: ImageStore | None = None,
    selection: SelectionOptions | None = None,
) -> PublicDataset:
    """The dataset ``name`` read from the folder ``path``; DatasetError for a bad name or copy."""
    entry = known(name)
    loader: Loader = getattr(importlib.import_module(f"iqa_eval.datasets.{entry.module}"), entry.loader)
    return loader(Path(path), store=store, selection_options=selection)


def verify(name: str, path: str | Path, *, decode: bool = False) -> list[str]:
    """Problems of a copy of ``name`` at ``path``; an empty list means it is complete and sound.

    Loading checks the score files row by row and that every listed image exists inside the
    root; this adds the published counts and score range, and with ``decode`` reads every
    image in full (slow: minutes for ten thousand photos). None of these datasets' authors
    publish file checksums, so none are compared.
    """
    entry = known(name)
    try:
        dataset = load_dataset(name, path)
    except DatasetError as err:
        return [str(err)]
    problems: list[str] = []
    keys = {e.key for e in dataset.entries}
    if entry.images is not None and len(keys) != entry.images:
        problems.append(f"{path}: {len(keys)} scored images where the published {name} has {entry.images}")
    per_reference: dict[Path, set[str]] = {}
    for e in dataset.entries:
        if e.reference is not None:
            per_reference.setdefault(e.reference, set()).add(e.key)
    if entry.references is not None and len(per_reference) != entry.references:
        problems.append(
            f"{path}: {len(per_reference)} references where the published {name} has {entry.references}"
        )
    if entry.per_reference is not None:
        short = sorted(
            str(ref.name) for ref, members in per_reference.items() if len(members) != entry.per_reference
        )
        if short:
            problems.append(
                f"{path}: {len(short)} reference(s) without exactly {entry.per_reference} images: "
                + ", ".join(short[:MAX_LISTED])
            )
    if entry.check_range:
        low, high = dataset.card.score_range
        outside = [e for e in dataset.entries if not low <= e.score <= high]
        problems.extend(
            f"{e.source}: score {e.score:g} outside the published range {low:g}..{high:g}"
            for e in outside[:MAX_LISTED]
        )
        if len(outside) > MAX_LISTED:
            problems.append(f"... and {len(outside) - MAX_LISTED} more scores outside the range")
    if decode:
        problems.extend(_decode_all(dataset))
    return problems


def _decode_all(dataset: PublicDataset) -> list[str]:
    files = sorted({e.image for e in dataset.entries} | {e.reference for e in dataset.entries if e.reference})
    broken: list[str] = []
    for path in files:
        try:
            load_rgb(path)
        except ImageError as err:
            broken.append(str(err))
    if len(broken) > MAX_LISTED:
        broken = [*broken[:MAX_LISTED], f"... and {len(broken) - MAX_LISTED} more unreadable images"]
    return broken
