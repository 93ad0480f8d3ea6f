"""Hostile and odd answers: every parser returns a judgement or a named failure for any text,
never an exception, never a value outside its protocol, and never takes long; a very long
answer is cut in the reports but kept whole in the cache.

Known answers and their reasons are test_parsing.py's; this file throws everything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import subprocess
import sys
from itertools import product

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from suite_runs import SYSTEMS, report

from iqa_eval.evaluation.cells import EXAMPLE_CHARS
from iqa_eval.execution.cache import ResponseCache
from iqa_eval.protocols.ds import DS
from iqa_eval.protocols.ms import MS
from iqa_eval.protocols.parsing import MAX_ANSWER_CHARS
from iqa_eval.protocols.ss import SS
from iqa_eval.types import SETTINGS, Judgement

PARSERS = {"ss": SS.parse, "ds": DS.parse, "ms": MS.parse}
FAILURES = {
    "empty",
    "too_long",
    "refusal",
    "no_score",
    "unparseable",
    "wrong_count",
    "out_of_range",
    "invalid_ranking",
    "conflicting",
    "range",
    "alternatives",
    "hedged",
}
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(protocol: str, text: str) -> None:
    """The protocol's contract, in both settings: a judgement within its constraints, or a
    failure with a known reason."""
    for setting in SETTINGS:
        judgement = PARSERS[protocol](text, setting)
        assert isinstance(judgement, Judgement)
        if judgement.values is None:
            assert judgement.failure in FAILURES, judgement
            continue
        assert judgement.failure is None
        values = judgement.values
        assert all(isinstance(v, float) and math.isfinite(v) for v in values)
        if protocol == "ss":
            assert len(values) == 1 and 0 <= values[0] <= 100
        elif protocol == "ds":
            assert len(values) == 1 and values[0] in (0, 1, 2)
        else:
            assert len(values) == 4 and set(values) <= {0, 1, 2, 3}
            assert setting == "fr" or len(set(values)) == 4  # NR ranks each image once


# -- any short text --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PARSERS)
@settings(FUZZ, max_examples=2000)
@given(text=st.text(max_size=40))
def test_any_short_text(protocol, text):
    check(protocol, text)


# -- text shaped like the format -------------------------------------------------------------

_DIGITS = st.characters(categories=["Nd", "No", "Nl"]).filter(lambda c: not c.isascii())
_NUMBERS = st.one_of(
    st.integers(0, 3).map(str),
    st.integers(-5, 105).map(str),
    st.integers().map(str),  # huge and negative
    st.floats().map(repr),  # nan, inf, -0.0, 1e+308
    st.sampled_from(
        [
            "nan",
            "-nan",
            "inf",
            "-inf",
            "Infinity",
            "1e999",
            "-1e999",
            "1e-999",
            "0x1",
            "1_0",
            "1e",
            ".",
            "-",
            "+.5e-3",
            "3.",
            "1/2",
            "½",
            "²",
            "٣",
            "３",
            "一",
        ]
    ),
    st.just("9" * 400),
    st.lists(_DIGITS, min_size=1, max_size=3).map("".join),  # other scripts' digits
)
_SEPARATORS = st.sampled_from(["", " ", ",", ", ", ";", "\t", " , ", "/", "|", "\u00a0", "\u2028"])
_FIELD = st.lists(st.tuples(_SEPARATORS, _NUMBERS), max_size=6).map(
    lambda parts: "".join(a + b for a, b in parts)
)
_LABELS = st.sampled_from(
    ["Score:", "score :", "SCORE：", "**Score:**", "Score:\n", "Score: Score:", "Scores:", "Rank:", ""]
)
_ENDINGS = st.sampled_from(["", ".", " / 100", " out of 100", "]", "**", "\nScore: 3", "\r\n", "\x00"])
_ANSWER = st.builds(
    lambda before, label, field, end: f"{before}{label}{field}{end}",
    st.text(max_size=12) | st.sampled_from(["Description: sharp.\n", "I'm sorry, I can't. ", "<b>"]),
    _LABELS,
    _FIELD,
    _ENDINGS,
)


@pytest.mark.parametrize("protocol", PARSERS)
@settings(FUZZ, max_examples=1000)
@given(text=st.lists(_ANSWER, min_size=1, max_size=4).map("\n".join))
def test_answers_shaped_like_the_format(protocol, text):
    check(protocol, text)


# -- the extremes ----------------------------------------------------------------------------

REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I cannot assess images of people.",
    "As an AI, I am unable to provide a score.",
    "Score: I won't rate this.",
]
MEGABYTES = [
    "Score: 50 " + "x" * 2_000_000,
    "Score: " + "1 " * 1_000_000,
    "\x00" * 1_000_000 + "\nScore: 1",
    "Score: 2\n" + "Score: 3\n" * 200_000,
]
UNDER_THE_LIMIT = [  # long runs of blanks and separators next to what the regular expressions look for
    "Score: 5" + "\t" * (MAX_ANSWER_CHARS - 20) + "/",
    "Score: 5" + " " * (MAX_ANSWER_CHARS - 20) + "x",
    "Score: 5 /" + " " * (MAX_ANSWER_CHARS - 20) + "x",
    "Score: 5 / 100" + " " * (MAX_ANSWER_CHARS - 20) + "x",
    "Score: " + ", " * (MAX_ANSWER_CHARS // 2 - 10),
    "score" + " " * (MAX_ANSWER_CHARS - 10) + "x",
    "i" + " " * (MAX_ANSWER_CHARS - 10) + "x",
    "Description" + " " * (MAX_ANSWER_CHARS - 20) + "Score: 1",
]


@pytest.mark.parametrize(
    ("protocol", "text"), list(product(PARSERS, ["", " ", "\n\n", *REFUSALS, *MEGABYTES]))
)
def test_empty_refused_and_enormous_answers(protocol, text):
    check(protocol, text)


def test_no_answer_under_the_size_limit_takes_long_to_parse():
    """A regular expression that rescans a run of blanks from each of its characters takes hours
    on one of these; run in a child process, so such a regression fails instead of hanging."""
    code = (
        "import json, sys\n"
        "from iqa_eval.protocols.registry import METHODS\n"
        "for text in json.load(sys.stdin):\n"
        "    for parse in (m.parse for m in METHODS.values()):\n"
        "        parse(text, 'fr'), parse(text, 'nr')\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(UNDER_THE_LIMIT), text=True, check=True, timeout=60
    )
    for protocol, text in product(PARSERS, UNDER_THE_LIMIT):
        check(protocol, text)


# -- very long answers in a real run ---------------------------------------------------------

LONG = "Description: " + "the edges are soft and the noise is fine-grained; " * 400 + "\nScore: 50"  # 20 kB
TOO_LONG = "Description: " + "blurry " * (MAX_ANSWER_CHARS // 7 + 10) + "\nScore: 50"


def long_answers(request):
    """Half the queries (by their content, so any order of arrival gives the same run) get an
    answer over the parser's limit, the others a long valid one."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()
    return TOO_LONG if digest[0] % 2 else LONG


