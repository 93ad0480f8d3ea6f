"""Metamorphic tests of the model under test: what must not change a judgement.

Each test names the hypothesis strategy of its cases, drawn inside the stage-1 sample's
comparability groups. The draws are derandomised and bounded, so a rerun asks the same
questions and is answered from the cache; the run draws them before any test runs and sends
their queries with the cells', and each relation's rate is then gated like any cell.
"""

import pytest
from hypothesis import strategies as st

from iqa_eval.evaluation.metamorphic import Case


def graded(groups, size):
    return [g for g in groups if len({i.quality for i in g}) >= size]


def swapped_pairs(groups):
    """Two items of one group and of different quality, in either order."""
    pairs = st.sampled_from(graded(groups, 2)).flatmap(
        lambda g: st.permutations(g).map(lambda p: Case((p[0], p[1])))
    )
    return pairs.filter(lambda c: c.items[0].quality != c.items[1].quality)


def reordered_fours(groups):
    """Four items of one group, and another order to show them in."""
    four = st.sampled_from(graded(groups, 4)).flatmap(
        lambda g: st.permutations(g).map(lambda p: tuple(p[:4]))
    )
    cases = st.tuples(four, st.permutations(range(4))).map(lambda t: Case(t[0], tuple(t[1])))
    return cases.filter(lambda c: c.permutation != (0, 1, 2, 3))


def single_images(groups):
    return st.sampled_from([item for group in groups for item in group]).map(lambda i: Case((i,)))


@pytest.mark.iqa_relation("ds", cases=swapped_pairs)
def test_verdict_survives_swapping_the_order(iqa_metamorphic):
    iqa_metamorphic.check()


@pytest.mark.iqa_relation("ms", cases=reordered_fours)
def test_ranking_is_equivariant_under_permutation(iqa_metamorphic):
    iqa_metamorphic.check()


@pytest.mark.iqa_relation("ss", cases=single_images)
def test_score_survives_lossless_reencoding(iqa_metamorphic):
    iqa_metamorphic.check()
