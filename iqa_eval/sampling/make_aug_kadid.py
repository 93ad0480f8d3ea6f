"""Aug-KADID made from a KADID-10k copy: the study's geometric variant, which is not distributed.

Making it takes a loaded KADID-10k, the stage-1 sample and a geometric distortion, so it sits
above the loaders and the sampler rather than inside the KADID loader: reading a dataset never
needs the sampling code.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from pathlib import Path

from iqa_eval.datasets import kadid
from iqa_eval.datasets.aug_kadid import SCORE_FILE, TRANSFORM_COLUMNS
from iqa_eval.datasets.base import DatasetError
from iqa_eval.datasets.public import load
from iqa_eval.distortions import misalign
from iqa_eval.images import encode_png, load_rgb
from iqa_eval.sampling.uniform import uniform


def generate_aug_kadid(kadid_path: Path, out: Path, *, seed: int = 0) -> Path:
    """Build Aug-KADID from a KADID-10k copy; returns ``out``.

    The items are the study's stage-1 FR sample (15 references by evenly spaced mean quality,
    10 distorted images each at evenly spaced ranks); each reference gets one seeded similarity
    transform (up to 4 px shift, 3 degrees, 3 % scale), shared by its ten items as in the
    study's ``I12_aug.png``. Distorted images are copied byte for byte. The folder is written
    beside ``out`` and renamed into place, so an interrupted run leaves nothing half made.
    """
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: exists and is not empty; choose a new folder for Aug-KADID")
    source = load(kadid.SPEC, kadid_path)
    chosen = uniform(source.all_items("fr"), fr=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".aug-kadid-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "references").mkdir()
        lines = [",".join(kadid.COLUMNS + TRANSFORM_COLUMNS)]
        transforms: dict[str, dict[str, float]] = {}
        for item in chosen:
            assert item.reference is not None  # FR items always have one
            group = item.group
            if group not in transforms:
                moved, params = misalign(
                    load_rgb(item.reference.path), zlib.crc32(f"aug-kadid/{seed}/{group}".encode())
                )
                (tmp / "references" / f"{group}_aug.png").write_bytes(encode_png(moved))
                transforms[group] = params
            name = Path(item.image.path).name
            shutil.copyfile(item.image.path, tmp / "images" / name)
            std = item.std if item.std is not None else 0.0
            params = transforms[group]
            lines.append(
                ",".join(
                    [name, f"{group}_aug.png", repr(item.score), repr(std * std)]
                    + [repr(round(params[c], 6)) for c in TRANSFORM_COLUMNS]
                )
            )
        (tmp / SCORE_FILE).write_text("\n".join(lines) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
