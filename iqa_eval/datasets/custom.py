"""Your own data: the generic CSV layout behind ``--iqa-data NAME=PATH`` for a name the suite
does not know.

PATH is a CSV file, or a folder holding ``labels.csv``. One row per scored image:

``image``
    the judged image, a path relative to the CSV's folder (required);
``mos`` or ``dmos``
    exactly one of them: a mean opinion score (higher is better) or a differential one (lower
    is better; the card says so and items carry the direction, no sign is flipped);
``reference``
    the pristine image the row is judged against; a row with one is full-reference and the
    model is shown the reference too, a row without is no-reference. All rows of one attribute
    are one or the other: a cell is either FR or NR;
``attribute``
    structure, texture, color or geometry; or, instead of the column, one attribute for the
    whole file on the command line as ``NAME:ATTRIBUTE=PATH`` (``mine:color=shots/labels.csv``):
    a dataset name never holds ``:`` and the attribute sits with the name, so the path is left
    alone whatever it contains;
``group``
    the comparability group: scores are comparable only inside one group. By default the
    reference (each reference's distortions are judged against it, as in the study's FR
    cells), and without a reference one group for the whole file;
``std``, ``n_ratings``
    the rating spread and the number of ratings behind the score; when every item of a cell
    has both, its report carries the human-noise ceiling (:mod:`iqa_eval.datasets.ceiling`);
``split``
    ``demo`` rows serve as the in-context demonstrations of their cell and are never test
    items; ``test`` or empty rows are test items. A cell without demo rows holds some out as a
    public dataset's cell does (:func:`~iqa_eval.datasets.public.split_demonstrations`).

Aggregation follows the groups, per setting: when the rows of a setting span more than one
group their scores are comparable only inside a group, so SRCC and PLCC are means over groups
(``local_mean``) and DS/MS compare only images of one group; with one group the whole setting
is one scale (``global``). This is what the groups declare, and the reason to keep the default
of one group per reference in FR: raters judged each distortion against its own reference, not
against other references' distortions. Data rated on one scale across references can say so
with one ``group`` value for every row. The card's score range is the observed one.

Every bad row stops the load with a :class:`~iqa_eval.datasets.base.DatasetError` naming the
file and line: a missing image, a path leaving the CSV's folder (absolute, ``..``, a link
pointing outside), a bad number, an unknown attribute or split, FR and NR rows in one
attribute, an image listed twice in one cell. So does a cell too small to measure: every
protocol needs a comparable set of four test items (MS ranks four at a time) and the
in-context systems a demonstration group of four distinct scores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from iqa_eval.datasets.base import DatasetCard, DatasetError, Entry
from iqa_eval.datasets.public import (
    DatasetRoot,
    PublicDataset,
    SelectionOptions,
    Unique,
    csv_rows,
    files_digest,
    number,
)
from iqa_eval.images import ImageStore
from iqa_eval.types import ATTRIBUTES, SETTINGS, Attribute, Item, MetaValue, Setting

LABELS = "labels.csv"
VERSION = "1"
"""Enters the manifest digest: bump it when the reader makes something else of the same CSV."""

SCORE_COLUMNS = ("mos", "dmos")
OPTIONAL_COLUMNS = ("reference", "attribute", "group", "std", "n_ratings", "split")
SPLITS = ("test", "demo")
COMPARED = 4
"""Items one MS query ranks: the fewest comparable test items, and demonstration scores, a cell needs."""

LAYOUT = (
    f"a CSV file, or a folder holding {LABELS}: image (path relative to the CSV), exactly one of mos "
    "(higher is better) or dmos (lower is better), optional reference (FR), attribute "
    f"({', '.join(ATTRIBUTES)}; or NAME:ATTRIBUTE=PATH for the whole file), group, std, n_ratings, "
    "split (demo rows are in-context demonstrations, never test items)"
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def parse_name(text: str) -> tuple[str, Attribute | None]:
    """``NAME`` or ``NAME:ATTRIBUTE`` as (name, attribute or None)."""
    name, sep, given = text.partition(":")
    if not _NAME.fullmatch(name):
        raise DatasetError(
            f"dataset name {name!r}: use letters, digits, '-' and '_', starting with a letter or digit"
        )
    if not sep:
        return name, None
    attribute = _attribute(given)
    if attribute is None:
        raise DatasetError(
            f"{text!r}: {given!r} after ':' is not an attribute; one of {', '.join(ATTRIBUTES)}"
        )
    return name, attribute


def labels_file(path: Path) -> Path | None:
    """The CSV that ``path`` names: the file itself, or the folder's ``labels.csv``; else None."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return path
    if path.is_dir() and (path / LABELS).is_file():
        return path / LABELS
    return None


def _attribute(text: str) -> Attribute | None:
    for attribute in ATTRIBUTES:
        if attribute == text:
            return attribute
    return None


