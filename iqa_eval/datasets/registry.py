"""The public datasets the suite can read, by name: loading, listing and verifying a copy.

Each dataset module exports its :class:`~iqa_eval.datasets.base.DatasetSpec`; this is the list of
them, in the order ``iqa-eval datasets list`` shows. Adding a dataset is its module and one line
here. Importing the modules costs little: readers import what only they need (openpyxl, scipy's
MATLAB reader) when they read. Any other name (``NAME`` or ``NAME:ATTRIBUTE``) with a CSV file,
or a folder holding ``labels.csv``, is your own data in the generic layout
(:mod:`iqa_eval.datasets.custom`).
"""

from __future__ import annotations

from pathlib import Path

from iqa_eval.datasets import agiqa, aug_kadid, csiq, custom, kadid, koniq, livec, spaq, spcd, tid2013, tqd
from iqa_eval.datasets.base import DatasetError, DatasetSpec
from iqa_eval.datasets.public import PublicDataset, SelectionOptions, load
from iqa_eval.images import ImageError, ImageStore, load_rgb

SPECS: tuple[DatasetSpec, ...] = (
    kadid.SPEC,
    aug_kadid.SPEC,
    tqd.SPEC,
    spcd.SPEC,
    spaq.SPEC,
    agiqa.SPEC,
    koniq.SPEC,
    tid2013.SPEC,
    csiq.SPEC,
    livec.SPEC,
)

_BY_NAME = {spec.name: spec for spec in SPECS}
NAMES: tuple[str, ...] = tuple(_BY_NAME)
MAX_LISTED = 20
"""Problems of one kind listed one by one before the rest are only counted."""
BUILTIN = "builtin"
"""The built-in dataset's name, which no other dataset may take."""


def known(name: str) -> DatasetSpec:
    if name not in _BY_NAME:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    return _BY_NAME[name]


def describe() -> list[tuple[str, str, str]]:
    """(name, description, expected folder layout) of every known dataset, for ``datasets list``."""
    return [(spec.name, spec.card.description, spec.layout) for spec in SPECS]


def source(name: str, path: str | Path) -> str:
    """The name of the dataset ``name`` and ``path`` give, checked without reading it.

    A known name needs its folder; any other name, as ``NAME`` or ``NAME:ATTRIBUTE``, needs a CSV
    file or a folder holding ``labels.csv`` (the generic layout) and a name of its own.
    """
    path = Path(path)
    if name in _BY_NAME:
        if not path.is_dir():
            raise DatasetError(
                f"{path} is not a directory; the {name} loader expects {_BY_NAME[name].layout}"
            )
        return name
    base = name.partition(":")[0]
    if base in _BY_NAME or base == BUILTIN:
        kind = "the built-in dataset" if base == BUILTIN else "a public dataset, which takes no attribute"
        raise DatasetError(f"{name!r}: {base} is {kind}; give your own data another name")
    if custom.labels_file(path) is None:
        raise DatasetError(
            f"unknown dataset {name!r}; known: {', '.join(NAMES)}; for your own data, PATH must be a .csv "
            f"file or a folder holding {custom.LABELS} ({path} is neither)"
        )
    return custom.parse_name(name)[0]


def load_dataset(
    name: str,
    path: str | Path,
    *,
    store: ImageStore | None = None,
    selection: SelectionOptions | None = None,
) -> PublicDataset:
    """The dataset ``name`` read from ``path``: a known dataset's folder, or your own data in the
    generic layout (``NAME`` or ``NAME:ATTRIBUTE`` and a CSV); DatasetError for a bad name or copy."""
    if name in _BY_NAME:
        return load(known(name), Path(path), store=store, selection=selection)
    source(name, path)
    return custom.load(name, Path(path), store=store, selection=selection)


def verify(name: str, path: str | Path, *, decode: bool = False) -> list[str]:
    """Problems of a copy of ``name`` at ``path``; an empty list means it is complete and sound.

    Loading checks the score files row by row and that every listed image exists inside the
    root; this adds the published counts and score range, and with ``decode`` reads every
    image in full (slow: minutes for ten thousand photos). None of these datasets' authors
    publish file checksums, so none are compared. Your own data has no published counts: it is
    checked row by row, for cells every protocol can measure, and with ``decode`` image by image.
    """
    if name not in _BY_NAME:
        source(name, path)  # a bad name or path is a usage error, not a problem of the copy
    try:
        dataset = load_dataset(name, path)
    except DatasetError as err:
        return [str(err)]
    if name not in _BY_NAME:
        return _decode_all(dataset) if decode else []
    spec = known(name)
    expected = spec.counts
    problems: list[str] = []
    keys = {e.key for e in dataset.entries}
    if expected.images is not None and len(keys) != expected.images:
        problems.append(f"{path}: {len(keys)} scored images where the published {name} has {expected.images}")
    per_reference: dict[Path, set[str]] = {}
    for e in dataset.entries:
        if e.reference is not None:
            per_reference.setdefault(e.reference, set()).add(e.key)
    if expected.references is not None and len(per_reference) != expected.references:
        problems.append(
            f"{path}: {len(per_reference)} references where the published {name} has {expected.references}"
        )
    if expected.per_reference is not None:
        short = sorted(
            str(ref.name) for ref, members in per_reference.items() if len(members) != expected.per_reference
        )
        if short:
            problems.append(
                f"{path}: {len(short)} reference(s) without exactly {expected.per_reference} images: "
                + ", ".join(short[:MAX_LISTED])
            )
    if spec.check_range:
        low, high = dataset.card.score_range
        outside = [e for e in dataset.entries if not low <= e.score <= high]
        problems.extend(
            f"{e.source}: score {e.score:g} outside the published range {low:g}..{high:g}"
            for e in outside[:MAX_LISTED]
        )
        if len(outside) > MAX_LISTED:
            problems.append(f"... and {len(outside) - MAX_LISTED} more scores outside the range")
    if decode:
        problems.extend(_decode_all(dataset))
    return problems


def _decode_all(dataset: PublicDataset) -> list[str]:
    files = sorted({e.image for e in dataset.entries} | {e.reference for e in dataset.entries if e.reference})
    broken: list[str] = []
    for path in files:
        try:
            load_rgb(path)
        except ImageError as err:
            broken.append(str(err))
    if len(broken) > MAX_LISTED:
        broken = [*broken[:MAX_LISTED], f"... and {len(broken) - MAX_LISTED} more unreadable images"]
    return broken
