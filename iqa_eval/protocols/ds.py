"""Double stimulus: which of two images is better (1 first, 0 second, 2 same).

Schedule of the study: every item is the first image of five pairs with seeded random partners
(from its own group in FR, or wherever scores are comparable only inside a group). By default
each pair is asked in both orders, which measures position balance (1 = no preference for a
position) and order consistency, the 2AFC study's contribution; ``paper`` mode asks
anchor-first only, with the study's seed 20.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iqa_eval.metrics import estimate_rate
from iqa_eval.protocols.base import (
    Aggregate,
    Judged,
    Plan,
    PlannedQuery,
    PlanRequest,
    build_query,
    metric_value,
)
from iqa_eval.protocols.pairwise import (
    Outcome,
    Preference,
    partners,
    position_balance,
    scale,
    scale_metrics,
)
from iqa_eval.protocols.parsing import parse_fixed
from iqa_eval.protocols.verbal import read_verdict
from iqa_eval.types import STRATEGIES, Item, Judgement, Protocol, Setting, Strategy

PAIRS_PER_ITEM = 5
PAPER_SEED = 20
FIRST, SECOND, SAME = 1, 0, 2


def schedule(
    items: Sequence[Item], same_group: bool, rng: np.random.Generator, *, once: bool = True
) -> tuple[list[tuple[Item, Item]], int]:
    """Anchor-first pairs; returns the pairs and how many items had no partner at all.

    With ``once`` each unordered pair is kept once (a pair drawn twice would count one judgement
    twice). The study kept every draw, so each item anchors exactly five pairs (150 items, 750
    queries) and a pair drawn from both ends is asked in both orders: paper mode's schedule.
    """
    seen: set[frozenset[str]] = set()
    pairs: list[tuple[Item, Item]] = []
    lonely = 0
    for item in items:
        pool = partners(item, items, same_group)
        if not pool:
            lonely += 1
            continue
        picks = rng.choice(len(pool), PAIRS_PER_ITEM, replace=len(pool) < PAIRS_PER_ITEM)
        for k in picks:
            key = frozenset((item.id, pool[k].id))
            if key not in seen or not once:
                seen.add(key)
                pairs.append((item, pool[k]))
    return pairs, lonely


def soft_code(preference: float) -> int:
    """The code of the more probable answer to a soft preference (even odds: the same)."""
    return FIRST if preference > 0.5 else SECOND if preference < 0.5 else SAME


def _winner(first: str, second: str, code: int) -> str | None:
    return first if code == FIRST else second if code == SECOND else None


class DoubleStimulus:
    name: Protocol = "ds"
    strategies: tuple[Strategy, ...] = STRATEGIES

    def plan(self, request: PlanRequest) -> Plan:
        r = request
        rng = np.random.default_rng(PAPER_SEED if r.paper else r.seed)
        pairs, lonely = schedule(r.items, r.local or r.setting == "fr", rng, once=not r.paper)
        orders = pairs if r.paper else [p for a, b in pairs for p in ((a, b), (b, a))]
        queries = tuple(
            PlannedQuery(build_query(r.setting, "ds", r.strategy, [a, b], r.demo, r.decoding), (a.id, b.id))
            for a, b in orders
        )
        order = "anchor first only (paper mode)" if r.paper else "each in both orders"
        drawn = "pairs as drawn" if r.paper else "distinct pairs"
        notes = [f"{len(pairs)} {drawn}, {order}"]
        if lonely:
            notes.append(f"{lonely} item(s) had no comparable partner")
        return Plan(r.setting, "ds", r.strategy, tuple(r.items), queries, r.local, tuple(notes))

    def parse(self, text: str, setting: Setting) -> Judgement:
        return parse_fixed(text, 1, allowed={0.0, 1.0, 2.0}, prose=lambda t: read_verdict(t, setting))

    def aggregate(self, plan: Plan, judged: Judged, *, seed: int, n_resamples: int = 1000) -> Aggregate:
        quality = {item.id: item.quality for item in plan.items}
        soft = plan.strategy == "levels"
        outcomes: list[Outcome] = []
        preferences: list[Preference] = []
        credit: list[float] = []
        by_order: dict[tuple[str, str], int] = {}
        for pq, judgement in judged:
            if not judgement.ok or judgement.values is None:
                continue
            a, b = pq.item_ids
            code = soft_code(judgement.values[0]) if soft else int(judgement.values[0])
            if soft:
                preferences.append((a, b, judgement.values[0]))
            outcomes.append((a, b, code))
            by_order[(a, b)] = code
            if quality[a] != quality[b]:
                better = a if quality[a] > quality[b] else b
                credit.append(0.5 if code == SAME else float(_winner(a, b, code) == better))
        consistent = [
            float(_winner(a, b, code) == _winner(b, a, by_order[(b, a)]))
            for (a, b), code in by_order.items()
            if (b, a) in by_order and a < b
        ]
        scores, notes = scale(plan.items, preferences if soft else outcomes, plan.local, soft=soft)
        metrics, predictions = scale_metrics(plan.items, scores, plan.local, seed, n_resamples)
        metrics["accuracy"] = metric_value(estimate_rate(credit, seed=seed, n_resamples=n_resamples))
        metrics["consistency"] = metric_value(estimate_rate(consistent, seed=seed, n_resamples=n_resamples))
        metrics["position_balance"] = position_balance([code for _, _, code in outcomes], seed, n_resamples)
        notes.append("accuracy: pairs with equal truth are left out; an answer of 'same' earns half credit")
        if soft:
            notes.append(
                "probability-based: each answer is P('1') against P('0'); accuracy, consistency and "
                "position balance read the more probable digit (an even split counts as 'same'), the "
                "scale weighs each comparison by its probability"
            )
        return Aggregate(metrics, "srcc", predictions, tuple(notes))


DS = DoubleStimulus()
