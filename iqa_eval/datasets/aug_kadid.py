"""Aug-KADID, the study's geometric variant of KADID-10k: FR geometry.

The study judged 150 FR-KADID items with the *reference* slightly shifted, rotated and scaled,
MOS unchanged, to see whether a model judges the distortion or the misalignment. It is not
distributed; :func:`iqa_eval.sampling.make_aug_kadid.generate_aug_kadid` builds it from a KADID-10k copy
with seeded transforms, in the layout read here: KADID-10k's columns plus the transform of each
row's reference.
"""

from __future__ import annotations

from iqa_eval.datasets.base import DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.kadid import COLUMNS, meta_of, parse_row
from iqa_eval.datasets.public import Unique, csv_rows, number

NAME = "aug_kadid"
VERSION = "1"
SCORE_FILE = "aug_kadid.csv"
TRANSFORM_COLUMNS = ("dx", "dy", "rotation_deg", "scale")
LAYOUT = f"a folder made by 'iqa-eval datasets make-aug-kadid': {SCORE_FILE}, images/ and references/"

CARD = DatasetCard(
    name=NAME,
    description=(
        "Aug-KADID: KADID-10k items whose reference is slightly shifted, rotated and scaled; the "
        "distorted image and its MOS are KADID's"
    ),
    license="derived from KADID-10k: the same terms apply; generated locally, never redistributed",
    provenance=(
        f"generated from a KADID-10k copy by iqa_eval.sampling.make_aug_kadid.generate_aug_kadid v{VERSION} "
        "(the study's stage-1 FR sample, seeded transforms of iqa_eval.distortions.misalign)"
    ),
    ground_truth="KADID-10k MOS 1..5, higher is better; comparable within a reference",
    score_range=(1.0, 5.0),
    higher_is_better=True,
    aggregation="local_mean",
)


def read(root: Root) -> Scores:
    """Aug-KADID as :func:`iqa_eval.sampling.make_aug_kadid.generate_aug_kadid` writes it: FR
    geometry items only."""
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("dist_img")
    entries: list[Entry] = []
    for where, fields in csv_rows(score_file, COLUMNS + TRANSFORM_COLUMNS):
        row = parse_row(where, fields, seen)
        expected = f"I{row.ref_code:02d}_aug.png"
        if row.reference != expected:
            raise DatasetError(
                f"{where}: ref_img {row.reference!r} does not match {row.name} (expected {expected})"
            )
        transform = tuple((c, number(fields[c], c, where)) for c in TRANSFORM_COLUMNS)
        entries.append(
            Entry(
                setting="fr",
                attribute="geometry",
                key=row.name.removesuffix(".png"),
                image=root.file(f"images/{row.name}", where),
                score=row.mos,
                group=f"I{row.ref_code:02d}",
                source=where,
                reference=root.file(f"references/{row.reference}", where, "reference"),
                std=row.std,
                meta=meta_of(row) + tuple((f"ref_{k}", v) for k, v in transform),
            )
        )
    return Scores(entries, [score_file])


SPEC = DatasetSpec(card=CARD, layout=LAYOUT, reader=read, version=VERSION)
