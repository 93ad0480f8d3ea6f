"""A cell's JSON record: the public contract other people's scripts read.

``CellRecord`` is the one definition of a cell's fields (with report/schema.json, which
validates them): a cell that was measured and one that produced no result (skipped, or an error
before any answer) are both built by ``cell_record``, so adding a field touches this module and
the schema. It is a TypedDict, not a dataclass, because a record is plain data where it travels:
through pytest's user properties and xdist's wire to the controller, and back from JSON when a
baseline or another report is read.

Floats that are undefined (nan) become null, never a number, so a JSON consumer cannot mistake
"no valid judgements" for a correlation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from iqa_eval.types import CellResult, CellSpec, Example, Item, MetricValue, Stage2Cell

SCHEMA_VERSION = "1.3"
"""The minor number grows with every field added (1.1: a cell's ``noise_ceiling``; 1.2: model
identities, a baseline comparison's ``status``, the run's notices and exit status, a cell's
``format_compliance``, DS ``position_balance`` for ``bias``; 1.3: the run's ``study``, the
user's own ``tests`` with their judgements, a cell's ``test``, a cell's ``probability_based``
and the ``probabilities`` of its examples, the ``levels`` strategy); readers of 1.x
keep working, so only a change they could misread raises the major number."""


class MetricRecord(TypedDict):
    value: float | None
    ci: list[float | None]
    n: int
    aggregation: str
    note: str


class _CellFields(TypedDict):
    """What every cell record holds, in the order the JSON report shows it."""

    id: str
    stage: int
    model: str
    dataset: str
    setting: str
    attribute: str
    protocol: str
    strategy: str
    subset: str
    n_items: int
    n_queries: int
    n_failed: dict[str, int]
    coverage: float
    format_compliance: float | None
    primary_metric: str | None
    metrics: dict[str, MetricRecord]
    gate: dict[str, object] | None
    outcome: str | None
    """None until pytest's report of the test decides it (a skipped or error cell knows it)."""
    message: str
    notes: list[str]
    predictions: list[dict[str, Any]]
    examples: list[dict[str, Any]]


class CellRecord(_CellFields, total=False):
    """A cell's record; the fields below are there only once the cell was evaluated."""

    probability_based: bool
    """Whether its judgements come from answer-word probabilities (``levels``), not text."""
    selected_by: dict[str, Any]
    """Stage 2: how the run chose the cell's prompting system."""
    fingerprint: str
    identity: dict[str, object]
    dataset_digest: str
    noise_ceiling: MetricRecord | None
    baseline: dict[str, Any]
    """Set when a baseline was given: the comparison with the same cell of the baseline run."""
    test: str
    """A cell a user's own test evaluated (``iqa_evaluate``): that test's node id. Its ``id`` is
    the test's id and the cell's, so it never stands in for the suite's cell of the same spec."""


def metric_record(metric: MetricValue) -> MetricRecord:
    return {
        "value": metric.value,
        "ci": [metric.low, metric.high],
        "n": metric.n,
        "aggregation": metric.aggregation,
        "note": metric.note,
    }


def cell_record(
    cell: CellSpec | Stage2Cell,
    stage: int,
    message: str,
    *,
    result: CellResult | None = None,
    gate: dict[str, object] | None = None,
    outcome: str | None = None,
    items: Sequence[Item] = (),
) -> CellRecord:
    """The record of a cell, with its measurement when ``result`` is given (a cell that produced
    none still appears in the reports, empty); ``items`` give each prediction its stimulus path,
    so the HTML report can show the worst-judged images without the dataset at hand (None:
    unknown)."""
    r = result
    paths = {item.id: item.image.path for item in items}
    record = CellRecord(
        id=cell.id,
        stage=stage,
        model=cell.model,
        dataset=cell.dataset,
        setting=cell.setting,
        attribute=cell.attribute,
        protocol=cell.protocol,
        strategy=cell.strategy,
        subset=cell.subset,
        n_items=r.n_items if r else 0,
        n_queries=r.n_queries if r else 0,
        n_failed=dict(r.n_failed) if r else {},
        coverage=round(r.coverage, 6) if r else 0.0,
        format_compliance=None if r is None or r.format_compliance is None else round(r.format_compliance, 6),
        primary_metric=r.primary_metric if r else None,
        metrics={name: metric_record(m) for name, m in r.metrics.items()} if r else {},
        gate=gate,
        outcome=outcome,
        message=message,
        notes=list(r.notes) if r else [],
        predictions=[
            {
                "item": p.item_id,
                "truth": p.truth,
                "predicted": p.predicted,
                "group": p.group,
                "image": paths.get(p.item_id),
            }
            for p in (r.predictions if r else ())
        ],
        examples=[_example(e) for e in (r.examples if r else ())],
    )
    # A stage-2 cell's system is known only once chosen: it says so when its record is resolved.
    if cell.strategy != "best":
        record["probability_based"] = cell.strategy == "levels"
    return record


def _example(example: Example) -> dict[str, Any]:
    out: dict[str, Any] = {
        "query": example.query_key,
        "items": list(example.item_ids),
        "text": example.text,
        "failure": example.failure,
    }
    if example.probabilities is not None:
        out["probabilities"] = dict(example.probabilities)
    return out
