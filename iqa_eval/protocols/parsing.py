"""Turning a model's free text into numbers, or into a named failure.

The study's format puts the answer after the first ``Score:``. Real models drift from it
("**Score:** 72", "72/100", "I would rate it 72 out of 100", "first: 0, second: 3, ...",
"Image 2 is better"); refusing such answers would measure format-following instead of quality
judgement, and hide it inside coverage. So every *unambiguous* variant is read, and whether the
answer was in exactly the requested format is kept apart (``Judgement.compliant``) so a cell
can report format compliance beside coverage.

What stays strict is ambiguity: two different values for one judgement, a range, alternatives
joined by "or", a hedge ("about 70"), the wrong count, or a value out of range is a failure
with its reason, never a guess, because a guessed number would enter the correlation as if the
model had said it. Parsers never raise on model text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from iqa_eval.types import Judgement

# Only ASCII digits: a model that answers in other numerals did not follow the format.
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
# Where a number may begin: not inside another one. Without it a search would try a match from
# every digit of a long run of digits, and an answer of many digits would take hours.
_AT = r"(?<![0-9.])"
_NUMBER_RE = re.compile(_AT + _NUMBER)
_SCORE = re.compile(r"score\s*[:：]", re.IGNORECASE)
# Labels a model uses for the score line instead of the bare "Score:".
_LABEL = re.compile(
    r"(?<![A-Za-z])(?:(?:final|overall|quality|my|image|total)\s+)*(?:score|rating|ranking|ranks?)"
    r"\s*(?:\([^()\n]{0,40}\)\s*)?(?:[:：=]|is\b)",
    re.IGNORECASE,
)
_DESCRIPTION = re.compile(r"description\s*[:：]\s*", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:can(?:'|no)?t|cannot|am (?:unable|not able)|won't|will not)"
    r"|sorry|unable to (?:assess|help|provide))\b",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"[*_`#]+")
# No leading \s*: searched for, it would rescan a long run of blanks from each of its characters,
# and an answer of a few hundred thousand blanks would take hours to parse.
_OUT_OF_100 = re.compile(r"(?:/\s*100|out of 100|of 100|points)(?![0-9])", re.IGNORECASE)
_SEPARATORS = re.compile(r"\s*(?:,|;|\s)\s*")
_HEDGE = re.compile(
    r"\b(?:about|around|approximately|approx|roughly|maybe|perhaps|possibly|probably|likely|somewhere"
    r"|circa|near|nearly|almost|between)\b|~|≈",
    re.IGNORECASE,
)
_RANGE = re.compile(rf"{_AT}(?:{_NUMBER})\s*(?:-|–|—|\bto\b)\s*(?:{_NUMBER})", re.IGNORECASE)
_OR = re.compile(rf"{_AT}(?:{_NUMBER})\s*(?:\bor\b|/)\s*(?:{_NUMBER})", re.IGNORECASE)
_UNLABELLED_SCORE = re.compile(
    r"(?:\b(?:rate|rating|score|give|assign)\w*\s+(?:(?:it|this(?: image)?|the image)\s+)?"
    r"(?:(?:an?|of|at|as)\s+)?"
    rf"(?P<a>{_NUMBER})(?!\s*[0-9])|{_AT}(?P<b>{_NUMBER})\s*(?:/\s*100|out of 100)(?![0-9]))",
    re.IGNORECASE,
)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}
_POSITION = (
    r"(?:(?P<ord>first|second|third|fourth|1st|2nd|3rd|4th)(?:\s+(?:distorted\s+)?image)?"
    r"|(?:distorted\s+)?(?:image|img|picture)\s*(?:#\s*)?(?P<num>[0-9]))"
)
_LABELLED_RANK = re.compile(rf"{_POSITION}\s*[:=]\s*(?P<value>{_NUMBER})", re.IGNORECASE)
_LEADING_NUMBER = re.compile(rf"\s*(?:[,;]\s*)?({_NUMBER})(?![0-9A-Za-z])")
_SCALE_SUFFIX = re.compile(r"\s*(?:/\s*100|out of 100)(?![0-9])", re.IGNORECASE)

MAX_ANSWER_CHARS = 200_000

# Failure reasons for ambiguity, beside the older "unparseable", "wrong_count" and "out_of_range".
CONFLICTING = "conflicting"  # two different values for one judgement
RANGE = "range"  # "70-80", "70 to 80"
ALTERNATIVES = "alternatives"  # "70 or 80"
HEDGED = "hedged"  # "about 70"


def split_answer(text: str) -> tuple[str | None, str, str | None]:
    """Return (score field, description, failure) for the text after the first ``Score:``.

    The score field is the rest of that line with surrounding whitespace, brackets and a final
    full stop removed. Kept for callers that want the study's literal reading.
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


