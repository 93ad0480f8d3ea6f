"""What every public-dataset loader shares: safe paths, strict score files, lazy stimuli.

A dataset's reader reads the score files exactly as the authors publish them and turns each
scored stimulus into an :class:`~iqa_eval.datasets.base.Entry`; :func:`load` wraps every reader
in the same envelope (the checked root folder, the digest of the score files) and
:class:`PublicDataset` turns the entries into items per cell.

The score files are validated completely at load: a malformed row, a non-finite score, a
duplicate name, a missing image or a path that leaves the dataset root (``..``, an absolute path,
a symlink pointing elsewhere) stops the load with a :class:`DatasetError` naming the file and
line, never a silent drop. Images are only checked to exist: decoding ten thousand photos to
load a dataset would cost minutes, and most runs judge a sample of 150. A stimulus reads its
pixel hash and size on first use, through the run's ImageStore, so a damaged image raises an
ImageError that names it and the score-file line that listed it, when it is first judged.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from iqa_eval.datasets.base import Dataset, DatasetCard, DatasetError, DatasetSpec, Entry
from iqa_eval.images import ImageError, ImageStore
from iqa_eval.types import ATTRIBUTES, SETTINGS, Attribute, Item, Setting, Stimulus

BY_SETTING = "local_mean in FR (per reference), global in NR"
"""Card aggregation of a dataset that serves both settings: see :meth:`PublicDataset.local_in`."""

DEMO_ITEMS = 8
"""Items held out of a global (NR) cell as its in-context demonstration pool."""

_DECODED_FIELDS = frozenset({"sha256", "width", "height"})


@dataclass(frozen=True)
class SelectionOptions:
    """How the run selects this dataset's difficult subsets: where selections are cached, which
    semantic features they use, and the seed of any random choice. They travel with the loaded
    dataset because the cell planner knows only the dataset and the cell."""

    cache_dir: Path | None = None
    features: str = "handcrafted"
    seed: int = 0


class ListedStimulus(Stimulus):
    """A stimulus listed in a score file: path now, pixel hash and size on first use.

    Reading them goes through the run's ImageStore, which decodes each file once and shares the
    pixels with the models, so the lazy read costs nothing extra when the image is judged.
    """

    _store: ImageStore
    _source: str

    def __init__(self, path: Path, store: ImageStore, source: str) -> None:
        object.__setattr__(self, "path", str(path))
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_source", source)

    def __getattr__(self, name: str) -> str | int:
        if name not in _DECODED_FIELDS:
            raise AttributeError(name)
        try:
            real = self._store.stimulus(self.path)
        except ImageError as err:
            problem = str(err).removeprefix(f"{self.path}: ")
            raise ImageError(self.path, f"{problem} (listed at {self._source})") from None
        for field_name in _DECODED_FIELDS:
            object.__setattr__(self, field_name, getattr(real, field_name))
        value: str | int = getattr(real, name)
        return value


class DatasetRoot:
    """A dataset folder whose members are found safely and named in errors.

    A member is looked up exactly first; if that fails, each path component is matched
    case-insensitively, because archives of the same dataset differ in case (TID2013's
    ``I01.BMP`` next to ``i01_01_1.bmp``, CSIQ's ``AWGN`` and ``awgn`` folders). The checks
    work on strings with the real path of each folder resolved once: pathlib's per-call
    overhead made loading ten thousand names take seconds.
    """

    def __init__(self, path: Path, dataset: str, layout: str) -> None:
        if not path.is_dir():
            raise DatasetError(f"{path}: not a directory; the {dataset} loader expects {layout}")
        self.path = path
        self.dataset = dataset
        self.layout = layout
        self._root = os.fspath(path)
        self._real = os.path.realpath(path)
        self._real_dirs: dict[str, str] = {}
        self._listings: dict[str, dict[str, list[str]]] = {}

    def score_file(self, rel: str) -> Path:
        path = self.path / rel
        if not path.is_file():
            raise DatasetError(f"{path}: not found; the {self.dataset} loader expects {self.layout}")
        return path

    def file(self, rel: str, where: str, what: str = "image") -> Path:
        """The member ``rel`` of the root, as listed at ``where``, after every safety check."""
        if not rel or rel != rel.strip():
            raise DatasetError(f"{where}: {what} name {rel!r} is empty or has surrounding spaces")
        posix = rel.replace("\\", "/")
        if posix.startswith("/") or PureWindowsPath(rel).drive or os.path.isabs(rel):
            raise DatasetError(
                f"{where}: {what} path {rel!r} is absolute; paths must stay inside the dataset root "
                f"{self.path}"
            )
        parts = [part for part in posix.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise DatasetError(f"{where}: {what} path {rel!r} climbs out of the dataset root with '..'")
        found = self._find(parts)
        if found is None:
            raise DatasetError(f"{where}: {what} {rel} not found under {self.path}")
        folder, name = os.path.split(found)
        real = (
            os.path.realpath(found) if os.path.islink(found) else os.path.join(self._real_dir(folder), name)
        )
        if real != self._real and not real.startswith(self._real + os.sep):
            raise DatasetError(
                f"{where}: {what} {rel} is a link to {real}, outside the dataset root {self.path}"
            )
        if not os.path.isfile(real):
            raise DatasetError(f"{where}: {what} {rel} is not a regular file")
        return Path(found)

    def _real_dir(self, folder: str) -> str:
        if folder not in self._real_dirs:
            self._real_dirs[folder] = os.path.realpath(folder)
        return self._real_dirs[folder]

    def _find(self, parts: Sequence[str]) -> str | None:
        exact = os.path.join(self._root, *parts)
        if os.path.lexists(exact):
            return exact
        current = self._root
        for part in parts:
            names = self._listing(current).get(part.lower(), [])
            if len(names) > 1:
                raise DatasetError(
                    f"{current}: {', '.join(sorted(names))} differ only in case; cannot tell which is {part}"
                )
            if not names:
                return None
            current = os.path.join(current, names[0])
        return current

    def _listing(self, folder: str) -> dict[str, list[str]]:
        if folder not in self._listings:
            listing: dict[str, list[str]] = {}
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    listing.setdefault(name.lower(), []).append(name)
            self._listings[folder] = listing
        return self._listings[folder]


class Unique:
    """Refuses a second listing of the same name: a duplicate row would count one image twice."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._seen: dict[str, str] = {}

    def add(self, key: str, where: str) -> None:
        first = self._seen.setdefault(key, where)
        if first != where:
            raise DatasetError(f"{where}: {self.what} {key} is listed again (first at {first})")


def number(value: object, column: str, where: str) -> float:
    """A finite float from a score-file field; anything else is an error naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DatasetError(f"{where}: {column} is empty")
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise DatasetError(f"{where}: {column} {value!r} is not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {column} {value!r} is not a number") from None
    if not math.isfinite(result):
        raise DatasetError(f"{where}: {column} is {value!r}; scores must be finite numbers")
    return result


def count(value: object, column: str, where: str) -> int:
    """A non-negative whole number (a vote count)."""
    result = number(value, column, where)
    if result < 0 or result != int(result):
        raise DatasetError(f"{where}: {column} {value!r} is not a non-negative whole number")
    return int(result)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err})") from None


def csv_rows(
    path: Path,
    columns: Sequence[str],
    *,
    delimiter: str = ",",
    header: bool = True,
    check_header: Callable[[str, list[str]], None] | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """The rows of a delimited score file as (``file:line``, fields by column).

    With ``header`` the first row must name every column in ``columns`` (others may follow);
    without it, each row holds exactly ``columns``. Blank lines are skipped; any other row with
    the wrong number of fields is an error. ``check_header`` sees the header's ``file:line`` and
    names before any row, for layouts whose columns are partly optional.
    """
    reader = csv.reader(io.StringIO(_text(path), newline=""), delimiter=delimiter)
    names: list[str] | None = None if header else list(columns)
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not any(field.strip() for field in row):
            continue
        if names is None:
            names = [field.strip() for field in row]
            missing = [c for c in columns if c not in names]
            if missing:
                raise DatasetError(
                    f"{where}: header {','.join(names)} lacks {', '.join(missing)}; "
                    f"expected the published header {','.join(columns)}"
                )
            if check_header is not None:
                check_header(where, names)
            continue
        if len(row) != len(names):
            raise DatasetError(
                f"{where}: {len(row)} field(s) where {len(names)} are expected ({','.join(names)})"
            )
        yield where, {name: field.strip() for name, field in zip(names, row, strict=True)}
    if names is None:
        raise DatasetError(f"{path}: empty file; expected the header {','.join(columns)}")


def text_rows(path: Path, fields: int) -> Iterator[tuple[str, list[str]]]:
    """Whitespace-separated rows of exactly ``fields`` fields, as (``file:line``, fields)."""
    for number_, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != fields:
            raise DatasetError(f"{path}:{number_}: {len(parts)} field(s) where {fields} are expected")
        yield f"{path}:{number_}", parts


def xlsx_rows(
    path: Path, columns: Sequence[str], sheet: str | None = None
) -> Iterator[tuple[str, dict[str, object]]]:
    """The rows of a published Excel score sheet as (``file (sheet, row)``, cells by column).

    openpyxl is imported here only: the datasets published as .xlsx (SPAQ, CSIQ) need it, the
    others do not.
    """
    try:
        openpyxl = importlib.import_module("openpyxl")
    except ImportError:
        raise DatasetError(
            f"{path}: reading an .xlsx score file needs openpyxl (pip install openpyxl)"
        ) from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl reports a damaged workbook through many exception types
        raise DatasetError(f"{path}: not a readable .xlsx workbook ({type(err).__name__}: {err})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise DatasetError(f"{path}: no sheet {sheet!r}; sheets: {', '.join(book.sheetnames)}")
        table = book[sheet] if sheet is not None else book.worksheets[0]
        names: list[str] | None = None
        for index, row in enumerate(table.iter_rows(values_only=True), start=1):
            where = f"{path} (sheet {table.title!r}, row {index})"
            if all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row):
                continue
            if names is None:
                names = [str(cell).strip() if cell is not None else "" for cell in row]
                missing = [c for c in columns if c not in names]
                if missing:
                    raise DatasetError(
                        f"{where}: header lacks {', '.join(missing)}; expected columns {', '.join(columns)}"
                    )
                continue
            cells = list(row) + [None] * (len(names) - len(row))
            yield where, {name: cells[i] for i, name in enumerate(names) if name}
        if names is None:
            raise DatasetError(f"{path}: empty sheet; expected columns {', '.join(columns)}")
    finally:
        book.close()


def cell_text(value: object, column: str, where: str) -> str:
    """A name from a spreadsheet cell; Excel stores names such as CSIQ's ``1600`` as numbers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = "" if value is None else str(value).strip()
    if not text:
        raise DatasetError(f"{where}: {column} is empty")
    return text


def files_digest(version: str, files: Iterable[Path]) -> str:
    """Digest of the loader version and the score files' bytes: what the ground truth rests on.

    Images are not hashed here (that would mean reading every image to load the dataset); each
    judged stimulus carries its own pixel hash in the queries and the report.
    """
    digest = hashlib.sha256(f"{version}\n".encode())
    for path in files:
        digest.update(f"{path.name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load(
    spec: DatasetSpec,
    path: Path,
    *,
    store: ImageStore | None = None,
    selection: SelectionOptions | None = None,
) -> PublicDataset:
    """The dataset ``spec`` describes, read from the folder ``path``; DatasetError for a bad copy."""
    scores = spec.reader(DatasetRoot(path, spec.name, spec.layout))
    return PublicDataset(
        scores.card or spec.card,
        path,
        scores.entries,
        files_digest(f"{spec.name}/{spec.version}", scores.files),
        store=store,
        selection=selection,
    )


class PublicDataset(Dataset):
    """A public dataset read from its score files: one implementation behind every loader.

    Scores of a public dataset are comparable within a reference in FR and across all items in
    NR (as the study aggregates them), so FR cells are local and NR cells global. Each cell
    keeps a few items out of its test items as demonstrations: in FR one whole reference (the
    last by name), in NR ``DEMO_ITEMS`` items spread over the quality range.
    """

    def __init__(
        self,
        card: DatasetCard,
        root: Path,
        entries: Sequence[Entry],
        digest: str,
        *,
        store: ImageStore | None = None,
        selection: SelectionOptions | None = None,
    ) -> None:
        if not entries:
            raise DatasetError(f"{root}: the score files list no images")
        self.card = card
        self.root = root
        self.entries = tuple(entries)
        self.selection = selection or SelectionOptions()
        self._digest = digest
        self._store = store or ImageStore()
        self._stimuli: dict[Path, ListedStimulus] = {}
        self._split: dict[tuple[Setting, Attribute], tuple[tuple[Item, ...], tuple[Item, ...]]] = {}

    def cells(self) -> tuple[tuple[Setting, Attribute], ...]:
        present = {(e.setting, e.attribute) for e in self.entries}
        return tuple((s, a) for s in SETTINGS for a in ATTRIBUTES if (s, a) in present)

    def local_in(self, setting: Setting) -> bool:
        return setting == "fr"

    def items(self, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
        return self._cell(setting, attribute)[0]

    def demo_pool(self, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
        return self._cell(setting, attribute)[1]

    def all_items(self, setting: Setting) -> tuple[Item, ...]:
        """Every item of ``setting`` over all attributes, demonstrations included, in file order."""
        return tuple(self._item(e) for e in self.entries if e.setting == setting)

    def manifest_digest(self) -> str:
        return self._digest

    def _cell(self, setting: Setting, attribute: Attribute) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
        if (setting, attribute) not in self._split:
            members = [
                self._item(e) for e in self.entries if (e.setting, e.attribute) == (setting, attribute)
            ]
            if not members:
                raise ValueError(f"{self.name} has no {setting}_{attribute} items; its cells: {self.cells()}")
            self._split[(setting, attribute)] = self._hold_out(setting, members)
        return self._split[(setting, attribute)]

    def _hold_out(
        self, setting: Setting, members: Sequence[Item]
    ) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
        """(test items, demonstration pool) of one cell's items; a layout that marks its
        demonstrations overrides this."""
        return split_demonstrations(members, self.local_in(setting))

    def _stimulus(self, path: Path, source: str) -> ListedStimulus:
        if path not in self._stimuli:
            self._stimuli[path] = ListedStimulus(path, self._store, source)
        return self._stimuli[path]

    def _item(self, entry: Entry) -> Item:
        reference = None
        if entry.setting == "fr":
            if entry.reference is None:
                raise ValueError(f"{entry.source}: a full-reference entry without a reference")
            reference = self._stimulus(entry.reference, entry.source)
        return Item(
            id=f"{entry.setting}_{entry.attribute}/{entry.key}",
            dataset=self.name,
            setting=entry.setting,
            attribute=entry.attribute,
            image=self._stimulus(entry.image, entry.source),
            score=entry.score,
            higher_is_better=self.card.higher_is_better,
            group=entry.group,
            reference=reference,
            std=entry.std,
            meta=entry.meta,
        )


def split_demonstrations(items: Sequence[Item], local: bool) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    """(test items, demonstration pool), disjoint and deterministic.

    A local cell gives up its last group whole, so a demonstration's order or label holds by
    the ground truth of one reference. A global cell gives up ``DEMO_ITEMS`` items at evenly
    spaced quality ranks (fewer for a tiny set), so the pool spans the range the SS label and
    the MS ranking need.
    """
    if local:
        groups = sorted({i.group for i in items})
        if len(groups) < 2:
            return tuple(items), ()
        held = groups[-1]
        return tuple(i for i in items if i.group != held), tuple(i for i in items if i.group == held)
    k = min(DEMO_ITEMS, len(items) // 4)
    if k == 0:
        return tuple(items), ()
    ranked = sorted(items, key=lambda i: (i.quality, i.id))
    held_ids = {ranked[int((j + 0.5) * len(ranked) / k)].id for j in range(k)}
    return tuple(i for i in items if i.id not in held_ids), tuple(i for i in items if i.id in held_ids)
