"""The nouns of the suite, as frozen dataclasses shared by every layer.

They are frozen so that a query can be hashed into a cache key and passed between threads
without anyone mutating it half-way, and so that a result cannot drift after it was asserted.
Nothing here imports from the rest of the package: every other module imports from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

Setting = Literal["fr", "nr"]
Attribute = Literal["structure", "texture", "color", "geometry"]
Protocol = Literal["ss", "ds", "ms"]
Strategy = Literal["standard", "icl", "cot", "levels"]
Outcome = Literal["passed", "failed", "error", "skipped"]
Best = Literal["best"]
"""What a stage-2 cell's id and record say in place of the system the run chooses for it."""
BEST: Best = "best"

SETTINGS: tuple[Setting, ...] = get_args(Setting)
ATTRIBUTES: tuple[Attribute, ...] = get_args(Attribute)
PROTOCOLS: tuple[Protocol, ...] = get_args(Protocol)
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

MetaValue = str | int | float


@dataclass(frozen=True)
class Stimulus:
    """An image file together with the hash of its decoded pixels.

    The hash, not the path, identifies the stimulus: two files with the same pixels are the
    same stimulus for the cache, and a file edited in place is a new one.
    """

    path: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class Item:
    """One stimulus with its human (or constructed) ground truth.

    ``score`` is stored as published; ``quality`` turns it into the higher-is-better direction
    explicitly, so a difference scale (ΔE, DMOS) is never correlated with the wrong sign.
    ``group`` names the items whose scores are comparable with each other (a reference, or a
    content × distortion-type ladder): local-mean metrics and pair schedules respect it.
    """

    id: str
    dataset: str
    setting: Setting
    attribute: Attribute
    image: Stimulus
    score: float
    higher_is_better: bool
    group: str
    reference: Stimulus | None = None
    std: float | None = None
    meta: tuple[tuple[str, MetaValue], ...] = ()

    @property
    def quality(self) -> float:
        return self.score if self.higher_is_better else -self.score

    def meta_dict(self) -> dict[str, MetaValue]:
        return dict(self.meta)


ImageRole = Literal["reference", "image", "demo_reference", "demo"]


@dataclass(frozen=True)
class QueryImage:
    """One image of a query; ``encoding`` names the lossless transport encoding of its pixels."""

    role: ImageRole
    stimulus: Stimulus
    encoding: str = "png"


@dataclass(frozen=True)
class Decoding:
    """Decoding settings that change what a model may answer, hence part of the cache key."""

    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0.0 or self.seed is not None


@dataclass(frozen=True)
class Query:
    """One request to a model: the rendered prompt and the images in presentation order.

    ``key`` covers everything that can change the answer except the model, which the cache adds:
    the template hash, the exact text, the pixel hashes with their roles and order, and decoding.
    Paths are left out on purpose, so a dataset moved to another folder still hits the cache.
    """

    setting: Setting
    protocol: Protocol
    strategy: Strategy
    template_id: str
    template_hash: str
    text: str
    images: tuple[QueryImage, ...]
    decoding: Decoding = field(default_factory=Decoding)
    attempt: int = 0
    options: tuple[str, ...] = ()
    """The answer words whose probabilities answer the query (the ``levels`` strategy), in
    place of generated text; empty for a query answered in text."""

    @cached_property
    def key(self) -> str:
        payload: dict[str, object] = {
            "template": self.template_hash,
            "text": self.text,
            "images": [
                [im.role, im.stimulus.sha256] + ([im.encoding] if im.encoding != "png" else [])
                for im in self.images
            ],
            "decoding": [self.decoding.temperature, self.decoding.max_tokens, self.decoding.seed],
        }
        if self.attempt:  # a re-ask (paper mode) is its own request; first asks keep their keys
            payload["attempt"] = self.attempt
        if self.options:  # probabilities were asked for: not the same request as a text answer
            payload["options"] = list(self.options)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Answer:
    """What a model returned for one query, or why it returned nothing.

    ``error`` is a short reason code (``api_error``, ``timeout``, ``budget``, ``not_recorded`` ...)
    and ``detail`` the human explanation; an answer with an error has no text and is never cached.
    ``probabilities`` answers a query with options: each option word with the probability the
    model gave it at the answer position, out of its whole distribution, so their sum says how
    much of the model's belief fell on any option at all.
    """

    text: str | None
    error: str | None = None
    detail: str = ""
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    cached: bool = False
    cost_usd: float = 0.0
    probabilities: tuple[tuple[str, float], ...] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass(frozen=True)
