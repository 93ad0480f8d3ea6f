"""The scalar properties of a cell's JUnit testcase.

CI systems show a testcase's properties as name = value pairs: a cell's numbers as separate
scalars (``iqa.value``, ``iqa.ci_low``, ...) can be shown, sorted and charted there, while the
whole record (kilobytes of predictions) cannot; it stays in the JSON report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _text(value: Any) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def junit_properties(record: Mapping[str, Any], outcome: str) -> list[tuple[str, str]]:
    """``iqa.metric``, ``iqa.value``, ``iqa.ci_low``, ``iqa.ci_high``, ``iqa.coverage`` and
    ``iqa.outcome`` (``outcome`` as the run reports it), and ``iqa.baseline_delta`` when a
    baseline judged the cell. A number the cell has not got is an empty value."""
    name = record.get("primary_metric")
    metric = (record.get("metrics") or {}).get(name) or {}
    low, high = metric.get("ci") or (None, None)
    properties = [
        ("iqa.metric", _text(name)),
        ("iqa.value", _text(metric.get("value"))),
        ("iqa.ci_low", _text(low)),
        ("iqa.ci_high", _text(high)),
        ("iqa.coverage", _text(record.get("coverage"))),
        ("iqa.outcome", outcome),
    ]
    delta = (record.get("baseline") or {}).get("delta")
    if delta is not None:
        properties.append(("iqa.baseline_delta", _text(delta)))
    return properties


def judgement_text(record: Mapping[str, Any]) -> str:
    """One ad-hoc judgement of a user's test as a JUnit property: ``score 72``, ``preference
    a``, ``ranking 0,3,1,2``, or the failure's reason."""
    value = record.get("value")
    if value is None:
        return f"{record.get('kind')} failed: {record.get('failure')}"
    shown = ",".join(str(v) for v in value) if isinstance(value, list) else _text(value)
    return f"{record.get('kind')} {shown}"