class _Reader:
    """Reads one CSV of the layout into entries, row by row, with every check."""

    def __init__(self, path: Path, name: str, attribute: Attribute | None) -> None:
        self.path = path
        self.name = name
        self.attribute = attribute
        self.root = DatasetRoot(path.parent, name, LAYOUT)
        self.columns: list[str] = []
        self.setting_of: dict[Attribute, tuple[Setting, str]] = {}
        self.unique: dict[tuple[Setting, Attribute], Unique] = {}

    def check_header(self, where: str, names: list[str]) -> None:
        known = ("image", *SCORE_COLUMNS, *OPTIONAL_COLUMNS)
        for index, column in enumerate(names):
            if column not in known:
                raise DatasetError(
                    f"{where}: unknown column {column!r}; the columns are image, mos or dmos, "
                    + ", ".join(OPTIONAL_COLUMNS)
                )
            if column in names[:index]:
                raise DatasetError(f"{where}: column {column} appears twice")
        if "image" not in names:
            raise DatasetError(f"{where}: no image column; the header names {','.join(names)}")
        scores = [c for c in SCORE_COLUMNS if c in names]
        if len(scores) != 1:
            problem = "both mos and dmos" if scores else "neither mos nor dmos"
            raise DatasetError(
                f"{where}: {problem}; give exactly one (mos: higher is better, dmos: lower is better)"
            )
        if self.attribute is not None and "attribute" in names:
            raise DatasetError(
                f"{where}: an attribute column, and {self.name}:{self.attribute} names one for the whole "
                "file; give one or the other"
            )
        if self.attribute is None and "attribute" not in names:
            raise DatasetError(
                f"{where}: no attribute column; add one ({', '.join(ATTRIBUTES)}) or name the attribute "
                f"of the whole file as {self.name}:<attribute>=PATH"
            )
        self.columns = names

    def entries(self) -> list[Entry]:
        entries = [
            self.entry(where, fields)
            for where, fields in csv_rows(self.path, (), check_header=self.check_header)
        ]
        if not entries:
            raise DatasetError(f"{self.path}: no rows; the layout is {LAYOUT}")
        return entries

    def entry(self, where: str, fields: dict[str, str]) -> Entry:
        attribute = self.attribute or self.row_attribute(where, fields["attribute"])
        image = self.root.file(fields["image"], where)
        reference = (
            self.root.file(fields["reference"], where, "reference") if fields.get("reference") else None
        )
        setting: Setting = "nr" if reference is None else "fr"
        first_setting, first = self.setting_of.setdefault(attribute, (setting, where))
        if setting != first_setting:
            has = {"fr": "has a reference", "nr": "has no reference"}
            raise DatasetError(
                f"{where}: mixed FR/NR in one attribute: this {attribute} row {has[setting]}, the "
                f"{attribute} row at {first} {has[first_setting]}; the rows of one attribute are all FR "
                "or all NR"
            )
        key = self.relative(image)
        self.unique.setdefault((setting, attribute), Unique(f"{setting}_{attribute} image")).add(key, where)
        score_column = "mos" if "mos" in self.columns else "dmos"
        split = fields.get("split") or "test"
        if split not in SPLITS:
            raise DatasetError(f"{where}: split {split!r} is not demo or test (or empty)")
        default_group = self.name if reference is None else self.relative(reference)
        meta: tuple[tuple[str, MetaValue], ...] = (("split", split),)
        ratings = self.optional(fields, "n_ratings", where)
        if ratings is not None:
            if ratings < 1 or ratings != int(ratings):
                raise DatasetError(
                    f"{where}: n_ratings {fields['n_ratings']!r} is not a positive whole number"
                )
            meta += (("n_ratings", int(ratings)),)
        std = self.optional(fields, "std", where)
        if std is not None and std < 0:
            raise DatasetError(f"{where}: std {fields['std']!r} is negative")
        return Entry(
            setting=setting,
            attribute=attribute,
            key=key,
            image=image,
            score=number(fields[score_column], score_column, where),
            group=fields.get("group") or default_group,
            source=where,
            reference=reference,
            std=std,
            meta=meta,
        )

    def row_attribute(self, where: str, text: str) -> Attribute:
        attribute = _attribute(text)
        if attribute is None:
            raise DatasetError(f"{where}: attribute {text!r} is not one of {', '.join(ATTRIBUTES)}")
        return attribute

    def optional(self, fields: Mapping[str, str], column: str, where: str) -> float | None:
        """An optional number: an empty cell (or no column) means absent."""
        text = fields.get(column, "")
        return number(text, column, where) if text else None

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root.path).as_posix()


