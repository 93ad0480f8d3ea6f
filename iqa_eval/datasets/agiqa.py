"""AGIQA-3K, quality of AI-generated images (Li et al., TCSVT 2023).

2,982 images from six text-to-image models, each with a perceptual-quality MOS (about 0..5)
and a text-alignment MOS, both with their rating std. The authors' repository publishes
``data.csv`` (``name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align``);
the image archive unpacks to ``AGIQA-3K/``. Put both in one folder: that is the layout read here.
The quality MOS is the ground truth (``nr_structure``: generation artefacts); alignment, prompt
and generator stay in each item's meta.
"""

from __future__ import annotations

from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, csv_rows, number

NAME = "agiqa3k"
SCORE_FILE = "data.csv"
COLUMNS = ("name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align")
IMAGE_DIR = "AGIQA-3K"
LAYOUT = f"{SCORE_FILE} from the authors' repository and the image archive unpacked as {IMAGE_DIR}/"

CARD = DatasetCard(
    name=NAME,
    description=(
        "AGIQA-3K: 2,982 AI-generated images from six text-to-image models, rated for perceptual quality"
    ),
    license="the authors' terms (github.com/lcysyzxdxc/AGIQA-3k-Database); not redistributed",
    provenance=(
        "Li et al., AGIQA-3K: An Open Database for AI-Generated Image Quality Assessment (TCSVT 2023); "
        f"reads {SCORE_FILE} and {IMAGE_DIR}/ as published"
    ),
    ground_truth="quality MOS about 0..5, higher is better, comparable across all images; std_quality given",
    score_range=(0.0, 5.0),
    higher_is_better=True,
    aggregation="global",
)


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("name")
    entries: list[Entry] = []
    for where, fields in csv_rows(score_file, COLUMNS):
        name = fields["name"]
        seen.add(name, where)
        std = number(fields["std_quality"], "std_quality", where)
        meta = (
            ("generator", name.split("_", 1)[0]),
            ("prompt", fields["prompt"]),
            ("mos_align", number(fields["mos_align"], "mos_align", where)),
            ("std_align", number(fields["std_align"], "std_align", where)),
        )
        entries.append(
            Entry(
                setting="nr",
                attribute="structure",
                key=Path(name).stem,
                image=root.file(f"{IMAGE_DIR}/{name}", where),
                score=number(fields["mos_quality"], "mos_quality", where),
                group=NAME,
                source=where,
                std=std,
                meta=meta,
            )
        )
    return Scores(entries, [score_file])


SPEC = DatasetSpec(card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=2982))
