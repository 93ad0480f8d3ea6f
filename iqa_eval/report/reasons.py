"""Why a cell failed, in one line: the top failure reasons of its answers with their counts and
one answer that failed that way, cut short and escaped.

A gate's message says *that* coverage was too low; this line says what the model did instead
("no_score 302"), so a CI log answers the first question without opening the JSON or HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOP = 3
EXAMPLE_CHARS = 80


def quote(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` on one line: control characters escaped, cut at ``limit`` characters with an
    ellipsis, in double quotes."""
    escaped = text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return '"' + (escaped if len(escaped) <= limit else escaped[: limit - 1] + "…") + '"'


def failure_reasons(record: Mapping[str, Any]) -> str | None:
    """``failed answers: no_score 302, refusal 4; e.g. no_score: "I cannot rate…"``, or None when
    every answer of the cell was usable."""
    counts = {str(k): int(v) for k, v in (record.get("n_failed") or {}).items() if v}
    if not counts:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    listed = ", ".join(f"{reason} {count}" for reason, count in ranked[:TOP])
    more = len(ranked) - TOP
    line = f"failed answers: {listed}" + (f" (+{more} other reasons)" if more > 0 else "")
    examples = [e for e in record.get("examples") or [] if e.get("failure")]
    top = ranked[0][0]
    example = next((e for e in examples if e["failure"] == top), examples[0] if examples else None)
    if example is not None:
        line += f"; e.g. {example['failure']}: {quote(str(example.get('text') or ''))}"
    return line
