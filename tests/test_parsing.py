"""Parsers of model text: strict formats, named failures, and no exception on any input."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iqa_eval.protocols.ds import DS
from iqa_eval.protocols.ms import MS
from iqa_eval.protocols.parsing import parse_fixed, parse_numbers, split_answer
from iqa_eval.protocols.ss import SS


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
        ("Score: 61\nScore: 61", (61.0,)),  # the same value twice is one judgement
    ],
)
def test_ss_accepts_the_format(text, values):
    judgement = SS.parse(text, "nr")
    assert judgement.values == values


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("The image looks fine.", "no_score"),
        ("I'm sorry, I can't help with assessing this image.", "refusal"),
        ("Score: seventy", "unparseable"),
        ("Score: 70 and 80", "conflicting"),
        ("Score: 61\nScore: 20", "conflicting"),
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
    judgement = SS.parse(text, "nr")
    assert judgement.values is None
    assert judgement.failure == reason


def test_description_is_kept_for_reports():
    judgement = SS.parse("Description: strong blocking in flat areas.\nScore: 22", "nr")
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
    assert SS.parse(text, "nr").values == (float(f"{value:.4f}"),)


# -- answers as real models write them -------------------------------------------------------
# A corpus of drifted but unambiguous answers: each must yield the judgement it states, and
# none is in exactly the requested format.

SS_DRIFT = [
    ("**Score:** 72", 72.0),
    ("Score: **72**", 72.0),
    ("72/100", 72.0),
    ("Score: 72/100", 72.0),
    ("I would rate it 72 out of 100.", 72.0),
    ("Quality score: 72", 72.0),
    ("Final score: 72", 72.0),
    ("Rating: 72", 72.0),
    ("72", 72.0),
    ("Score: 72 (good quality, slight blur)", 72.0),
    ("Score: 72. The image is sharp with 2 small artefacts.", 72.0),
    ("The image is sharp and well exposed, with little noise.\n\n**Score: 72**", 72.0),
    ("Score:\n72", 72.0),
    ("Score: 72\n\nExplanation: the 3 main aspects are fine.", 72.0),
    ("Overall, I'd give this image a score of 72/100 because it is sharp.", 72.0),
]
MS_DRIFT = [
    ("Score: [first: 0, second: 3, third: 2, fourth: 1]", (0.0, 3.0, 2.0, 1.0)),
    ("Score: first: 0, second: 3, third: 2, fourth: 1", (0.0, 3.0, 2.0, 1.0)),
    ("Image 1: 0\nImage 2: 3\nImage 3: 2\nImage 4: 1", (0.0, 3.0, 2.0, 1.0)),
    ("Score: Image 3: 2, Image 1: 0, Image 4: 1, Image 2: 3", (0.0, 3.0, 2.0, 1.0)),
    ("**Score:** 0, 3, 2, 1", (0.0, 3.0, 2.0, 1.0)),
    ("Ranking: 0 3 2 1", (0.0, 3.0, 2.0, 1.0)),
    ("Score: [0, 3, 2, 1]", (0.0, 3.0, 2.0, 1.0)),
    ("Description: image 2 is the sharpest.\nScore: 0; 3; 2; 1", (0.0, 3.0, 2.0, 1.0)),
]
DS_DRIFT = [
    ("nr", "Image 2 is better", 0.0),
    ("nr", "The first image is better.", 1.0),
    ("nr", "Score: the first image", 1.0),
    ("nr", "Score: Image 2", 0.0),
    ("nr", "**Score:** 1", 1.0),
    ("nr", "Score: 1 (the first image is better)", 1.0),
    ("nr", "They are the same quality.", 2.0),
    ("nr", "The second image has better quality: it is sharper.", 0.0),
    ("fr", "The second image is closer to the reference.", 1.0),  # the reference is image 1
    ("fr", "The second distorted image is closer to the reference.", 0.0),
    ("fr", "Image 3 is closer.", 0.0),
]


@pytest.mark.parametrize(("text", "value"), SS_DRIFT)
def test_ss_reads_drifted_but_unambiguous_answers(text, value):
    judgement = SS.parse(text, "nr")
    assert judgement.values == (value,), judgement
    assert not judgement.compliant


@pytest.mark.parametrize(("text", "values"), MS_DRIFT)
def test_ms_reads_labelled_and_drifted_rankings(text, values):
    for setting in ("nr", "fr"):
        judgement = MS.parse(text, setting)
        assert judgement.values == values, judgement
        assert not judgement.compliant


@pytest.mark.parametrize(("setting", "text", "code"), DS_DRIFT)
def test_ds_reads_verdicts_in_words(setting, text, code):
    judgement = DS.parse(text, setting)
    assert judgement.values == (code,), judgement
    assert not judgement.compliant


@pytest.mark.parametrize(
    ("parse", "setting", "text", "reason"),
    [
        (SS.parse, "nr", "Score: 70-80", "range"),
        (SS.parse, "nr", "Score: 70 to 80", "range"),
        (SS.parse, "nr", "Score: 70 or 80", "alternatives"),
        (SS.parse, "nr", "Score: 70/80", "alternatives"),
        (SS.parse, "nr", "Score: about 70", "hedged"),
        (SS.parse, "nr", "Score: maybe 70", "hedged"),
        (SS.parse, "nr", "I would rate it around 70/100.", "hedged"),
        (SS.parse, "nr", "Score: 61\nFinal score: 65", "conflicting"),
        (SS.parse, "nr", "I'd rate it 60/100, or perhaps 70/100.", "conflicting"),
        (SS.parse, "nr", "Score: 101", "out_of_range"),
        (SS.parse, "nr", "The image has 3 problems and 2 strengths.", "no_score"),
        (MS.parse, "nr", "Score: 0, 3, 2", "wrong_count"),
        (MS.parse, "nr", "Score: first: 0, second: 3, third: 2", "unparseable"),
        (MS.parse, "nr", "Score: 0, 3, 2, 1 or 1, 3, 2, 0", "alternatives"),
        (MS.parse, "nr", "Score: 0, 0, 2, 1", "invalid_ranking"),
        (DS.parse, "nr", "Image 1 is better, but image 2 is sharper.", "conflicting"),
        (DS.parse, "nr", "Score: 0 (the first image is better)", "conflicting"),
        (DS.parse, "nr", "Score: 1 or 0", "alternatives"),
        (DS.parse, "fr", "Image 1 is closer.", "conflicting"),  # image 1 is the reference
        (DS.parse, "nr", "Score: 3", "out_of_range"),
    ],
)
def test_ambiguous_answers_are_refused_with_a_named_reason(parse, setting, text, reason):
    judgement = parse(text, setting)
    assert judgement.values is None
    assert judgement.failure == reason


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (SS.parse, "Score: 73"),
        (SS.parse, "Description: sharp, little noise.\nScore: 88"),
        (DS.parse, "Score: 2"),
        (MS.parse, "Score: 0, 3, 2, 1"),
        (MS.parse, "Description: the second is best.\nScore: 0, 3, 2, 1"),
    ],
)
def test_answers_in_exactly_the_requested_format_are_compliant(parse, text):
    judgement = parse(text, "nr")
    assert judgement.ok and judgement.compliant


_LABELS = st.sampled_from(
    ["Score:", "**Score:**", "Quality score:", "Final score:", "Rating:", "Score =", ""]
)
_SCALES = st.sampled_from(["", "/100", " / 100", " out of 100"])
_WRAPS = st.sampled_from([("", ""), ("**", "**"), ("[", "]"), ("(", ")")])
_BEFORE = st.sampled_from(
    ["", "The image is sharp and clean.\n", "Description: some blur.\n", "Analysis:\n\n"]
)
_AFTER = st.sampled_from(["", ".", "\nThe image is fine.", " (good)", ". It shows 2 small artefacts."])


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.integers(0, 100), _LABELS, _SCALES, _WRAPS, _BEFORE, _AFTER)
def test_every_accepted_ss_variant_yields_the_score_it_states(value, label, scale, wrap, before, after):
    if not label and not scale:
        label = "Score:"  # a bare number inside prose is not marked as the score
    text = f"{before}{label} {wrap[0]}{value}{scale}{wrap[1]}{after}"
    assert SS.parse(text, "nr").values == (float(value),), text


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.permutations([0, 1, 2, 3]),
    st.permutations([1, 2, 3, 4]),
    st.sampled_from(["ordinal", "image"]),
    st.sampled_from([", ", "\n", "; "]),
)
def test_every_labelled_ranking_yields_the_ranks_it_states(ranks, order, style, sep):
    names = {1: "first", 2: "second", 3: "third", 4: "fourth"}
    parts = [f"{names[p] if style == 'ordinal' else f'Image {p}'}: {ranks[p - 1]}" for p in order]
    text = "Score: " + sep.join(parts)
    assert MS.parse(text, "nr").values == tuple(float(r) for r in ranks), text


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.integers(0, 100),
    st.integers(0, 100),
    st.sampled_from(["{a}-{b}", "{a} to {b}", "{a} or {b}", "about {a}", "around {a}", "{a}, {b}"]),
    st.sampled_from(["Score: ", "**Score:** ", "Quality score: "]),
)
def test_no_ambiguous_ss_answer_yields_a_score(a, b, shape, label):
    if a == b and "{b}" in shape:
        b = (a + 1) % 101
    judgement = SS.parse(label + shape.format(a=a, b=b), "nr")
    assert judgement.values is None and judgement.failure is not None


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.integers(0, 100), st.integers(0, 100), st.sampled_from(["Score:", "Final score:", "Rating:"]))
def test_two_different_scores_for_one_judgement_are_conflicting(a, b, second_label):
    text = f"Score: {a}\nSome thoughts.\n{second_label} {b}"
    judgement = SS.parse(text, "nr")
    if a == b:
        assert judgement.values == (float(a),)
    else:
        assert judgement.failure == "conflicting"
