"""What every psychophysical method shares: the ``Method`` seam, plans of queries, and
assembling one query.

A plan binds each query to the items it judges, in presentation order, so that parsing and
aggregation never have to guess which answer belongs to which stimulus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol as TypingProtocol

from iqa_eval.metrics import Estimate
from iqa_eval.prompts import get_template, render
from iqa_eval.protocols.levels import ANSWER_TOKENS, options_for
from iqa_eval.types import (
    Decoding,
    Item,
    Judgement,
    MetricValue,
    Prediction,
    Protocol,
    Query,
    QueryImage,
    Setting,
    Strategy,
)


@dataclass(frozen=True)
class Demonstration:
    """The in-context example: its items in presentation order and the true label it carries."""

    items: tuple[Item, ...]
    label: str | None = None


@dataclass(frozen=True)
class PlanRequest:
    """Everything a cell gives a method to plan its queries from.

    One typed request rather than keyword arguments: a structural ``Method`` must declare every
    argument the planner passes, so a method that does not use one (single stimulus draws
    nothing at random, so needs no seed) would still have to take it. With a request each
    method reads only the fields it uses.
    """

    items: Sequence[Item]
    setting: Setting
    strategy: Strategy
    local: bool
    """Whether scores are comparable only inside an item's group (pairs and groups stay inside)."""
    demo: Demonstration | None = None
    decoding: Decoding = field(default_factory=Decoding)
    seed: int = 0
    paper: bool = False
    """The study's own schedule where it differs from the suite's default."""


@dataclass(frozen=True)
class PlannedQuery:
    query: Query
    item_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    setting: Setting
    protocol: Protocol
    strategy: Strategy
    items: tuple[Item, ...]
    queries: tuple[PlannedQuery, ...]
    local: bool
    notes: tuple[str, ...] = ()


Judged = Sequence[tuple[PlannedQuery, Judgement]]
"""Each planned query with the judgement of its answer, in plan order."""


@dataclass(frozen=True)
class Aggregate:
    metrics: Mapping[str, MetricValue]
    primary_metric: str
    predictions: tuple[Prediction, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


class Method(TypingProtocol):
    """One psychophysical method (ss, ds, ms): plan its queries, parse an answer, aggregate.

    Named ``Method``, not ``Protocol``: in this suite "protocol" is the user's word for ss, ds
    and ms (the ``iqa_eval.types.Protocol`` literal, options, markers, JSON fields), and this
    class is itself a ``typing.Protocol``; a third meaning of the word would be one too many.
    """

    @property
    def name(self) -> Protocol: ...

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        """The prompting strategies the method has templates for, in the suite's order."""
        ...

    def plan(self, request: PlanRequest) -> Plan: ...

    def parse(self, text: str, setting: Setting) -> Judgement: ...

    def aggregate(self, plan: Plan, judged: Judged, *, seed: int, n_resamples: int = 1000) -> Aggregate: ...


def build_query(
    setting: Setting,
    protocol: Protocol,
    strategy: Strategy,
    judged: Sequence[Item],
    demo: Demonstration | None,
    decoding: Decoding,
) -> Query:
    """One query: demonstration images first, then the reference (FR), then the judged images.

    The items of one query share a comparability group. Where their references differ (the
    misaligned references of FR geometry), the reference shown is the one of the item with the
    smallest id, whatever the presentation order: swapping or permuting the images must change
    nothing but their order, or order consistency would measure a change of reference too.
    """
    template = get_template(setting, protocol, strategy)
    images: list[QueryImage] = []
    if strategy == "icl":
        if demo is None:
            raise ValueError(f"{template.id} needs an in-context demonstration")
        images.extend(_stimuli(setting, demo.items, "demo_reference", "demo"))
    images.extend(_stimuli(setting, judged, "reference", "image"))
    label = demo.label if strategy == "icl" and demo is not None else None
    options: tuple[str, ...] = ()
    if strategy == "levels":
        # Only the first answer token is read; a longer answer would be paid for and ignored.
        options = options_for(protocol)
        decoding = replace(decoding, max_tokens=min(decoding.max_tokens, ANSWER_TOKENS))
    return Query(
        setting=setting,
        protocol=protocol,
        strategy=strategy,
        template_id=template.id,
        template_hash=template.hash,
        text=render(template, label),
        images=tuple(images),
        decoding=decoding,
        options=options,
    )


def _stimuli(setting: Setting, items: Sequence[Item], ref_role: str, img_role: str) -> list[QueryImage]:
    out: list[QueryImage] = []
    if setting == "fr":
        anchor = min(items, key=lambda item: item.id)
        reference = anchor.reference
        if reference is None:
            raise ValueError(f"item {anchor.id} has no reference but the setting is full-reference")
        out.append(QueryImage(ref_role, reference))  # type: ignore[arg-type]
    out.extend(QueryImage(img_role, item.image) for item in items)  # type: ignore[arg-type]
    return out


def metric_value(estimate: Estimate) -> MetricValue:
    """Convert a metrics.Estimate into the report's MetricValue, turning nan into None."""

    def clean(x: float) -> float | None:
        return None if x != x else float(x)

    return MetricValue(
        value=clean(estimate.value),
        low=clean(estimate.low),
        high=clean(estimate.high),
        n=estimate.n,
        aggregation=estimate.aggregation,
        note=estimate.note,
    )


def judgements_for(plan: Plan, answers: Mapping[str, Judgement]) -> list[tuple[PlannedQuery, Judgement]]:
    return [(pq, answers[pq.query.key]) for pq in plan.queries]
