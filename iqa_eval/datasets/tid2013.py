"""TID2013, the Tampere image database (Ponomarenko et al., Signal Processing: Image Comm. 2015).

25 references x 24 distortion types x 5 levels = 3,000 images, MOS 0..9 (higher is better)
from paired comparisons by 971 observers. The authors' archive holds ``mos_with_names.txt``
(``<MOS> <image>`` per line), ``mos_std.txt`` (one std per line, same order),
``distorted_images/`` (``i01_01_1.bmp``: reference 01, type 01, level 1) and
``reference_images/`` (``I01.BMP``; the case differs between copies, so it is matched without
case): the layout read here. The number of ratings per image is not published, so no noise
ceiling.

Types map to attributes as in KADID-10k: colour and luminance changes (16 mean shift, 18
saturation, 22 colour quantisation, 23 chromatic aberrations) are ``color``; the others,
including noise in colour components (2) and contrast change (17), are ``structure``.
"""

from __future__ import annotations

import re
from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, number, text_rows
from iqa_eval.types import Attribute

NAME = "tid2013"
SCORE_FILE = "mos_with_names.txt"
STD_FILE = "mos_std.txt"
LAYOUT = f"{SCORE_FILE}, {STD_FILE}, distorted_images/ and reference_images/"
_NAME = re.compile(r"i(\d{2})_(\d{2})_(\d)\.bmp", re.IGNORECASE)
TYPE_COUNT, LEVELS = 24, 5
TYPES: tuple[str, ...] = (
    "additive gaussian noise",
    "additive noise in color components",
    "spatially correlated noise",
    "masked noise",
    "high frequency noise",
    "impulse noise",
    "quantization noise",
    "gaussian blur",
    "image denoising",
    "jpeg compression",
    "jpeg2000 compression",
    "jpeg transmission errors",
    "jpeg2000 transmission errors",
    "non eccentricity pattern noise",
    "local block-wise distortions",
    "mean shift",
    "contrast change",
    "change of color saturation",
    "multiplicative gaussian noise",
    "comfort noise",
    "lossy compression of noisy images",
    "color quantization with dither",
    "chromatic aberrations",
    "sparse sampling and reconstruction",
)
COLOR_TYPES = frozenset({16, 18, 22, 23})

CARD = DatasetCard(
    name=NAME,
    description=(
        "TID2013: 25 references x 24 distortion types x 5 levels (3,000 images), judged against the reference"
    ),
    license="research use under the authors' terms (ponomarenko.info/tid2013.htm); not redistributed",
    provenance=(
        f"Ponomarenko et al., TID2013 (2015); reads {SCORE_FILE}, {STD_FILE}, distorted_images/ and "
        "reference_images/ of the authors' archive"
    ),
    ground_truth=(
        "MOS 0..9, higher is better, comparable within a reference; std from mos_std.txt; "
        "types 16, 18, 22, 23 -> color, the others -> structure"
    ),
    score_range=(0.0, 9.0),
    higher_is_better=True,
    aggregation="local_mean",
)


def attribute_of(code: int) -> Attribute:
    return "color" if code in COLOR_TYPES else "structure"


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    std_file = root.score_file(STD_FILE)
    rows = list(text_rows(score_file, 2))
    stds = list(text_rows(std_file, 1))
    if len(stds) != len(rows):
        raise DatasetError(f"{std_file}: {len(stds)} values for the {len(rows)} images of {score_file}")
    seen = Unique("image")
    references: dict[str, Path] = {}
    entries: list[Entry] = []
    for (where, (mos, name)), (std_where, (std,)) in zip(rows, stds, strict=True):
        match = _NAME.fullmatch(name)
        if match is None:
            raise DatasetError(f"{where}: {name!r} is not named i<ref>_<type>_<level>.bmp as in TID2013")
        ref, code, level = (int(g) for g in match.groups())
        if not 1 <= code <= TYPE_COUNT or not 1 <= level <= LEVELS:
            raise DatasetError(
                f"{where}: {name} names type {code} level {level}; TID2013 has types 1-24, levels 1-5"
            )
        seen.add(name.lower(), where)
        group = f"i{ref:02d}"
        if group not in references:
            references[group] = root.file(f"reference_images/{group}.bmp", where, "reference")
        entries.append(
            Entry(
                setting="fr",
                attribute=attribute_of(code),
                key=name.lower().removesuffix(".bmp"),
                image=root.file(f"distorted_images/{name}", where),
                score=number(mos, "MOS", where),
                group=group,
                source=where,
                reference=references[group],
                std=number(std, "std", std_where),
                meta=(
                    ("reference", group),
                    ("type", code),
                    ("distortion", TYPES[code - 1]),
                    ("level", level),
                ),
            )
        )
    return Scores(entries, [score_file, std_file])


SPEC = DatasetSpec(
    card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=3000, references=25, per_reference=120)
)
