"""KonIQ-10k, in-the-wild photos rated by crowd workers (Hosu, Lin, Sziranyi & Saupe, TIP 2020).

10,073 photos at 1024x768, each with the histogram of its 1..5 ratings (``c1``..``c5``, about
120 votes per image), their count, the MOS and a rescaled z-score MOS. The authors publish
``koniq10k_scores_and_distributions.csv`` (``image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,
MOS_zscore``) and the images in ``1024x768/``: the layout read here. The histogram gives each
item's rating std and count, hence its noise ceiling.
"""

from __future__ import annotations

import math
from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, count, csv_rows, number

NAME = "koniq10k"
SCORE_FILE = "koniq10k_scores_and_distributions.csv"
VOTES = ("c1", "c2", "c3", "c4", "c5")
COLUMNS = ("image_name", *VOTES, "c_total", "MOS", "SD", "MOS_zscore")
IMAGE_DIR = "1024x768"
LAYOUT = f"{SCORE_FILE} and {IMAGE_DIR}/"

CARD = DatasetCard(
    name=NAME,
    description="KonIQ-10k: 10,073 in-the-wild photos with the histogram of about 120 crowd ratings each",
    license=(
        "research use under the authors' terms (database.mmsp-kn.de/koniq-10k-database.html); "
        "not redistributed"
    ),
    provenance=(
        "Hosu, Lin, Sziranyi & Saupe, KonIQ-10k (TIP 2020); reads "
        f"{SCORE_FILE} (image_name,c1..c5,c_total,MOS,SD,MOS_zscore) and {IMAGE_DIR}/ as published"
    ),
    ground_truth=(
        "MOS 1..5, higher is better, comparable across all photos; std and rating count from the "
        "vote histogram"
    ),
    score_range=(1.0, 5.0),
    higher_is_better=True,
    aggregation="global",
)


def histogram_std(votes: list[int]) -> float:
    """Sample standard deviation of the individual 1..5 ratings behind a histogram."""
    total = sum(votes)
    mean = sum(k * c for k, c in enumerate(votes, start=1)) / total
    spread = sum(c * (k - mean) ** 2 for k, c in enumerate(votes, start=1))
    return math.sqrt(spread / (total - 1)) if total > 1 else 0.0


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("image_name")
    entries: list[Entry] = []
    for where, fields in csv_rows(score_file, COLUMNS):
        name = fields["image_name"]
        seen.add(name, where)
        votes = [count(fields[c], c, where) for c in VOTES]
        total = count(fields["c_total"], "c_total", where)
        if total != sum(votes) or total == 0:
            raise DatasetError(f"{where}: c_total {total} is not the sum of c1..c5 ({sum(votes)}) or is zero")
        meta = (
            ("n_ratings", total),
            *((c, v) for c, v in zip(VOTES, votes, strict=True)),
            ("mos_zscore", number(fields["MOS_zscore"], "MOS_zscore", where)),
        )
        entries.append(
            Entry(
                setting="nr",
                attribute="structure",
                key=Path(name).stem,
                image=root.file(f"{IMAGE_DIR}/{name}", where),
                score=number(fields["MOS"], "MOS", where),
                group=NAME,
                source=where,
                std=histogram_std(votes),
                meta=meta,
            )
        )
    return Scores(entries, [score_file])


SPEC = DatasetSpec(card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=10073))