def _card(
    name: str, path: Path, attribute: Attribute | None, entries: Sequence[Entry], mos: bool
) -> DatasetCard:
    scores = [e.score for e in entries]
    aggregation = _aggregation(_local(entries))
    whole_file = f"; attribute {attribute} for every row, given as {name}:{attribute}" if attribute else ""
    return DatasetCard(
        name=name,
        description=f"{name}: your own data, {len(entries)} scored rows in {path}",
        license="your own data: its terms are yours",
        provenance=(
            f"{path}, read by the generic CSV layout (iqa_eval.datasets.custom, reader {VERSION})"
            + whole_file
        ),
        ground_truth=(
            (
                "mos, higher is better"
                if mos
                else "dmos, lower is better (the direction is kept, never flipped)"
            )
            + f"; observed range {min(scores):g}..{max(scores):g}; comparable within a group"
        ),
        score_range=(min(scores), max(scores)),
        higher_is_better=mos,
        aggregation=aggregation,
    )


def _local(entries: Sequence[Entry]) -> dict[Setting, bool]:
    """Per setting present: whether its rows span more than one comparability group."""
    groups: dict[Setting, set[str]] = {}
    for entry in entries:
        groups.setdefault(entry.setting, set()).add(entry.group)
    return {setting: len(names) > 1 for setting, names in groups.items()}


def _aggregation(local: Mapping[Setting, bool]) -> str:
    kinds = set(local.values())
    if len(kinds) == 1:
        return "local_mean" if kinds == {True} else "global"
    return ", ".join(
        f"{'local_mean' if local[s] else 'global'} in {s.upper()}" for s in SETTINGS if s in local
    )


class CustomDataset(PublicDataset):
    """A dataset read from the generic CSV layout: local or global per setting as its groups
    say, and its ``split=demo`` rows as the demonstration pools."""

    def __init__(
        self,
        card: DatasetCard,
        labels: Path,
        entries: Sequence[Entry],
        digest: str,
        *,
        store: ImageStore | None = None,
        selection: SelectionOptions | None = None,
    ) -> None:
        super().__init__(card, labels.parent, entries, digest, store=store, selection=selection)
        self.labels = labels
        self._local = _local(entries)

    def local_in(self, setting: Setting) -> bool:
        return self._local.get(setting, False)

    def _hold_out(
        self, setting: Setting, members: Sequence[Item]
    ) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
        demos = tuple(i for i in members if i.meta_dict().get("split") == "demo")
        if not demos:
            return super()._hold_out(setting, members)
        held = {i.id for i in demos}
        return tuple(i for i in members if i.id not in held), demos

    def check_sizes(self) -> None:
        """Refuse a cell that some protocol could not measure, naming the file and the cell."""
        for setting, attribute in self.cells():
            cell = f"{setting}_{attribute}"
            items, pool = self.items(setting, attribute), self.demo_pool(setting, attribute)
            per_group = self.local_in(setting) or setting == "fr"  # MS ranks only within a group in FR
            largest = _largest_group(items) if per_group else len(items)
            if largest < COMPARED:
                within = " within one group" if per_group else ""
                raise DatasetError(
                    f"{self.labels}: cell {cell} has {largest} comparable test item(s){within}; every cell "
                    f"needs {COMPARED} (MS ranks {COMPARED} at a time)"
                )
            distinct = max((len(s) for s in _scores_by_group(pool).values()), default=0)
            if distinct < COMPARED:
                explicit = any(i.meta_dict().get("split") == "demo" for i in pool)
                fix = (
                    "its split=demo rows give"
                    if explicit
                    else "no split=demo rows, and the items held out in their place give"
                )
                raise DatasetError(
                    f"{self.labels}: cell {cell} has {fix} at most {distinct} distinct score(s) in one "
                    f"group; the in-context systems show {COMPARED} (mark a group of {COMPARED} or more "
                    "rows of distinct scores split=demo)"
                )


def _largest_group(items: Sequence[Item]) -> int:
    sizes: dict[str, int] = {}
    for item in items:
        sizes[item.group] = sizes.get(item.group, 0) + 1
    return max(sizes.values(), default=0)


def _scores_by_group(items: Sequence[Item]) -> dict[str, set[float]]:
    scores: dict[str, set[float]] = {}
    for item in items:
        scores.setdefault(item.group, set()).add(item.score)
    return scores


def load(
    text: str,
    path: Path,
    *,
    store: ImageStore | None = None,
    selection: SelectionOptions | None = None,
) -> CustomDataset:
    """The dataset ``NAME`` or ``NAME:ATTRIBUTE`` (``text``) read from the CSV ``path`` names."""
    name, attribute = parse_name(text)
    labels = labels_file(path)
    if labels is None:
        raise DatasetError(f"{path}: neither a .csv file nor a folder holding {LABELS}")
    reader = _Reader(labels, name, attribute)
    entries = reader.entries()
    card = _card(name, labels, attribute, entries, mos="mos" in reader.columns)
    digest = files_digest(f"custom/{VERSION}/{name}:{attribute or ''}", [labels])
    dataset = CustomDataset(card, labels, entries, digest, store=store, selection=selection)
    dataset.check_sizes()
    return dataset
