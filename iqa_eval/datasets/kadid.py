"""KADID-10k (Lin, Hosu & Saupe 2019), FR and NR, structure and color.

81 pristine photos, each distorted by 25 types at 5 levels (10,125 images), every
image rated by 30 crowd workers on a 1..5 degradation scale. The authors' archive holds
``dmos.csv`` (``dist_img,ref_img,dmos,var``) and ``images/`` with both the references
(``I01.png``) and the distorted images (``I01_01_01.png``: reference 01, type 01, level 01).
The column is called dmos, but it is a mean opinion score: higher is better.

Distortion types map onto the suite's attributes by what they damage. Colour (4–8) and
brightness (16–18) change colour and luminance values without touching structure: ``color``.
Everything else (blur 1–3, compression 9–10, noise 11–15, spatial 19–23, sharpness and
contrast 24–25) damages edges, detail or local structure: ``structure``. Type 12 (noise in a
colour component) is noise first and stays with the noise types; contrast (25) is named as its
own aspect in the study's prompts, apart from colour and luminance, and stays with sharpening.
No type is ``texture`` (the study takes texture from TQD) or ``geometry``: the spatial types
displace pixels locally, not the image; geometry comes from Aug-KADID
(:mod:`iqa_eval.datasets.aug_kadid`), whose rows the row parser here reads too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import BY_SETTING, Unique, csv_rows, number
from iqa_eval.types import Attribute, MetaValue, Setting

NAME = "kadid10k"
SCORE_FILE = "dmos.csv"
COLUMNS = ("dist_img", "ref_img", "dmos", "var")
RATINGS_PER_IMAGE = 30
TYPE_COUNT, LEVELS = 25, 5

LAYOUT = f"the extracted kadid10k archive: {SCORE_FILE} and images/ (I01.png, I01_01_01.png, ...)"
_NAME = re.compile(r"I(\d{2})_(\d{2})_(\d{2})\.png")


@dataclass(frozen=True)
class DistortionType:
    code: int
    name: str
    category: str
    attribute: Attribute


def _types() -> tuple[DistortionType, ...]:
    table = [
        ("gaussian blur", "blur"),
        ("lens blur", "blur"),
        ("motion blur", "blur"),
        ("color diffusion", "colour"),
        ("color shift", "colour"),
        ("color quantization", "colour"),
        ("color saturation 1", "colour"),
        ("color saturation 2", "colour"),
        ("jpeg2000", "compression"),
        ("jpeg", "compression"),
        ("white noise", "noise"),
        ("white noise in color component", "noise"),
        ("impulse noise", "noise"),
        ("multiplicative noise", "noise"),
        ("denoise", "noise"),
        ("brighten", "brightness"),
        ("darken", "brightness"),
        ("mean shift", "brightness"),
        ("jitter", "spatial"),
        ("non-eccentricity patch", "spatial"),
        ("pixelate", "spatial"),
        ("quantization", "spatial"),
        ("color block", "spatial"),
        ("high sharpen", "sharpness/contrast"),
        ("contrast change", "sharpness/contrast"),
    ]
    return tuple(
        DistortionType(code, name, category, "color" if category in ("colour", "brightness") else "structure")
        for code, (name, category) in enumerate(table, start=1)
    )


TYPES = _types()

CARD = DatasetCard(
    name=NAME,
    description=(
        "KADID-10k: 81 photos x 25 synthetic distortion types x 5 levels (10,125 images); FR cells "
        "judge against the pristine reference, NR cells the distorted image alone"
    ),
    license=(
        "research use under the authors' terms (database.mmsp-kn.de/kadid-10k-database.html); "
        "photos from pixabay.com; iqa-eval does not redistribute it"
    ),
    provenance=(
        f"Lin, Hosu & Saupe, KADID-10k (QoMEX 2019); reads {SCORE_FILE} (dist_img,ref_img,dmos,var) and "
        "images/ of the authors' kadid10k.zip as published"
    ),
    ground_truth=(
        "MOS 1 (imperceptible degradation)..5 from 30 crowd ratings per image, higher is better despite "
        "the column name dmos; std = sqrt(var); attributes by distortion type: colour 4-8 and brightness "
        "16-18 -> color, all other types -> structure"
    ),
    score_range=(1.0, 5.0),
    higher_is_better=True,
    aggregation=BY_SETTING,
)


@dataclass(frozen=True)
class Row:
    """One checked row of a KADID-style score file (KADID-10k's or Aug-KADID's)."""

    where: str
    name: str
    reference: str
    ref_code: int
    kind: DistortionType
    level: int
    mos: float
    std: float


def parse_row(where: str, fields: dict[str, str], seen: Unique) -> Row:
    name = fields["dist_img"]
    match = _NAME.fullmatch(name)
    if match is None:
        raise DatasetError(
            f"{where}: dist_img {name!r} is not named I<ref>_<type>_<level>.png as in KADID-10k"
        )
    ref_code, type_code, level = (int(g) for g in match.groups())
    if not 1 <= type_code <= TYPE_COUNT or not 1 <= level <= LEVELS:
        raise DatasetError(
            f"{where}: {name} names type {type_code} level {level}; KADID has types 1-25, levels 1-5"
        )
    seen.add(name, where)
    variance = number(fields["var"], "var", where)
    if variance < 0:
        raise DatasetError(f"{where}: var {fields['var']!r} is negative")
    return Row(
        where,
        name,
        fields["ref_img"],
        ref_code,
        TYPES[type_code - 1],
        level,
        number(fields["dmos"], "dmos", where),
        math.sqrt(variance),
    )


def meta_of(row: Row) -> tuple[tuple[str, MetaValue], ...]:
    return (
        ("reference", f"I{row.ref_code:02d}"),
        ("type", row.kind.code),
        ("distortion", row.kind.name),
        ("category", row.kind.category),
        ("level", row.level),
        ("n_ratings", RATINGS_PER_IMAGE),
    )


def read(root: Root) -> Scores:
    """KADID-10k from the authors' layout; every image serves an FR and an NR cell."""
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("dist_img")
    references: dict[str, Path] = {}
    entries: list[Entry] = []
    for where, fields in csv_rows(score_file, COLUMNS):
        row = parse_row(where, fields, seen)
        expected = f"I{row.ref_code:02d}.png"
        if row.reference != expected:
            raise DatasetError(
                f"{where}: ref_img {row.reference!r} does not match {row.name} (expected {expected})"
            )
        if row.reference not in references:
            references[row.reference] = root.file(f"images/{row.reference}", where, "reference")
        image = root.file(f"images/{row.name}", where)
        key = row.name.removesuffix(".png")
        meta = meta_of(row)
        group = f"I{row.ref_code:02d}"
        attribute = row.kind.attribute
        # The same image serves an FR cell (local to its reference) and an NR cell (one scale).
        serves: tuple[tuple[Setting, Path | None, str], ...] = (
            ("fr", references[row.reference], group),
            ("nr", None, NAME),
        )
        for setting, reference, of in serves:
            entries.append(
                Entry(
                    setting=setting,
                    attribute=attribute,
                    key=key,
                    image=image,
                    score=row.mos,
                    group=of,
                    source=where,
                    reference=reference,
                    std=row.std,
                    meta=meta,
                )
            )
    entries.sort(key=lambda e: e.setting)  # FR entries first, each setting in file order
    return Scores(entries, [score_file])


SPEC = DatasetSpec(
    card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=10125, references=81, per_reference=125)
)