# A reader of prose for answers with no number in the score field (DS: "Image 2 is better").
ProseReader = Callable[[str], tuple[float, ...] | str | None]


def parse_fixed(
    text: str,
    count: int,
    allowed: set[float] | None = None,
    bounds: tuple[float, float] | None = None,
    prose: ProseReader | None = None,
    labelled: bool = False,
) -> Judgement:
    """Parse exactly ``count`` numbers, each in ``allowed`` or within ``bounds``.

    ``labelled`` reads ranks given per position ("first: 0", "Image 3: 2"); ``prose`` reads a
    verbal answer when no number is given. ``compliant`` on the result says whether the answer
    was in exactly the requested format (the strict reading of the study).
    """
    if not text or not text.strip():
        return Judgement(None, "empty")
    if len(text) > MAX_ANSWER_CHARS:
        return Judgement(None, "too_long")
    compliant = _strict(text, count)
    cleaned = _EMPHASIS.sub("", text)
    description = _description(cleaned)
    read = _read(cleaned, count, prose, labelled)
    if isinstance(read, str):
        return Judgement(None, read, description)
    values = read
    if len(values) != count:
        return Judgement(None, "wrong_count", description)
    if not all(math.isfinite(v) for v in values):
        return Judgement(None, "unparseable", description)
    if allowed is not None and any(v not in allowed for v in values):
        return Judgement(None, "out_of_range", description)
    if bounds is not None and any(not bounds[0] <= v <= bounds[1] for v in values):
        return Judgement(None, "out_of_range", description)
    return Judgement(
        tuple(values), None, description, compliant=compliant is not None and compliant == values
    )


