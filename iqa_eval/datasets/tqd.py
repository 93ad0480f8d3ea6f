"""TQD, the texture quality set of the DISTS paper (Ding, Ma, Wang & Simoncelli, TPAMI 2022).

Ten reference textures, each with fifteen images synthesised or degraded from it (150 pairs),
scored for perceived similarity to the reference: higher is better. The only public label
layout we know is the one the study's code reads (``data/TQD/TQD_mos.txt`` in
TianheWu/MLLMs-for-IQA): tab-separated reference path, image path and score, no header,
paths relative to the dataset root (``images/5-0.png`` is texture 5's reference,
``images/5-1.png`` .. ``images/5-15.png`` its images). That is the layout read here.
"""

from __future__ import annotations

import re
from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, csv_rows, number

NAME = "tqd"
SCORE_FILE = "TQD_mos.txt"
COLUMNS = ("reference", "image", "score")
LAYOUT = f"{SCORE_FILE} (reference<TAB>image<TAB>score per line) and images/ (<texture>-0.png references)"
_IMAGE = re.compile(r"(?:.*/)?(\d+)-(\d+)\.png")

CARD = DatasetCard(
    name=NAME,
    description=(
        "TQD: 10 reference textures x 15 resynthesised or degraded versions, judged against the reference"
    ),
    license="research use under the DISTS authors' terms; iqa-eval does not redistribute it",
    provenance=(
        "Ding, Ma, Wang & Simoncelli, Image Quality Assessment: Unifying Structure and Texture Similarity "
        f"(TPAMI 2022); reads {SCORE_FILE} in the layout of the study's repository (TianheWu/MLLMs-for-IQA)"
    ),
    ground_truth="perceived texture similarity to the reference, about 0..1, higher is better; per reference",
    score_range=(0.0, 1.0),
    higher_is_better=True,
    aggregation="local_mean",
)


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("image")
    references: dict[str, Path] = {}
    entries: list[Entry] = []
    for where, fields in csv_rows(score_file, COLUMNS, delimiter="\t", header=False):
        ref_match = _IMAGE.fullmatch(fields["reference"])
        image_match = _IMAGE.fullmatch(fields["image"])
        if ref_match is None or image_match is None or ref_match.group(2) != "0":
            raise DatasetError(
                f"{where}: expected images/<texture>-0.png then images/<texture>-<k>.png, "
                f"got {fields['reference']!r} and {fields['image']!r}"
            )
        texture = ref_match.group(1)
        if image_match.group(1) != texture:
            raise DatasetError(f"{where}: {fields['image']} is not a version of texture {texture}")
        seen.add(fields["image"], where)
        if texture not in references:
            references[texture] = root.file(fields["reference"], where, "reference")
        entries.append(
            Entry(
                setting="fr",
                attribute="texture",
                key=f"{texture}-{image_match.group(2)}",
                image=root.file(fields["image"], where),
                score=number(fields["score"], "score", where),
                group=texture,
                source=where,
                reference=references[texture],
                meta=(("texture", texture), ("version", int(image_match.group(2)))),
            )
        )
    return Scores(entries, [score_file])


SPEC = DatasetSpec(
    card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=150, references=10, per_reference=15)
)
