"""Metamorphic relations of the model under test: changes that must not change a judgement.

A model that judges quality should give the same verdict when two images swap places (DS), the
same ranks to the same images in another order (MS), and the same score to the same pixels
sent as a different lossless file (SS). Each relation is measured as a rate over cases, with
its interval, and gated like any cell. A test names the hypothesis strategy its cases come from
(or draws them itself); this module draws them, turns a case into its two queries and decides
whether the relation held.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from iqa_eval.evaluation.cells import judge_answer
from iqa_eval.metrics import estimate_rate
from iqa_eval.protocols.base import build_query, metric_value
from iqa_eval.types import Answer, CellResult, CellSpec, Decoding, Item, Judgement, Query

RELATIONS = {"ds": "order swap", "ms": "permutation", "ss": "lossless re-encoding"}
SS_TOLERANCE = 5.0  # points on the 0–100 scale; temperature-0 APIs are not bit-exact
DS_SOFT_TOLERANCE = 0.2
"""How far a soft preference may move when the pair swaps places: a model with no position bias
moves it by nothing, one that prefers a position by up to the whole range."""


@dataclass(frozen=True)
class Case:
    """Items as first presented, and for MS the permutation of the second presentation."""

    items: tuple[Item, ...]
    permutation: tuple[int, ...] = ()


CaseStrategy = Callable[[list[list[Item]]], st.SearchStrategy[Case]]
"""What ``@pytest.mark.iqa_relation(protocol, cases=...)`` names: from the stage-1 sample in
comparability groups, the strategy of the relation's cases."""

CASES = 24

draws = settings(
    derandomize=True,
    max_examples=CASES * 4,
    database=None,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def collect(strategy: st.SearchStrategy[Case]) -> list[Case]:
    """Up to CASES distinct cases from a strategy, in hypothesis's deterministic order: a rerun
    asks the same questions, answered from the cache.

    The inner function's text is part of hypothesis's seed; changing it draws other cases.
    """
    cases: list[Case] = []

    @draws
    @given(strategy)
    def gather(case):  # type: ignore[no-untyped-def]  # annotations would change the seed
        if case not in cases and len(cases) < CASES:
            cases.append(case)

    gather()
    return cases


def queries(spec: CellSpec, case: Case, decoding: Decoding) -> tuple[Query, Query]:
    strategy = spec.strategy
    first = build_query(spec.setting, spec.protocol, strategy, list(case.items), None, decoding)
    if spec.protocol == "ds":
        second = build_query(spec.setting, "ds", strategy, list(reversed(case.items)), None, decoding)
    elif spec.protocol == "ms":
        permuted = [case.items[k] for k in case.permutation]
        second = build_query(spec.setting, "ms", strategy, permuted, None, decoding)
    else:
        second = replace(first, images=tuple(replace(im, encoding="png9") for im in first.images))
    return first, second


def holds(spec: CellSpec, case: Case, one: Judgement, two: Judgement) -> bool:
    assert one.values is not None and two.values is not None
    if spec.protocol == "ds" and spec.strategy == "levels":
        # P(a better) asked as (a, b) against 1 - P(b better) asked as (b, a).
        return abs(one.values[0] - (1.0 - two.values[0])) <= DS_SOFT_TOLERANCE
    if spec.protocol == "ds":
        # (a, b) answered 1 means a wins; (b, a) answered 0 means a wins too; 2 is a tie both ways.
        return {1.0: 0.0, 0.0: 1.0, 2.0: 2.0}[one.values[0]] == two.values[0]
    if spec.protocol == "ms":
        return all(two.values[j] == one.values[k] for j, k in enumerate(case.permutation))
    return abs(one.values[0] - two.values[0]) <= SS_TOLERANCE


def evaluate(
    spec: CellSpec, cases: Sequence[Case], answers: Mapping[str, Answer], decoding: Decoding, seed: int
) -> CellResult:
    outcomes: list[float] = []
    failures: Counter[str] = Counter()
    for case in cases:
        one, two = (judge_answer(spec, answers.get(q.key)) for q in queries(spec, case, decoding))
        if one.ok and two.ok:
            outcomes.append(float(holds(spec, case, one, two)))
        failures.update(j.failure for j in (one, two) if j.failure is not None)
    rate = metric_value(estimate_rate(outcomes, seed=seed))
    return CellResult(
        spec=spec,
        n_items=len({item.id for case in cases for item in case.items}),
        n_queries=2 * len(cases),
        n_failed=dict(sorted(failures.items())),
        metrics={"invariance": rate},
        primary_metric="invariance",
        notes=(
            f"{RELATIONS[spec.protocol]}: {len(cases)} cases drawn by hypothesis; a case counts when "
            "both of its answers are valid"
            + (f" and the two scores differ by at most {SS_TOLERANCE:g}" if spec.protocol == "ss" else "")
            + (
                f" and P(first better) moves by at most {DS_SOFT_TOLERANCE:g} with the swap"
                if spec.protocol == "ds" and spec.strategy == "levels"
                else ""
            ),
        ),
    )