def _strict(text: str, count: int) -> tuple[float, ...] | None:
    """The values of an answer in exactly the requested format: an optional description, then
    one ``Score:`` line of ``count`` plain numbers and nothing after it."""
    match = _SCORE.search(text)
    if match is None or _SCORE.search(text, match.end()) is not None:
        return None
    before = text[: match.start()]
    if before.strip() and not _DESCRIPTION.match(before.lstrip()):
        return None
    if not (before == "" or before.endswith("\n")):
        return None
    rest = text[match.end() :].lstrip(" \t").rstrip()
    if not rest or "\n" in rest:
        return None
    tokens = [t for t in re.split(r"\s*,\s*|\s+", rest) if t]
    if len(tokens) != count or not all(re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", t) for t in tokens):
        return None
    return tuple(float(t) for t in tokens)


def _description(text: str) -> str:
    match = _LABEL.search(text)
    before = text[: match.start()] if match else ""
    desc_match = _DESCRIPTION.search(before)
    return (before[desc_match.end() :] if desc_match else before).strip()


def _read(text: str, count: int, prose: ProseReader | None, labelled: bool) -> tuple[float, ...] | str:
    """Values, or a failure reason, from text whose emphasis marks are already removed."""
    labels = list(_LABEL.finditer(text))
    if labelled:
        # Ranks by position may run over several lines after the label.
        ranks = _labelled_ranks(text[labels[0].end() :] if labels else text, count)
        if ranks is not None:
            return ranks
    fields = [_field(text, m.end()) for m in labels]
    readings: list[tuple[float, ...]] = []
    first_failure: str | None = None
    for field in fields:
        read = _read_field(field, count, prose, labelled)
        if isinstance(read, str):
            first_failure = first_failure or read
        else:
            readings.append(read)
    if not fields:
        read = _read_unlabelled(text, count, prose, labelled)
        if isinstance(read, str):
            return read
        readings.append(read)
    if not readings:
        return first_failure or "unparseable"
    if len(set(readings)) > 1:
        return CONFLICTING
    return readings[0]


def _field(text: str, start: int) -> str:
    """The score field: the rest of the label's line, or the next line when that is empty."""
    rest = text[start:]
    line, _, after = rest.partition("\n")
    if not line.strip():
        line = after.lstrip("\n").split("\n", 1)[0]
    return line.strip()


def _read_field(field: str, count: int, prose: ProseReader | None, labelled: bool) -> tuple[float, ...] | str:
    if labelled:
        ranks = _labelled_ranks(field, count)
        if ranks is not None:
            return ranks
    ambiguity = _ambiguity(field)
    if ambiguity:
        return ambiguity
    body = field.strip().lstrip("[(<{").strip()
    numbers = _leading_numbers(body)
    if numbers is None:
        if prose is not None:
            verbal = prose(field)
            if verbal is not None:
                return verbal
        return "unparseable"
    values, rest = numbers
    if _NUMBER_RE.search(_OUT_OF_100.sub("", rest)) and _continues_the_answer(rest):
        return CONFLICTING
    if prose is not None:
        verbal = prose(rest)  # "Score: 0 (the first image is better)" says two things
        if isinstance(verbal, str) or (verbal is not None and verbal != values):
            return CONFLICTING
    return values


def _read_unlabelled(
    text: str, count: int, prose: ProseReader | None, labelled: bool
) -> tuple[float, ...] | str:
    """An answer with no score label: ranks by position, a verbal DS answer, or one score
    marked as such ("72/100", "I would rate it 72")."""
    if labelled:
        ranks = _labelled_ranks(text, count)
        if ranks is not None:
            return ranks
    whole = _leading_numbers(text.strip())
    if whole is not None and not whole[1].strip(" .!\n"):
        return whole[0]  # the answer is the values alone, without the label
    if prose is not None:
        verbal = prose(text)
        if verbal is not None:
            return verbal
    if count == 1 and prose is None:
        found = {float(m.group("a") or m.group("b")) for m in _UNLABELLED_SCORE.finditer(text)}
        if len(found) == 1:
            sentence = _sentence_with(text, found)
            ambiguity = _ambiguity(sentence)
            return ambiguity if ambiguity else (found.pop(),)
        if len(found) > 1:
            return CONFLICTING
    return "refusal" if _REFUSAL.search(text) else "no_score"


def _sentence_with(text: str, values: set[float]) -> str:
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        if any(float(n) in values for n in _NUMBER_RE.findall(sentence) if _finite(n)):
            return sentence
    return text


def _finite(token: str) -> bool:
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def _ambiguity(field: str) -> str | None:
    if _RANGE.search(field):
        return RANGE
    without_scale = _OUT_OF_100.sub("", field)
    if _OR.search(without_scale):
        return ALTERNATIVES
    if _HEDGE.search(field) and _NUMBER_RE.search(field):
        return HEDGED
    return None


def _leading_numbers(body: str) -> tuple[tuple[float, ...], str] | None:
    """The run of numbers a field starts with (separated by commas, semicolons or blanks), and
    the text after it; None when the field does not start with a number."""
    values: list[float] = []
    pos = 0
    while True:
        match = _LEADING_NUMBER.match(body, pos)
        if match is None:
            break
        values.append(float(match.group(1)))
        # "72. The image..." ends a sentence: the full stop belongs to the text, not the number.
        pos = match.end() - match.group(1).endswith(".")
        scale = _SCALE_SUFFIX.match(body, pos)
        if scale:
            pos = scale.end()
    if not values:
        return None
    return tuple(values), body[pos:]


def _continues_the_answer(rest: str) -> bool:
    """Whether text after the leading numbers goes on with another value for the same
    judgement ("70 and 80", "1, then 0") rather than an explanation ("72. Sharp, 3 artefacts"
    is an explanation only once a sentence has ended)."""
    stripped = rest.lstrip(" ])>}")
    return not re.match(r"[.!?]\s|[.!?]$|\(|—\s|-\s|:\s|\n", stripped)


def _labelled_ranks(text: str, count: int) -> tuple[float, ...] | None:
    """Ranks given per position ("first: 0, second: 3", "Image 1: 0"), in position order; None
    when the text does not give every position exactly once."""
    found: dict[int, float] = {}
    for match in _LABELLED_RANK.finditer(text):
        position = _ORDINALS[match.group("ord").lower()] if match.group("ord") else int(match.group("num"))
        value = float(match.group("value"))
        if position in found and found[position] != value:
            return None
        found[position] = value
    if sorted(found) != list(range(1, count + 1)):
        return None
    return tuple(found[p] for p in range(1, count + 1))
