"""The expert panel (or one classical measure) answering queries as if it were a multimodal model.

The experts go through the same path as an MLLM (prompt, images with roles, a text answer the
ordinary parser reads), so a default run exercises the whole suite and gives every cell a
classical baseline to compare models with. The panel answers with the mean quality of its
members on the 0..100 scale of :mod:`iqa_eval.experts.panel`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import MappingProxyType

from iqa_eval.experts.allocator import keep_freed_buffers
from iqa_eval.experts.panel import EXPERTS, PANELS, VERSION, measure
from iqa_eval.images import ImageError, ImageStore
from iqa_eval.models.base import Capabilities, ModelClient, PermanentModelError
from iqa_eval.models.measurements import MeasurementCache
from iqa_eval.types import SETTINGS, Answer, Protocol, Query, Setting, Stimulus

PANEL = "panel"
JUDGED_PER_PROTOCOL: Mapping[Protocol, int] = MappingProxyType({"ss": 1, "ds": 2, "ms": 4})

_MemoKey = tuple[str, str, str]


class _Memo:
    """Thread-safe once-only memo: concurrent askers of one key wait for the single computation.

    A lock-around-a-dict is not enough: two worker threads missing at the same moment would both
    measure. The first asker leaves a Future that the others wait on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[_MemoKey, Future[Mapping[str, float]]] = {}

    def get(self, key: _MemoKey, compute: Callable[[], Mapping[str, float]]) -> Mapping[str, float]:
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if future is None:
                future = self._entries[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                # Forget failures so a later ask retries; the waiting askers see this one.
                with self._lock:
                    del self._entries[key]
                future.set_exception(exc)
        return future.result()


class ExpertModel(ModelClient):
    """A classical expert, or the panel of them, behind the model interface.

    ``spec`` is ``expert`` for the panel or ``expert:<name>`` for one measure. ``reverse``
    turns every quality q into 100 - q, a model that is wrong on purpose: the suite's own tests
    use it to show that their gates can fail.
    """

    def __init__(
        self, spec: str = "expert", store: ImageStore | None = None, *, reverse: bool = False
    ) -> None:
        self.name = _parse_spec(spec)
        self.spec = spec
        self.reverse = reverse
        self.fingerprint = f"expert:{self.name}@{VERSION}" + ("+reversed" if reverse else "")
        settings = SETTINGS if self.name == PANEL else (EXPERTS[self.name].setting,)
        self.capabilities = Capabilities(max_images=None, settings=settings)
        self.cacheable = True
        self._store = store if store is not None else ImageStore()
        self._memo = _Memo()
        self._measurements: MeasurementCache | None = None
        keep_freed_buffers()

    def use_cache_dir(self, directory: Path) -> None:
        self._measurements = MeasurementCache(directory)

    async def aclose(self) -> None:
        if self._measurements is not None:
            self._measurements.close()
            self._measurements = None

    async def answer(self, query: Query) -> Answer:
        # The measures are numpy work that would stall the event loop; a thread keeps other
        # queries (and their network I/O, for real models in the same run) moving.
        start = time.perf_counter()
        try:
            text = await asyncio.to_thread(self._respond, query)
        except ImageError:
            raise  # a broken file is the dataset's error: it stops the run, naming the file
        except ValueError as err:
            # A measure that cannot take these stimuli (too small for even one SSIM window,
            # reference and image of different sizes) is this query's failure, not the run's.
            return Answer(
                None, error="expert_unsupported", detail=str(err), latency_s=time.perf_counter() - start
            )
        return Answer(text=text, latency_s=time.perf_counter() - start)

    def _respond(self, query: Query) -> str:
        members = self._members(query.setting)
        reference, judged = _split_images(query)
        raws = [self._raw_values(members, reference, image) for image in judged]
        qualities = [self._quality(members, raw) for raw in raws]
        score = _score_line(query.setting, query.protocol, qualities)
        if query.strategy != "cot":
            return score
        return f"{_description(members, raws, qualities)}\n{score}"

    def _members(self, setting: Setting) -> tuple[str, ...]:
        if self.name == PANEL:
            return PANELS[setting]
        expert = EXPERTS[self.name]
        if expert.setting != setting:
            raise PermanentModelError(
                "unsupported",
                f"expert:{self.name} is a {expert.setting.upper()} measure and cannot answer "
                f"{setting.upper()} queries; use the panel 'expert' or an expert of that setting: "
                f"{', '.join(n for n, e in EXPERTS.items() if e.setting == setting)}",
            )
        return (self.name,)

    def _raw_values(
        self, members: tuple[str, ...], reference: Stimulus | None, image: Stimulus
    ) -> Mapping[str, float]:
        # Keyed by pixel hashes, not paths: the protocols ask for the same pair many times
        # (SS, DS and MS schedules, every strategy) and it is measured once.
        key = (self.name, reference.sha256 if reference else "", image.sha256)
        measured_as = f"{self.name}@{VERSION}"  # reversal changes qualities, not measurements

        def compute() -> Mapping[str, float]:
            kept = self._measurements.get(measured_as, key[1], key[2]) if self._measurements else None
            if kept is not None:
                return kept
            ref_pixels = self._store.pixels(reference.path) if reference else None
            values = measure(
                members, ref_pixels, self._store.pixels(image.path), registered=self.name == PANEL
            )
            if self._measurements is not None:
                self._measurements.put(measured_as, key[1], key[2], values)
            return values

        return self._memo.get(key, compute)

    def _quality(self, members: tuple[str, ...], raw: Mapping[str, float]) -> float:
        quality = sum(EXPERTS[name].to_quality(raw[name]) for name in members) / len(members)
        return 100.0 - quality if self.reverse else quality


def make_expert(spec: str, store: ImageStore | None = None, *, reverse: bool = False) -> ExpertModel:
    """Build the expert named by ``spec``; ValueError lists the valid names for a wrong one."""
    return ExpertModel(spec, store, reverse=reverse)


def _parse_spec(spec: str) -> str:
    head, colon, name = spec.partition(":")
    if head == "expert" and not colon:
        return PANEL
    if head == "expert" and name in EXPERTS:
        return name
    raise ValueError(
        f"unknown expert spec {spec!r}: use 'expert' for the panel or 'expert:<name>' with one of "
        f"{', '.join(EXPERTS)}"
    )


def _split_images(query: Query) -> tuple[Stimulus | None, list[Stimulus]]:
    """The reference (FR only) and judged images; in-context demonstrations are not evidence."""
    references = [im.stimulus for im in query.images if im.role == "reference"]
    judged = [im.stimulus for im in query.images if im.role == "image"]
    expected_refs = 1 if query.setting == "fr" else 0
    expected = JUDGED_PER_PROTOCOL[query.protocol]
    if len(references) != expected_refs or len(judged) != expected:
        raise PermanentModelError(
            "bad_request",
            f"a {query.setting.upper()} {query.protocol.upper()} query needs {expected_refs} reference and "
            f"{expected} judged image(s), got {len(references)} and {len(judged)}",
        )
    return (references[0] if references else None), judged


def _score_line(setting: Setting, protocol: Protocol, qualities: list[float]) -> str:
    if protocol == "ss":
        return f"Score: {qualities[0]:.1f}"
    if protocol == "ds":
        first, second = qualities
        return f"Score: {1 if first > second else 0 if first < second else 2}"
    return "Score: " + ", ".join(str(r) for r in _ranks(setting, qualities))


def _ranks(setting: Setting, qualities: list[float]) -> list[int]:
    """Ranks from 0 (worst) up, tied qualities handled as each setting's answer format demands.

    FR allows shared ranks, so ties get a dense rank (equal qualities share one, the next rank
    follows on: one tie among four uses ranks 0..2). NR demands every rank once, so ties are
    broken by presentation order, the earlier image ranking lower: arbitrary but reproducible.
    """
    if setting == "fr":
        levels = sorted(set(qualities))
        return [levels.index(q) for q in qualities]
    order = sorted(range(len(qualities)), key=lambda i: qualities[i])
    return [order.index(i) for i in range(len(qualities))]


def _description(members: tuple[str, ...], raws: list[Mapping[str, float]], qualities: list[float]) -> str:
    parts = []
    for index, (raw, quality) in enumerate(zip(raws, qualities, strict=True)):
        measured = ", ".join(EXPERTS[name].label.format(raw[name]) for name in members)
        target = "the image" if len(raws) == 1 else f"image {index + 1}"
        parts.append(f"{measured} for {target} (quality {quality:.1f})")
    return "Description: Measured " + "; ".join(parts) + "."
