"""Multiple stimulus: rank four images, 0 (worst) to 3 (best).

Each item anchors two groups of four (itself and three seeded random others from where its
score is comparable); the order inside a group is shuffled with the seed. A ranking becomes its
six pairwise outcomes (higher rank wins, equal ranks tie) for the Thurstone scale, and Kendall's
tau between each ranking and the truth is averaged over groups. NR rankings must use every rank
once; FR allows ties, as the study's FR prompt does.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from iqa_eval.metrics import krcc_rows
from iqa_eval.protocols.base import Aggregate, Judged, Plan, PlannedQuery, PlanRequest, build_query
from iqa_eval.protocols.pairwise import Outcome, mean_with_ci, partners, scale, scale_metrics
from iqa_eval.protocols.parsing import parse_fixed
from iqa_eval.types import STRATEGIES, Judgement, Protocol, Setting, Strategy

GROUPS_PER_ITEM = 2
GROUP_SIZE = 4


class MultipleStimulus:
    name: Protocol = "ms"
    strategies: tuple[Strategy, ...] = tuple(s for s in STRATEGIES if s != "levels")

    def plan(self, request: PlanRequest) -> Plan:
        """The study's MS schedule is the default, so ``paper`` changes nothing here."""
        r = request
        rng = np.random.default_rng(r.seed)
        seen: set[tuple[str, ...]] = set()
        queries: list[PlannedQuery] = []
        short = 0
        for item in r.items:
            pool = partners(item, r.items, r.local or r.setting == "fr")
            if len(pool) < GROUP_SIZE - 1:
                short += 1
                continue
            for _ in range(GROUPS_PER_ITEM):
                others = rng.choice(len(pool), GROUP_SIZE - 1, replace=False)
                members = [item, *(pool[k] for k in others)]
                order = rng.permutation(GROUP_SIZE)
                group = [members[k] for k in order]
                key = tuple(m.id for m in group)
                if key not in seen:
                    seen.add(key)
                    query = build_query(r.setting, "ms", r.strategy, group, r.demo, r.decoding)
                    queries.append(PlannedQuery(query, key))
        notes = [f"{len(queries)} distinct groups of {GROUP_SIZE}"]
        if short:
            notes.append(
                f"{short} item(s) had fewer than {GROUP_SIZE - 1} comparable partners and anchor no group"
            )
        return Plan(r.setting, "ms", r.strategy, tuple(r.items), tuple(queries), r.local, tuple(notes))

    def parse(self, text: str, setting: Setting) -> Judgement:
        judgement = parse_fixed(text, GROUP_SIZE, allowed={0.0, 1.0, 2.0, 3.0}, labelled=True)
        if judgement.ok and setting == "nr" and len(set(judgement.values or ())) != GROUP_SIZE:
            return Judgement(None, "invalid_ranking", judgement.description)
        return judgement

    def aggregate(self, plan: Plan, judged: Judged, *, seed: int, n_resamples: int = 1000) -> Aggregate:
        quality = {item.id: item.quality for item in plan.items}
        outcomes: list[Outcome] = []
        rankings: list[tuple[float, ...]] = []
        truths: list[list[float]] = []
        for pq, judgement in judged:
            if not judgement.ok or judgement.values is None:
                continue
            ranks = judgement.values
            for i, j in combinations(range(GROUP_SIZE), 2):
                code = 1 if ranks[i] > ranks[j] else 0 if ranks[i] < ranks[j] else 2
                outcomes.append((pq.item_ids[i], pq.item_ids[j], code))
            rankings.append(tuple(ranks))
            truths.append([quality[i] for i in pq.item_ids])
        all_taus = krcc_rows(np.reshape(rankings, (-1, GROUP_SIZE)), np.reshape(truths, (-1, GROUP_SIZE)))
        # Undefined when the truth ties all four, or the ranking is constant.
        taus = [float(tau) for tau in all_taus if tau == tau]
        scores, notes = scale(plan.items, outcomes, plan.local)
        metrics, predictions = scale_metrics(plan.items, scores, plan.local, seed, n_resamples)
        metrics["krcc"] = mean_with_ci(taus, seed, n_resamples, "Kendall tau-b per group of four, averaged")
        return Aggregate(metrics, "srcc", predictions, tuple(notes))


MS = MultipleStimulus()
