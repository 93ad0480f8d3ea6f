"""Questions a user's own test asks the model under test about images of its own.

A product team's must-hold behaviours ("the blurred photo scores below the sharp one") are single
judgements on images that belong to no dataset and carry no ground truth. They go through the
run's engine, so the cache, the identity rules, the budget and the failure ledger treat them as
every planned query; they use the standard prompts of the suite, so an answer means the same as
in a cell. An array or a PIL image is written once as a PNG named by its pixel hash, so equal
pixels are the same stimulus, in this run and the next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from iqa_eval.evaluation.suite import Suite, Unsupported
from iqa_eval.models.base import INFRASTRUCTURE_FAILURES
from iqa_eval.prompts import get_template, render
from iqa_eval.protocols.ms import GROUP_SIZE
from iqa_eval.protocols.registry import method
from iqa_eval.types import Protocol, Query, QueryImage, Setting, Stimulus

Kind = Literal["score", "preference", "ranking"]
ImageLike = str | os.PathLike[str] | np.ndarray[Any, Any] | Image.Image
"""A path to an image file, an ``H×W×3`` (or ``H×W`` grey) uint8 array, or a PIL image."""

PROTOCOL_OF: Mapping[Kind, Protocol] = {"score": "ss", "preference": "ds", "ranking": "ms"}
PREFERENCE = {1: "a", 0: "b", 2: "same"}
"""The double-stimulus answer codes (1: the first image, 0: the second, 2: equal) in the words a
test reads them in."""


class JudgementFailed(AssertionError):
    """The model gave no judgement: reading its value fails the test with the reason."""


@dataclass(frozen=True)
class ImageJudgement:
    """A judgement of ad-hoc images, or the failure to get one with its reason.

    ``.score`` (0–100, higher is better), ``.preference`` (``"a"``, ``"b"`` or ``"same"``) and
    ``.ranking`` (one rank per image in the order given, 0 = worst) raise
    :class:`JudgementFailed` when the answer failed, naming why; ``.failure`` is the reason
    (None when the judgement holds), for a test that checks failures themselves.
    """

    kind: Kind
    model: str
    setting: Setting
    images: tuple[Stimulus, ...]
    reference: Stimulus | None
    query_key: str
    values: tuple[float, ...] | None
    failure: str | None
    detail: str
    answer: str | None
    cached: bool

    @property
    def ok(self) -> bool:
        return self.failure is None and self.values is not None

    @property
    def infrastructure(self) -> bool:
        """Whether the answer went missing for a reason of infrastructure, not of the model."""
        return self.failure in INFRASTRUCTURE_FAILURES

    @property
    def score(self) -> float:
        return self._values("score")[0]

    @property
    def preference(self) -> str:
        return PREFERENCE[int(self._values("preference")[0])]

    @property
    def ranking(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._values("ranking"))

    def _values(self, kind: Kind) -> tuple[float, ...]:
        if kind != self.kind:
            raise TypeError(f"a {self.kind} judgement has no {kind}; ask_{kind} asks for one")
        if self.values is None:
            said = f"; it answered {self.answer[:200]!r}" if self.answer else ""
            raise JudgementFailed(f"{self.model} gave no {kind}: {self.failure}: {self.detail}{said}")
        return self.values

    def _readable(self) -> float | str | list[int]:
        if self.kind == "score":
            return self.score
        return self.preference if self.kind == "preference" else list(self.ranking)

    def to_record(self) -> dict[str, Any]:
        """The judgement as the JSON report keeps it (images by path and pixel hash)."""
        return {
            "kind": self.kind,
            "model": self.model,
            "setting": self.setting,
            "images": [_stimulus_record(s) for s in self.images],
            "reference": None if self.reference is None else _stimulus_record(self.reference),
            "query": self.query_key,
            "values": None if self.values is None else list(self.values),
            "value": None if not self.ok else self._readable(),
            "failure": self.failure,
            "detail": self.detail,
            "answer": self.answer,
            "cached": self.cached,
        }


class Asker:
    """Asks one model of the run about ad-hoc images; ``folder`` keeps arrays written as PNG."""

    def __init__(self, suite: Suite, model: str, folder: Path) -> None:
        self.suite, self.model, self.folder = suite, model, folder

    def score(self, image: ImageLike, reference: ImageLike | None = None) -> ImageJudgement:
        return self._ask("score", [image], reference)

    def preference(self, a: ImageLike, b: ImageLike, reference: ImageLike | None = None) -> ImageJudgement:
        return self._ask("preference", [a, b], reference)

    def ranking(self, images: Sequence[ImageLike], reference: ImageLike | None = None) -> ImageJudgement:
        one = isinstance(images, str | os.PathLike | np.ndarray | Image.Image)
        if one or len(images) != GROUP_SIZE:
            got = "one image" if one else str(len(images))
            raise ValueError(
                f"ask_ranking ranks exactly {GROUP_SIZE} images, as the suite's prompt does; got {got}"
            )
        return self._ask("ranking", list(images), reference)

    def _ask(self, kind: Kind, images: Sequence[ImageLike], reference: ImageLike | None) -> ImageJudgement:
        setting: Setting = "nr" if reference is None else "fr"
        protocol = PROTOCOL_OF[kind]
        reason = self.suite.cannot_take(self.model, setting, len(images) + (reference is not None))
        if reason is not None:
            raise Unsupported(reason)
        judged = tuple(self._stimulus(image) for image in images)
        ref = None if reference is None else self._stimulus(reference)
        shown = [QueryImage("image", s) for s in judged]
        if ref is not None:
            shown.insert(0, QueryImage("reference", ref))
        template = get_template(setting, protocol, "standard")
        query = Query(
            setting=setting,
            protocol=protocol,
            strategy="standard",
            template_id=template.id,
            template_hash=template.hash,
            text=render(template),
            images=tuple(shown),
            decoding=self.suite.config.decoding,
        )
        answer = self.suite.ask(self.model, [query])[query.key]
        values: tuple[float, ...] | None = None
        failure: str | None = answer.error or "no_answer"
        detail = answer.detail
        if answer.ok and answer.text is not None:
            parsed = method(protocol).parse(answer.text, setting)
            values, failure, detail = parsed.values, parsed.failure, parsed.description
        return ImageJudgement(
            kind=kind,
            model=self.model,
            setting=setting,
            images=judged,
            reference=ref,
            query_key=query.key,
            values=values,
            failure=failure,
            detail=detail,
            answer=answer.text,
            cached=answer.cached,
        )

    def _stimulus(self, image: ImageLike) -> Stimulus:
        if isinstance(image, str | os.PathLike):
            return self.suite.store.stimulus(image)
        return self.suite.store.stimulus_of(image, self.folder)


def _stimulus_record(stimulus: Stimulus) -> dict[str, str]:
    return {"path": stimulus.path, "sha256": stimulus.sha256}
