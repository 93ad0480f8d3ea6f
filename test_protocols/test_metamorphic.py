"""Metamorphic tests of the model under test: what must not change a judgement.

Cases are drawn with hypothesis inside the stage-1 sample's comparability groups. The draws are
derandomised and bounded, so a rerun asks the same questions and is answered from the cache;
each relation's rate is then gated like any cell.
"""

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from iqa_eval.evaluation.metamorphic import Case

CASES = 24

draws = settings(
    derandomize=True,
    max_examples=CASES * 4,
    database=None,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def collect(strategy):
    """Up to CASES distinct cases from a strategy, in hypothesis's deterministic order."""
    cases = []

    @draws
    @given(strategy)
    def gather(case):
        if case not in cases and len(cases) < CASES:
            cases.append(case)

    gather()
    return cases


def graded(groups, size):
    return [g for g in groups if len({i.quality for i in g}) >= size]


@pytest.mark.iqa_relation("ds")
def test_verdict_survives_swapping_the_order(iqa_metamorphic):
    groups = graded(iqa_metamorphic.groups, 2)
    pairs = st.sampled_from(groups).flatmap(lambda g: st.permutations(g).map(lambda p: Case((p[0], p[1]))))
    iqa_metamorphic.check_cases(collect(pairs.filter(lambda c: c.items[0].quality != c.items[1].quality)))


@pytest.mark.iqa_relation("ms")
def test_ranking_is_equivariant_under_permutation(iqa_metamorphic):
    groups = graded(iqa_metamorphic.groups, 4)
    four = st.sampled_from(groups).flatmap(lambda g: st.permutations(g).map(lambda p: tuple(p[:4])))
    cases = st.tuples(four, st.permutations(range(4))).map(lambda t: Case(t[0], tuple(t[1])))
    iqa_metamorphic.check_cases(collect(cases.filter(lambda c: c.permutation != (0, 1, 2, 3))))


@pytest.mark.iqa_relation("ss")
def test_score_survives_lossless_reencoding(iqa_metamorphic):
    items = [item for group in iqa_metamorphic.groups for item in group]
    iqa_metamorphic.check_cases(collect(st.sampled_from(items).map(lambda i: Case((i,)))))
