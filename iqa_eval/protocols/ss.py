"""Single stimulus: the model rates each item on 0–100; metrics correlate ratings with truth."""

from __future__ import annotations

from collections.abc import Mapping

from iqa_eval.metrics import estimate_correlation
from iqa_eval.protocols.base import (
    Aggregate,
    Judged,
    Plan,
    PlannedQuery,
    PlanRequest,
    build_query,
    metric_value,
)
from iqa_eval.protocols.parsing import parse_fixed
from iqa_eval.types import STRATEGIES, Item, Judgement, Prediction, Protocol, Setting, Strategy

CORRELATIONS = ("srcc", "plcc", "krcc")


class SingleStimulus:
    name: Protocol = "ss"
    strategies: tuple[Strategy, ...] = STRATEGIES

    def plan(self, request: PlanRequest) -> Plan:
        """One query per item in a fixed order: nothing random to draw, so no seed is read."""
        r = request
        queries = tuple(
            PlannedQuery(build_query(r.setting, "ss", r.strategy, [item], r.demo, r.decoding), (item.id,))
            for item in r.items
        )
        return Plan(r.setting, "ss", r.strategy, tuple(r.items), queries, r.local)

    def parse(self, text: str, setting: Setting) -> Judgement:
        """A rating in 0–100; the setting changes nothing about how it is read."""
        return parse_fixed(text, 1, bounds=(0.0, 100.0))

    def aggregate(self, plan: Plan, judged: Judged, *, seed: int, n_resamples: int = 1000) -> Aggregate:
        by_id: Mapping[str, Item] = {item.id: item for item in plan.items}
        scores: dict[str, list[float]] = {}
        for pq, judgement in judged:
            if judgement.ok and judgement.values is not None:
                scores.setdefault(pq.item_ids[0], []).append(judgement.values[0])
        rated = [by_id[i] for i in by_id if i in scores]
        predicted = [sum(scores[i.id]) / len(scores[i.id]) for i in rated]
        truth = [i.quality for i in rated]
        groups = [i.group for i in rated] if plan.local else None
        metrics = {
            name: metric_value(
                estimate_correlation(name, predicted, truth, groups, seed=seed, n_resamples=n_resamples)
            )
            for name in CORRELATIONS
        }
        predictions = tuple(
            Prediction(i.id, i.quality, p, i.group) for i, p in zip(rated, predicted, strict=True)
        )
        return Aggregate(metrics, "srcc", predictions)


SS = SingleStimulus()
