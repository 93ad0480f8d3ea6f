"""SPAQ, smartphone photography attribute and quality (Fang et al., CVPR 2020).

11,125 photos from 66 smartphones, each with a mean opinion score of overall quality (0..100)
and scores for five attributes: brightness, colourfulness, contrast, noisiness and sharpness.
The authors' archive holds ``TestImage/`` and ``Annotations/MOS and Image attribute
scores.xlsx`` (columns ``Image name, MOS, Brightness, Colorfulness, Contrast, Noisiness,
Sharpness``); that is the layout read here. No rating spread is published.

Overall quality is the ground truth of ``nr_structure`` (authentic distortions, as in the
study). Two attribute scores give per-attribute ground truth to the suite's other attributes:
colourfulness for ``nr_color`` and sharpness (rendering of fine detail) for ``nr_texture``.
These two cells are an extension of the study: they show whether a model's quality judgement
follows what people saw of colour and detail. Brightness, contrast and noisiness stay in each
item's meta.
"""

from __future__ import annotations

from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, cell_text, number, xlsx_rows
from iqa_eval.types import Attribute

NAME = "spaq"
SCORE_FILE = "Annotations/MOS and Image attribute scores.xlsx"
ATTRIBUTE_COLUMNS = ("Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness")
COLUMNS = ("Image name", "MOS", *ATTRIBUTE_COLUMNS)
LAYOUT = f"TestImage/ (00001.jpg ...) and {SCORE_FILE} (reading it needs openpyxl)"
GROUND_TRUTH: tuple[tuple[Attribute, str], ...] = (
    ("structure", "MOS"),
    ("color", "Colorfulness"),
    ("texture", "Sharpness"),
)

CARD = DatasetCard(
    name=NAME,
    description=(
        "SPAQ: 11,125 smartphone photos with overall quality and five attribute scores (authentic "
        "distortions)"
    ),
    license="research use under the authors' terms (github.com/h4nwei/SPAQ); not redistributed",
    provenance=(
        "Fang et al., Perceptual Quality Assessment of Smartphone Photography (CVPR 2020); reads "
        f"'{SCORE_FILE}' and TestImage/ of the authors' release"
    ),
    ground_truth=(
        "0..100, higher is better, comparable across all photos: overall MOS (nr_structure), "
        "colourfulness score (nr_color), sharpness score (nr_texture); no rating std published"
    ),
    score_range=(0.0, 100.0),
    higher_is_better=True,
    aggregation="global",
)


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("Image name")
    entries: list[Entry] = []
    for where, cells in xlsx_rows(score_file, COLUMNS):
        name = cell_text(cells["Image name"], "Image name", where)
        seen.add(name, where)
        image = root.file(f"TestImage/{name}", where)
        scores = {column: number(cells[column], column, where) for column in COLUMNS[1:]}
        meta = tuple((column.lower(), scores[column]) for column in ATTRIBUTE_COLUMNS)
        key = Path(name).stem
        for attribute, column in GROUND_TRUTH:
            entries.append(
                Entry(
                    setting="nr",
                    attribute=attribute,
                    key=key,
                    image=image,
                    score=scores[column],
                    group=NAME,
                    source=where,
                    meta=(("score_column", column), *meta),
                )
            )
    return Scores(entries, [score_file])


SPEC = DatasetSpec(card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=11125))
