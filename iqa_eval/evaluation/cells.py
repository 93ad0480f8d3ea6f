"""From a cell's specification to its result: sample, plan, execute, parse, aggregate.

The plugin and the programmatic API both go through here, so a test and a notebook that ask for
the same cell get the same numbers. Planning is separate from execution so that the plugin can
plan every selected cell first and send the union of their queries through one engine run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from iqa_eval.datasets.base import Dataset
from iqa_eval.protocols.base import Plan, PlanRequest
from iqa_eval.protocols.demos import demonstration
from iqa_eval.protocols.levels import judge_probabilities, no_option_mass
from iqa_eval.protocols.registry import method
from iqa_eval.sampling import subsets, uniform
from iqa_eval.types import Answer, CellResult, CellSpec, Decoding, Example, Item, Judgement

SUBSETS = ("uniform", "finegrained", "difficult", "all")
EXAMPLES_PER_CELL = 12
EXAMPLE_CHARS = 2000


def subset_items(dataset: Dataset, spec: CellSpec) -> tuple[Item, ...]:
    items = dataset.items(spec.setting, spec.attribute)
    if spec.subset == "all":
        return items
    if spec.subset == "uniform":
        return uniform.uniform(items, fr=spec.setting == "fr")
    if spec.subset == "finegrained":
        return uniform.finegrained(items)
    if spec.subset == "difficult":
        return subsets.difficult_subset(dataset, spec.setting, spec.attribute)
    raise ValueError(f"unknown subset {spec.subset!r}; known: {', '.join(SUBSETS)}")


def quality_range(dataset: Dataset) -> tuple[float, float]:
    lo, hi = dataset.card.score_range
    return (lo, hi) if dataset.card.higher_is_better else (-hi, -lo)


@dataclass(frozen=True)
class Planner:
    seed: int = 0
    decoding: Decoding = field(default_factory=Decoding)
    paper: bool = False

    def plan(self, spec: CellSpec, dataset: Dataset) -> Plan:
        impl = method(spec.protocol)
        demo = None
        if spec.strategy == "icl":
            pool = dataset.demo_pool(spec.setting, spec.attribute)
            demo = demonstration(spec.protocol, pool, quality_range(dataset), self.paper)
        request = PlanRequest(
            items=subset_items(dataset, spec),
            setting=spec.setting,
            strategy=spec.strategy,
            local=dataset.local_in(spec.setting),
            demo=demo,
            decoding=self.decoding,
            seed=self.seed,
            paper=self.paper,
        )
        return impl.plan(request)


def judge_answer(spec: CellSpec, answer: Answer | None) -> Judgement:
    """An API failure or a parse failure keeps its reason; only valid text becomes values."""
    if answer is None:
        return Judgement(None, "not_run")
    if not answer.ok or answer.text is None:
        return Judgement(None, answer.error or "no_answer")
    if spec.strategy == "levels":
        if answer.probabilities is None:
            return Judgement(None, "no_probabilities", "the answer carries text but no probabilities")
        return judge_probabilities(spec.protocol, answer.probabilities)
    return method(spec.protocol).parse(answer.text, spec.setting)


def judge_answers(spec: CellSpec, plan: Plan, answers: Mapping[str, Answer]) -> dict[str, Judgement]:
    """A judgement for every planned query."""
    return {pq.query.key: judge_answer(spec, answers.get(pq.query.key)) for pq in plan.queries}


def random_judgement(protocol: str, rng: np.random.Generator) -> Judgement:
    """What the study put in place of an answer it could not parse: a uniformly random one."""
    if protocol == "ss":
        return Judgement((float(rng.uniform(0, 100)),), description="random fill")
    if protocol == "ds":
        return Judgement((float(rng.integers(0, 3)),), description="random fill")
    return Judgement(tuple(float(r) for r in rng.permutation(4)), description="random fill")


def evaluate(
    spec: CellSpec,
    plan: Plan,
    answers: Mapping[str, Answer],
    seed: int,
    n_resamples: int = 1000,
    random_fill: bool = False,
) -> CellResult:
    """The cell's result. ``random_fill`` (paper compatibility only) scores failed answers at
    random as the study did; failures are still counted as failures, and every metric and the
    cell's notes say how many judgements were invented."""
    judged = judge_answers(spec, plan, answers)
    pairs = [(pq, judged[pq.query.key]) for pq in plan.queries]
    failures = Counter(j.failure for _, j in pairs if j.failure is not None)
    notes = list(plan.notes)
    if random_fill and failures:
        rng = np.random.default_rng(seed)
        pairs = [(pq, j if j.ok else random_judgement(spec.protocol, rng)) for pq, j in pairs]
        notes.append(
            f"PAPER RANDOM FILL: {sum(failures.values())} of {len(pairs)} judgements are random "
            "stand-ins for failed answers; every metric of this cell is affected"
        )
    aggregate = method(spec.protocol).aggregate(plan, pairs, seed=seed, n_resamples=n_resamples)
    metrics = aggregate.metrics
    if random_fill and failures:
        mark = f"includes {sum(failures.values())} random-fill judgements"
        metrics = {
            name: replace(m, note="; ".join(filter(None, [m.note, mark]))) for name, m in metrics.items()
        }
    # Probabilities have no format to comply with: compliance is for text answers only.
    compliant = None
    if spec.strategy == "levels":
        notes.append(_mass_note(plan, answers))
    else:
        compliant = sum(judged[pq.query.key].compliant for pq in plan.queries)
    return CellResult(
        spec=spec,
        n_items=len(plan.items),
        n_queries=len(plan.queries),
        n_compliant=compliant,
        n_failed=dict(sorted(failures.items())),
        metrics=metrics,
        primary_metric=aggregate.primary_metric,
        predictions=aggregate.predictions,
        examples=_examples(plan, pairs, answers),
        notes=tuple(notes) + aggregate.notes,
    )


def _mass_note(plan: Plan, answers: Mapping[str, Answer]) -> str:
    """How much of the models' probability fell on no answer word, over the cell's answers."""
    masses = [
        no_option_mass(a.probabilities)
        for pq in plan.queries
        if (a := answers.get(pq.query.key)) is not None and a.probabilities is not None
    ]
    if not masses:
        return "probability-based: no answer carried probabilities"
    return (
        f"probability-based: the share of probability on no level word is {np.mean(masses):.3f} on "
        f"average (largest {max(masses):.3f}) over {len(masses)} answers"
    )


def _examples(
    plan: Plan, pairs: Sequence[tuple[object, Judgement]], answers: Mapping[str, Answer]
) -> tuple[Example, ...]:
    """A few answers per cell for the report: failures first (they need a reader's eyes)."""
    failed: list[Example] = []
    ok: list[Example] = []
    for pq, judgement in zip(plan.queries, (j for _, j in pairs), strict=True):
        answer = answers.get(pq.query.key)
        text = (answer.text or answer.detail or "") if answer is not None else ""
        probabilities = answer.probabilities if answer is not None else None
        example = Example(pq.query.key, pq.item_ids, text[:EXAMPLE_CHARS], judgement.failure, probabilities)
        (failed if judgement.failure else ok).append(example)
    half = EXAMPLES_PER_CELL // 2
    return tuple(failed[:half] + ok[: EXAMPLES_PER_CELL - min(half, len(failed))])
