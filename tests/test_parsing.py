"""Parsers of model text: strict formats, named failures, and no exception on any input."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iqa_eval.protocols import ss
from iqa_eval.protocols.parsing import parse_fixed, parse_numbers, split_answer


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("Score: 73", (73.0,)),
        ("Score: 73.5.", (73.5,)),
        ("score:  12 / 100", (12.0,)),
        ("Description: sharp, little noise.\nScore: 88", (88.0,)),
        ("**Score:** 40", (40.0,)),  # markdown emphasis around the label is formatting, not content
        ("Score: [55]", (55.0,)),
        ("Score: 0", (0.0,)),
        ("Score: 100", (100.0,)),
        ("Score: 61\nScore: 20", (61.0,)),  # the first Score: counts
    ],
)
def test_ss_accepts_the_format(text, values):
    judgement = ss.parse(text, "nr")
    assert judgement.values == values


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("The image looks fine.", "no_score"),
        ("I'm sorry, I can't help with assessing this image.", "refusal"),
        ("Score: seventy", "unparseable"),
        ("Score: 70 and 80", "unparseable"),
        ("Score: 70, 80", "wrong_count"),
        ("Score: 101", "out_of_range"),
        ("Score: -3", "out_of_range"),
        ("Score: nan", "unparseable"),
        ("Score: 1e999", "unparseable"),
        ("Score: ٧٣", "unparseable"),  # Arabic-Indic digits are not the format
        ("Score:", "unparseable"),
    ],
)
def test_ss_failures_have_reasons(text, reason):
    judgement = ss.parse(text, "nr")
    assert judgement.values is None
    assert judgement.failure == reason


def test_description_is_kept_for_reports():
    judgement = ss.parse("Description: strong blocking in flat areas.\nScore: 22", "nr")
    assert judgement.description == "strong blocking in flat areas."


def test_huge_answers_fail_without_scanning_them():
    assert split_answer("x" * 300_000 + "Score: 5")[2] == "too_long"


def test_parse_numbers_rejects_mixed_text():
    assert parse_numbers("1, 2, 3") == [1.0, 2.0, 3.0]
    assert parse_numbers("1, two") is None
    assert parse_numbers("") is None


@settings(derandomize=True, max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_parsers_never_raise(text):
    for count in (1, 4):
        judgement = parse_fixed(text, count, bounds=(0.0, 100.0))
        assert (judgement.values is None) != (judgement.failure is None)
        if judgement.values is not None:
            assert len(judgement.values) == count
            assert all(math.isfinite(v) and 0 <= v <= 100 for v in judgement.values)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=100, allow_nan=False), st.text(alphabet=" \t", max_size=3))
def test_any_in_range_score_round_trips(value, pad):
    text = f"Score:{pad}{value:.4f}"
    assert ss.parse(text, "nr").values == (float(f"{value:.4f}"),)