def test_a_long_answer_is_cut_in_the_reports_but_kept_whole_in_the_cache(
    suite_dir, shared_cache, fake_openai, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = fake_openai(responder=long_answers)
    result = suite_dir.runpytest(
        *SYSTEMS,
        f"--iqa-cache={shared_cache}",
        "--iqa-model=openai:verbose",
        f"--iqa-base-url={server.url}",
        "-m",
        "fr_color and ss and standard",
    )
    result.assert_outcomes(failed=1)  # half the answers fail: coverage
    (cell,) = report(suite_dir.path)["cells"]
    assert 0 < cell["n_failed"]["too_long"] < cell["n_queries"]
    texts = {e["text"] for e in cell["examples"]}
    assert texts == {LONG[:EXAMPLE_CHARS], TOO_LONG[:EXAMPLE_CHARS]}
    html = (suite_dir.path / "reports" / "iqa-report.html").read_text(encoding="utf-8")
    assert LONG[:EXAMPLE_CHARS] in html and LONG[: EXAMPLE_CHARS + 1] not in html
    assert TOO_LONG[:EXAMPLE_CHARS] in html and TOO_LONG[: EXAMPLE_CHARS + 1] not in html
    with contextlib.closing(ResponseCache(shared_cache)) as cache:
        kept = {text for _, _, text, _ in cache.entries(cell["identity"]["key"])}
    assert kept == {LONG, TOO_LONG}
