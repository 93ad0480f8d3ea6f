"""The study's matrix: which public dataset serves which setting and attribute, and how to add one.

Wu et al. judged FR synthetic distortions on KADID-10k, FR texture on TQD, FR colour differences
on SPCD, FR geometry on Aug-KADID, and NR quality on KADID-10k, SPAQ and AGIQA-3K. The suite
splits KADID-10k's distortion types into ``structure`` and ``color`` (see
:mod:`iqa_eval.datasets.kadid`), so the study's one KADID column is two cells here, whose items
together are the study's. SPAQ's colourfulness and sharpness cells are the suite's extension,
not the study's, and stay out. ``--iqa-study`` runs exactly these cells; a dataset the user did
not give is reported with the command that adds it, never dropped without a word.
"""

from __future__ import annotations

from dataclasses import dataclass

from iqa_eval.datasets import agiqa, aug_kadid, kadid, spaq, spcd, tqd
from iqa_eval.datasets.base import DatasetSpec
from iqa_eval.types import Attribute, Setting


@dataclass(frozen=True)
class StudyCell:
    dataset: str
    setting: Setting
    attribute: Attribute


CELLS: tuple[StudyCell, ...] = (
    StudyCell(kadid.NAME, "fr", "structure"),
    StudyCell(kadid.NAME, "fr", "color"),
    StudyCell(tqd.NAME, "fr", "texture"),
    StudyCell(spcd.NAME, "fr", "color"),
    StudyCell(aug_kadid.NAME, "fr", "geometry"),
    StudyCell(kadid.NAME, "nr", "structure"),
    StudyCell(kadid.NAME, "nr", "color"),
    StudyCell(spaq.NAME, "nr", "structure"),
    StudyCell(agiqa.NAME, "nr", "structure"),
)

_SPECS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (kadid.SPEC, tqd.SPEC, spcd.SPEC, aug_kadid.SPEC, spaq.SPEC, agiqa.SPEC)
}
DATASETS: tuple[str, ...] = tuple(dict.fromkeys(cell.dataset for cell in CELLS))


def in_study(dataset: str, setting: Setting, attribute: Attribute) -> bool:
    return StudyCell(dataset, setting, attribute) in CELLS


def add_command(dataset: str) -> str:
    """What to add to the run to measure ``dataset``'s cells, with the layout its PATH must have.

    Aug-KADID is not published: it is built from a KADID-10k copy first.
    """
    option = f"--iqa-data {dataset}=PATH"
    if dataset == aug_kadid.NAME:
        return (
            f"iqa-eval datasets make-aug-kadid KADID10K_PATH PATH, then add {option}"
            f" ({_SPECS[dataset].layout})"
        )
    return f"add {option} (PATH: {_SPECS[dataset].layout})"
