"""SPCD, perceptual colour differences of smartphone photos (Wang et al., TPAMI 2023).

Photos of 1,000 scenes (several phones, edits and filters per scene) were compared in pairs of
the same scene by 20 observers in a laboratory, 30,000 pairs in all, and each pair scored by
its perceived colour difference: **higher is worse**. The authors publish the scored pairs in
their CD-Net repository and Kaggle competition as ``train_data.csv`` with the header
``image1,image2,score`` (an optional ``std`` column is read when present) beside ``images/``;
that is the layout read here. Neither image of a pair is pristine, so ``image1`` is shown as
the reference and ``image2`` judged against it, and the difference is turned into a quality
direction explicitly (``higher_is_better`` False), never by a silent sign flip.
"""

from __future__ import annotations

import math
import re

from iqa_eval.datasets.base import DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, csv_rows, number

NAME = "spcd"
SCORE_FILE = "train_data.csv"
COLUMNS = ("image1", "image2", "score")
LAYOUT = f"{SCORE_FILE} (image1,image2,score[,std]) and images/ (I0001_01_01.png, ...)"
_IMAGE = re.compile(r"(I\d{4})_(\d{2})_(\d{2})\.png")


def _card(low: float, high: float) -> DatasetCard:
    return DatasetCard(
        name=NAME,
        description=(
            "SPCD: pairs of smartphone photos of one scene, scored for their perceived colour difference"
        ),
        license="research use under the authors' terms (github.com/hellooks/CDNet); not redistributed",
        provenance=(
            "Wang et al., Measuring Perceptual Color Differences of Smartphone Photographs (TPAMI 2023); "
            f"reads {SCORE_FILE} (image1,image2,score) and images/ as in the authors' CD-Net repository"
        ),
        ground_truth=(
            "perceived colour difference of image2 from image1, higher is worse (flipped to quality "
            f"explicitly); observed range {low:g}..{high:g}; comparable within a scene"
        ),
        score_range=(low, high),
        higher_is_better=False,
        aggregation="local_mean",
    )


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("pair")
    entries: list[Entry] = []
    for where, fields in csv_rows(score_file, COLUMNS):
        first, second = fields["image1"], fields["image2"]
        match_1, match_2 = _IMAGE.fullmatch(first), _IMAGE.fullmatch(second)
        if match_1 is None or match_2 is None:
            raise DatasetError(
                f"{where}: expected images named I<scene>_<kk>_<kk>.png, got {first!r}, {second!r}"
            )
        scene = match_1.group(1)
        if match_2.group(1) != scene:
            raise DatasetError(f"{where}: {first} and {second} show different scenes; SPCD pairs share one")
        key = f"{first.removesuffix('.png')}+{second.removesuffix('.png')}"
        seen.add(key, where)
        std = number(fields["std"], "std", where) if "std" in fields else None
        entries.append(
            Entry(
                setting="fr",
                attribute="color",
                key=key,
                image=root.file(f"images/{second}", where),
                score=number(fields["score"], "score", where),
                group=scene,
                source=where,
                reference=root.file(f"images/{first}", where, "reference"),
                std=std,
                meta=(("scene", scene), ("image1", first), ("image2", second)),
            )
        )
    scores = [e.score for e in entries] or [0.0]
    return Scores(entries, [score_file], card=_card(min(scores), max(scores)))


SPEC = DatasetSpec(card=_card(0.0, math.inf), layout=LAYOUT, reader=read, check_range=False)
"""The authors publish no score range: the card of a loaded copy names the range it observed."""
