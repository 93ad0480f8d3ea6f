"""Turning a model's free text into numbers, or into a named failure.

The study's format puts the answer after the first ``Score:``. Everything here is strict on
purpose: an answer that does not say what the format asks for is a failure with a reason, not
something to be guessed at, because a guessed number would enter the correlation as if the model
had said it. Parsers never raise on model text.
"""

from __future__ import annotations

import math
import re

from iqa_eval.types import Judgement

# Only ASCII digits: a model that answers in other numerals did not follow the format.
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_SCORE = re.compile(r"score\s*[:：]", re.IGNORECASE)
_DESCRIPTION = re.compile(r"description\s*[:：]\s*", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:can(?:'|no)?t|cannot|am (?:unable|not able)|won't|will not)"
    r"|sorry|unable to (?:assess|help|provide))\b",
    re.IGNORECASE,
)
# No leading \s*: searched for, it would rescan a long run of blanks from each of its characters,
# and an answer of a few hundred thousand blanks would take hours to parse.
_OUT_OF_100 = re.compile(r"(?:/\s*100|out of 100)\s*$", re.IGNORECASE)
_SEPARATORS = re.compile(r"\s*(?:,|;|\s)\s*")

MAX_ANSWER_CHARS = 200_000


def split_answer(text: str) -> tuple[str | None, str, str | None]:
    """Return (score field, description, failure) for the text after the first ``Score:``.

    The score field is the rest of that line with surrounding whitespace, brackets and a final
    full stop removed.
    """
    if not text or not text.strip():
        return None, "", "empty"
    if len(text) > MAX_ANSWER_CHARS:
        return None, "", "too_long"
    match = _SCORE.search(text)
    if match is None:
        return None, "", "refusal" if _REFUSAL.search(text) else "no_score"
    before = text[: match.start()]
    desc_match = _DESCRIPTION.search(before)
    description = (before[desc_match.end() :] if desc_match else before).strip()
    field = text[match.end() :].split("\n", 1)[0]
    field = field.strip().strip("*`[]()<>").strip().rstrip(".").strip()
    return field, description, None


def parse_numbers(field: str) -> list[float] | None:
    """All numbers of a score field, or None when anything else stands in it."""
    field = _OUT_OF_100.sub("", field).rstrip()
    if not field:
        return None
    tokens = [t for t in _SEPARATORS.split(field) if t]
    if not all(re.fullmatch(_NUMBER, t) for t in tokens):
        return None
    values = [float(t) for t in tokens]
    return values if all(math.isfinite(v) for v in values) else None


def parse_fixed(
    text: str, count: int, allowed: set[float] | None = None, bounds: tuple[float, float] | None = None
) -> Judgement:
    """Parse exactly ``count`` numbers, each in ``allowed`` or within ``bounds``."""
    field, description, failure = split_answer(text)
    if failure is not None or field is None:
        return Judgement(None, failure or "no_score", description)
    values = parse_numbers(field)
    if values is None:
        return Judgement(None, "unparseable", description)
    if len(values) != count:
        return Judgement(None, "wrong_count", description)
    if allowed is not None and any(v not in allowed for v in values):
        return Judgement(None, "out_of_range", description)
    if bounds is not None and any(not bounds[0] <= v <= bounds[1] for v in values):
        return Judgement(None, "out_of_range", description)
    return Judgement(tuple(values), None, description)
