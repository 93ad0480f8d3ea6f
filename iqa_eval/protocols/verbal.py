"""Reading a double-stimulus verdict given in words ("Image 2 is better", "the first image").

Images are named the way the prompt names them: in NR the first and second image; in FR the
reference is the first image, so the compared ones are the second and third (or the first and
second *distorted* image). A verdict is read only when the text names exactly one winner, or
says the two are equal; naming both, or the reference, is ambiguous and left unread.
"""

from __future__ import annotations

import re

from iqa_eval.types import Setting

FIRST, SECOND, SAME = 1.0, 0.0, 2.0
CONFLICTING = "conflicting"

_ORDINAL = {"first": 1, "second": 2, "third": 3, "1st": 1, "2nd": 2, "3rd": 3}
_NAME = (
    r"(?:(?P<ord>first|second|third|1st|2nd|3rd)\s+(?P<dist1>distorted\s+)?(?:image|picture|one|version|photo)"
    r"|(?P<dist2>distorted\s+)?(?:image|picture|photo)\s*(?:#\s*)?(?P<num>[1-3])(?![0-9]))"
)
_VERDICT = re.compile(
    rf"(?:\b|^){_NAME}\s*(?:\([^()\n]{{0,40}}\)\s*)?"
    r"(?::\s*$|(?:(?:is|looks|has|seems|appears|was|shows)\s+)?(?:(?:clearly|slightly|much)\s+)?"
    r"(?:better|the better|higher[- ]quality|of (?:better|higher) quality|closer|sharper|superior"
    r"|preferred))",
    re.IGNORECASE,
)
_BARE = re.compile(rf"^\s*(?:the\s+)?{_NAME}(?:\s*\.)?\s*$", re.IGNORECASE)
_SAME = re.compile(
    r"\b(?:(?:the\s+)?same(?:\s+quality)?|equal(?:ly)?(?:\s+(?:good|close|quality))?|no difference"
    r"|identical quality|both (?:are )?(?:equally|the same))\b",
    re.IGNORECASE,
)


def read_verdict(text: str, setting: Setting) -> tuple[float, ...] | str | None:
    """The DS code stated in words, a failure reason, or None when the text states no verdict."""
    named = {_code(m, setting) for m in _VERDICT.finditer(text)}
    bare = _BARE.match(text)
    if bare is not None:
        named.add(_code(bare, setting))
    said_same = _SAME.search(text) is not None
    if None in named:
        return CONFLICTING  # the reference, or an image that is not compared, called better
    codes = {c for c in named if c is not None}
    if said_same:
        codes.add(SAME)
    if len(codes) > 1:
        return CONFLICTING
    return (codes.pop(),) if codes else None


def _code(match: re.Match[str], setting: Setting) -> float | None:
    position = _ORDINAL[match.group("ord").lower()] if match.group("ord") else int(match.group("num"))
    distorted = bool(match.group("dist1") or match.group("dist2"))
    if setting == "fr" and not distorted:
        position -= 1  # the reference is the first image shown
    return {1: FIRST, 2: SECOND}.get(position)
