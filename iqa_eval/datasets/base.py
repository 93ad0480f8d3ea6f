"""The dataset interface (items and demonstration pools per cell) and what describes a public one.

A public dataset is described once, by the :class:`DatasetSpec` its module exports: the card,
the folder layout, the published counts and the reader of its score files. Everything else a
loader needs (the folder checks, the digest, turning entries into items) is shared.
"""

from __future__ import annotations

import abc
import fcntl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from iqa_eval.types import Attribute, Item, MetaValue, Setting


class DatasetError(ValueError):
    """A dataset copy that cannot be used as it is; the message names the file (and line)."""


@dataclass(frozen=True)
class DatasetCard:
    """What a reader of a report needs to know about where the ground truth came from."""

    name: str
    description: str
    license: str
    provenance: str
    ground_truth: str
    score_range: tuple[float, float]
    higher_is_better: bool
    aggregation: str  # "local_mean" (scores comparable only inside a group) or "global"


class Dataset(abc.ABC):
    card: DatasetCard

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def local(self) -> bool:
        return self.card.aggregation == "local_mean"

    def local_in(self, setting: Setting) -> bool:
        """Whether scores are comparable only inside a group in ``setting``.

        One dataset can serve both settings with different aggregations: KADID-10k's distorted
        images share one opinion scale (global in NR), yet FR predictions are judged per
        reference (local mean), as in the study. By default the card's aggregation holds for
        every setting.
        """
        del setting
        return self.local

    @abc.abstractmethod
    def cells(self) -> tuple[tuple[Setting, Attribute], ...]:
        """The (setting, attribute) pairs this dataset has items for; cheap, no I/O."""

    @abc.abstractmethod
    def items(self, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
        """Test items, in a stable order."""

    @abc.abstractmethod
    def demo_pool(self, setting: Setting, attribute: Attribute) -> tuple[Item, ...]:
        """Items that may serve as in-context demonstrations; never overlaps ``items``."""

    @abc.abstractmethod
    def manifest_digest(self) -> str:
        """A digest of the files and scores in use, recorded in reports and history."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One scored stimulus of one cell, as a reader read it from the score file.

    ``key`` is the published name of the stimulus (unique within a cell); ``source`` is the
    ``file:line`` that listed it, quoted by every later complaint about it. Keyword-only: eight
    fields of which several are paths or names would be easy to swap by position.
    """

    setting: Setting
    attribute: Attribute
    key: str
    image: Path
    score: float
    group: str
    source: str
    reference: Path | None = None
    std: float | None = None
    meta: tuple[tuple[str, MetaValue], ...] = ()


class Root(Protocol):
    """The dataset folder as a reader sees it: members are found safely, and a missing one is an
    error naming the dataset's layout (:class:`iqa_eval.datasets.public.DatasetRoot`)."""

    path: Path

    def score_file(self, rel: str) -> Path: ...

    def file(self, rel: str, where: str, what: str = "image") -> Path: ...


@dataclass(frozen=True)
class Scores:
    """What a reader read: the entries and the score files they rest on (hashed into the digest).

    ``card`` replaces the spec's card when the card depends on the scores, as SPCD's observed
    range does.
    """

    entries: Sequence[Entry]
    files: Sequence[Path]
    card: DatasetCard | None = None


@dataclass(frozen=True)
class Counts:
    """What a complete copy holds, as published; None where the authors publish no number."""

    images: int | None = None
    references: int | None = None
    per_reference: int | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """A public dataset the suite reads, described once: its module exports one.

    ``version`` enters the manifest digest: bump it when the reader changes what it makes of
    the same files. ``check_range`` is False where the card's range is the observed one, which
    every copy meets by construction.
    """

    card: DatasetCard
    layout: str
    reader: Callable[[Root], Scores]
    counts: Counts = field(default_factory=Counts)
    version: str = "1"
    check_range: bool = True

    @property
    def name(self) -> str:
        return self.card.name


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Serialise building (a generated dataset, a selection manifest) between pytest-xdist
    workers that share one cache directory."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
