"""The dataset interface: test items and demonstration pools per setting and attribute."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from iqa_eval.types import Attribute, Item, Setting


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