class Judgement:
    """A parsed answer, or a failure with its reason: never both, never a stand-in value."""

    values: tuple[float, ...] | None
    failure: str | None = None
    description: str = ""
    compliant: bool = False
    """Whether the answer was in exactly the requested format (a drifted but unambiguous
    answer still has values, and counts for coverage but not for format compliance)."""

    @property
    def ok(self) -> bool:
        return self.failure is None and self.values is not None


@dataclass(frozen=True)
class CellSpec:
    """The unit a test asserts on: model × dataset × setting × attribute × protocol × strategy × subset."""

    model: str
    dataset: str
    setting: Setting
    attribute: Attribute
    protocol: Protocol
    strategy: Strategy
    subset: str

    @property
    def id(self) -> str:
        return _cell_id(
            self.model, self.dataset, self.setting, self.attribute, self.protocol, self.strategy, self.subset
        )

    @property
    def group(self) -> str:
        """Stage 2 picks one prompting system per model, dataset and setting from every stage-1
        cell of theirs: the cells that must have been evaluated before a stage-2 cell can be."""
        return f"{self.model}/{self.dataset}/{self.setting}"


@dataclass(frozen=True)
class Stage2Cell:
    """A stage-2 cell before its prompting system is known: the run picks it (the model's best
    stage-1 system) only once the stage-1 answers are in, so a test is parametrized by this and
    evaluates the ``CellSpec`` it resolves to. Its id reads ``best/best`` where a cell's names its
    system; baselines, xdist scopes, shards and node ids all key on that id."""

    model: str
    dataset: str
    setting: Setting
    attribute: Attribute
    subset: str

    @property
    def protocol(self) -> Best:
        return BEST

    @property
    def strategy(self) -> Best:
        return BEST

    @property
    def id(self) -> str:
        return _cell_id(self.model, self.dataset, self.setting, self.attribute, BEST, BEST, self.subset)

    @property
    def group(self) -> str:
        """The stage-1 cells the best system is chosen from (``CellSpec.group``)."""
        return f"{self.model}/{self.dataset}/{self.setting}"

    def with_system(self, protocol: Protocol, strategy: Strategy) -> CellSpec:
        """The cell to evaluate, once the run has chosen its system."""
        return CellSpec(
            self.model, self.dataset, self.setting, self.attribute, protocol, strategy, self.subset
        )


def _cell_id(
    model: str,
    dataset: str,
    setting: Setting,
    attribute: Attribute,
    protocol: str,
    strategy: str,
    subset: str,
) -> str:
    return "/".join([model, dataset, f"{setting}_{attribute}", protocol, strategy, subset])


@dataclass(frozen=True)
class MetricValue:
    value: float | None
    low: float | None
    high: float | None
    n: int
    aggregation: str
    note: str = ""


@dataclass(frozen=True)
class Prediction:
    """One item's ground truth next to what the model's judgements made of it (for plots)."""

    item_id: str
    truth: float
    predicted: float
    group: str


@dataclass(frozen=True)
class Example:
    """One answer kept for the report, so a reader can see what the model actually said."""

    query_key: str
    item_ids: tuple[str, ...]
    text: str
    failure: str | None
    probabilities: tuple[tuple[str, float], ...] | None = None
    """The option probabilities of a ``levels`` answer, which is what it said."""


@dataclass(frozen=True)
class CellResult:
    spec: CellSpec
    n_items: int
    n_queries: int
    n_failed: Mapping[str, int]
    metrics: Mapping[str, MetricValue]
    primary_metric: str
    predictions: tuple[Prediction, ...] = ()
    examples: tuple[Example, ...] = ()
    notes: tuple[str, ...] = ()
    n_compliant: int | None = None
    """Answers in exactly the requested format; None where answers were not text (levels)."""
    outcome: Outcome | None = None
    """What a gate made of the cell (``passed``, ``failed``, or ``error`` when it could not be
    measured); None until one judged it."""
    verdict: str = ""
    """The gate's message: everything its decision used."""

    def check(self) -> None:
        """Assert the gate's verdict, as a suite test does: a caller's own test calls this."""
        if self.outcome is None:
            raise ValueError(f"{self.spec.id}: no gate has judged this cell")
        if self.outcome != "passed":
            raise AssertionError(f"{self.spec.id} {self.outcome}: {self.verdict}")

    @property
    def coverage(self) -> float:
        failed = sum(self.n_failed.values())
        return 1.0 - failed / self.n_queries if self.n_queries else 0.0

    @property
    def format_compliance(self) -> float | None:
        """Share of queries answered in exactly the requested format, beside coverage (the share
        answered unambiguously in any format): the gap is format drift, not misjudgement."""
        if self.n_compliant is None or not self.n_queries:
            return None
        return self.n_compliant / self.n_queries
