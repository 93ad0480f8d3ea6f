"""LIVE In the Wild Image Quality Challenge (Ghadiyaram & Bovik, TIP 2016).

1,169 photos from mobile devices rated by crowd workers; the first seven (``t1.bmp`` ..
``t7.bmp``, kept in ``Images/trainingImages/``) trained the raters and are left out, as in the
authors' own evaluations, leaving 1,162. The authors' release holds ``Images/`` and MATLAB files
``Data/AllImages_release.mat``, ``Data/AllMOS_release.mat`` and ``Data/AllStdDev_release.mat``
(names, MOS 0..100 and rating std, in one order): the layout read here. The number of ratings
per image is not published per image, so no noise ceiling.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from iqa_eval.datasets.base import Counts, DatasetCard, DatasetError, DatasetSpec, Entry, Root, Scores
from iqa_eval.datasets.public import Unique, number

NAME = "live_challenge"
NAMES_FILE = "Data/AllImages_release.mat"
MOS_FILE = "Data/AllMOS_release.mat"
STD_FILE = "Data/AllStdDev_release.mat"
LAYOUT = f"Images/ and {NAMES_FILE}, {MOS_FILE}, {STD_FILE}"
_TRAINING = re.compile(r"t\d+\.bmp", re.IGNORECASE)

CARD = DatasetCard(
    name=NAME,
    description="LIVE Challenge: 1,162 authentically distorted mobile photos rated by crowd workers",
    license=(
        "copyright The University of Texas at Austin; research use with the copyright notice kept "
        "(live.ece.utexas.edu/research/ChallengeDB); not redistributed"
    ),
    provenance=(
        f"Ghadiyaram & Bovik (TIP 2016); reads {NAMES_FILE}, {MOS_FILE}, {STD_FILE} and Images/ of the "
        "authors' ChallengeDB_release, without the seven training images"
    ),
    ground_truth="MOS 0..100, higher is better, comparable across all photos; rating std given",
    score_range=(0.0, 100.0),
    higher_is_better=True,
    aggregation="global",
)


def _variable(path: Path, name: str) -> NDArray[np.object_]:
    from scipy import io as scipy_io  # only this reader needs it, and it is slow to import

    try:
        data = scipy_io.loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as err:
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {err})") from None
    if name not in data:
        found = ", ".join(k for k in data if not k.startswith("__")) or "none"
        raise DatasetError(f"{path}: no variable {name}; variables: {found}")
    return np.asarray(data[name], dtype=object).ravel()


def _name(value: object, where: str) -> str:
    flat = np.asarray(value, dtype=object).ravel()
    if flat.size != 1 or not isinstance(flat[0], str) or not flat[0].strip():
        raise DatasetError(f"{where}: not an image name ({value!r})")
    return str(flat[0]).strip()


def read(root: Root) -> Scores:
    files = [root.score_file(rel) for rel in (NAMES_FILE, MOS_FILE, STD_FILE)]
    names, mos, std = (_variable(f, f.stem) for f in files)
    if not len(names) == len(mos) == len(std):
        raise DatasetError(
            f"{files[0].parent}: {len(names)} names, {len(mos)} MOS values and {len(std)} stds; "
            "the three files must list the same images in one order"
        )
    seen = Unique("image")
    entries: list[Entry] = []
    for index in range(len(names)):
        where = f"{files[0]} (entry {index + 1})"
        name = _name(names[index], where)
        if _TRAINING.fullmatch(name):
            continue
        seen.add(name, where)
        entries.append(
            Entry(
                setting="nr",
                attribute="structure",
                key=Path(name).stem,
                image=root.file(f"Images/{name}", where),
                score=number(mos[index], "MOS", f"{files[1]} (entry {index + 1})"),
                group=NAME,
                source=where,
                std=number(std[index], "std", f"{files[2]} (entry {index + 1})"),
            )
        )
    return Scores(entries, files)


SPEC = DatasetSpec(card=CARD, layout=LAYOUT, reader=read, counts=Counts(images=1162))
