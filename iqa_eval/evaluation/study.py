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

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from iqa_eval.datasets import agiqa, aug_kadid, kadid, spaq, spcd, tqd
from iqa_eval.datasets.base import DatasetSpec
from iqa_eval.experts.panel import PANELS
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


def record(given: Collection[str]) -> dict[str, object]:
    """The study matrix of a run for its report: the datasets it lacked and what adds each."""
    return {
        "datasets": list(DATASETS),
        "missing": [
            {
                "dataset": name,
                "cells": [f"{c.setting}_{c.attribute}" for c in CELLS if c.dataset == name],
                "add": add_command(name),
            }
            for name in DATASETS
            if name not in given
        ],
    }


def reference_models(models: Sequence[str]) -> tuple[str, ...]:
    """The panel's classical measures, one model each: the study set expert IQA models beside the
    MLLMs in stage 2. A measure already under test is that model, not a reference row too."""
    members = [f"expert:{name}" for setting in PANELS for name in PANELS[setting]]
    return tuple(spec for spec in members if spec not in models)


def measures(model: str, setting: Setting) -> bool:
    """Whether the reference model ``expert:<name>`` judges ``setting`` (each measure has one)."""
    return model.partition(":")[2] in PANELS[setting]
