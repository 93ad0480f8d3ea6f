"""The suite's tests and their cells: markers, the parametrization of cell tests, the fixtures
``iqa_cell`` and ``iqa_metamorphic``, and the check that evaluates a cell, gates it and hands its
record to the run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, cast

import pytest

from iqa_eval.evaluation.baseline import Baseline, compare_cells
from iqa_eval.evaluation.gates import MARKERS, Verdict, cell_markers, judge
from iqa_eval.evaluation.metamorphic import Case, CaseStrategy
from iqa_eval.evaluation.suite import Suite, Unsupported
from iqa_eval.plugin.options import USER_ERRORS
from iqa_eval.report.reasons import failure_reasons
from iqa_eval.report.records import CellRecord, cell_record, metric_record
from iqa_eval.types import CellResult, CellSpec, Item, Stage2Cell

SUITE = pytest.StashKey[Suite]()
BASELINE = pytest.StashKey[Baseline | None]()
STAGE_MARK = "iqa_stage"
PROPERTY = "iqa_cell"
METAMORPHIC = "iqa_metamorphic"
RELATION_MARK = "iqa_relation"
REFERENCE_RULE = "a classical measure: its own score of each image, read as a single-stimulus answer"


def pytest_configure(config: pytest.Config) -> None:
    for marker in sorted(MARKERS):
        config.addinivalue_line("markers", f"{marker}: iqa-eval cells of {marker}")
    config.addinivalue_line("markers", f"{STAGE_MARK}(n): iqa-eval stage of the cells of this test (1 or 2)")
    config.addinivalue_line(
        "markers",
        f"{RELATION_MARK}(protocol, cases=None): the metamorphic relation this test checks, and the "
        "function giving the hypothesis strategy of its cases from the groups (then call check())",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if PROPERTY in metafunc.fixturenames:
        _parametrize_cells(metafunc)
    elif METAMORPHIC in metafunc.fixturenames:
        _parametrize_metamorphic(metafunc)


def _parametrize_cells(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(STAGE_MARK)
    if marker is None or marker.args[0] not in (1, 2):
        _bad_test(f"{metafunc.definition.nodeid}: a test using iqa_cell needs @pytest.mark.iqa_stage(1|2)")
    stage = int(marker.args[0])
    suite = metafunc.config.stash[SUITE]
    try:
        specs: Sequence[CellSpec | Stage2Cell] = (
            suite.stage1_specs() if stage == 1 else [*suite.stage2_specs(), *suite.reference_specs()]
        )
    except USER_ERRORS as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    params = [pytest.param((stage, spec), id=spec.id, marks=_marks(cell_markers(spec))) for spec in specs]
    metafunc.parametrize(PROPERTY, params, indirect=True)


def _parametrize_metamorphic(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(RELATION_MARK)
    if marker is None or marker.args[0] not in ("ss", "ds", "ms"):
        _bad_test(
            f"{metafunc.definition.nodeid}: a test using iqa_metamorphic needs "
            "@pytest.mark.iqa_relation('ss'|'ds'|'ms')"
        )
    strategy = marker.kwargs.get("cases")
    if strategy is not None and not callable(strategy):
        _bad_test(
            f"{metafunc.definition.nodeid}: @pytest.mark.{RELATION_MARK}(..., cases=) takes a function "
            f"of the groups returning a hypothesis strategy of Case, not {type(strategy).__name__}"
        )
    suite = metafunc.config.stash[SUITE]
    try:
        specs = suite.metamorphic_specs(marker.args[0])
    except USER_ERRORS as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    params = [pytest.param((1, spec), id=spec.id, marks=_marks(cell_markers(spec))) for spec in specs]
    if not params and suite.config.study:
        # Said, not pytest's "got empty parameter set": the study's matrix has no such cells.
        reason = "--iqa-study runs the study's cells only; metamorphic checks are the suite's own"
        params = [pytest.param(None, id="study", marks=pytest.mark.skip(reason=reason))]
    metafunc.parametrize(METAMORPHIC, params, indirect=True)


def _bad_test(message: str) -> NoReturn:
    """A test written wrong is a collection error saying so, as pytest's own parametrize errors
    are: no traceback of the plugin's."""
    pytest.fail(message, pytrace=False)


def _marks(names: Iterable[str]) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, name) for name in sorted(names)]


class CellCheck:
    """What a suite test receives: its cell, and the one call that evaluates and gates it."""

    def __init__(self, suite: Suite, stage: int, spec: CellSpec | Stage2Cell, node: pytest.Item) -> None:
        self.suite, self.stage, self.spec, self.node = suite, stage, spec, node

    def check(self) -> None:
        """Evaluate the cell and assert its gate; the record goes to the reports either way."""
        self._run(self._result)

    def _result(self) -> tuple[CellSpec, CellResult, dict[str, Any] | None]:
        if isinstance(self.spec, CellSpec):
            # A stage-2 cell with its system given is a classical measure's reference row.
            selected_by: dict[str, Any] | None = {"rule": REFERENCE_RULE} if self.stage == 2 else None
            spec = self.spec
        else:
            spec, best = self.suite.stage2_spec(self.spec)
            selected_by = {
                "rule": "highest mean stage-1 SRCC over attributes",
                "srcc": best.srcc,
                "ranking": [list(r) for r in best.ranking],
            }
        reason = self.suite.unsupported(spec)
        if reason is not None:
            raise Unsupported(reason)
        return spec, self.suite.result(spec), selected_by

    def _run(self, produce: Callable[[], tuple[CellSpec, CellResult, dict[str, Any] | None]]) -> None:
        try:
            spec, result, selected_by = produce()
        except Unsupported as err:
            self._finish(cell_record(self.spec, self.stage, str(err), outcome="skipped"))
            pytest.skip(str(err))
        except USER_ERRORS as err:
            self._fail_with_error(str(err))
        gate = self.suite.gates.gate_for(spec)
        verdict = judge(result, gate)
        record = measured_record(self.suite, spec, self.stage, result, verdict)
        if selected_by is not None:
            record["selected_by"] = selected_by
        # The failure message's second line says how the answers failed (JUnit shows it too).
        reasons = failure_reasons(record)
        why = f"\n{reasons}" if reasons else ""
        unmeasured = self.suite.unmeasured(spec, result)
        if unmeasured is not None:
            # Its numbers stay in the record, but no gate or baseline judges a partial measurement.
            record["outcome"] = "error"
            record["message"] = f"{unmeasured}; {verdict.message}"
            self._finish(record)
            pytest.fail(f"iqa-eval error: {unmeasured}{why}", pytrace=False)
        regression = self._against_baseline(record, gate.baseline_tolerance)
        self._finish(record)
        if regression is not None:
            # Before the known-gap verdict: a cell that was expected to fail may still get worse.
            pytest.fail(f"{regression}; gate: {verdict.message}", pytrace=False)
        if gate.known_gap is not None:
            if verdict.passed:
                pytest.fail(
                    f"known gap no longer holds ({gate.known_gap}): the cell passes now, so remove "
                    f"known_gap from {gate.source}: {verdict.message}",
                    pytrace=False,
                )
            pytest.xfail(f"known gap: {gate.known_gap}: {verdict.message}")
        if not verdict.passed:
            pytest.fail(verdict.message + why, pytrace=False)

    def _against_baseline(self, record: CellRecord, tolerance: float) -> str | None:
        """Compare with the baseline run, if any; returns the message of a regression."""
        baseline = self.node.config.stash.get(BASELINE, None)
        if baseline is None:
            return None
        comparison = compare_cells(
            record, baseline.find(record), tolerance=tolerance, seed=self.suite.config.seed
        )
        record["baseline"] = comparison.to_record()
        if comparison.status == "no baseline":
            record["message"] = f"no baseline: {comparison.note}; {record['message']}"
        if not comparison.regressed:
            return None
        record["message"] = f"{comparison.message()}; {record['message']}"
        return comparison.message()

    def _finish(self, record: CellRecord) -> None:
        self.node.user_properties.append((PROPERTY, record))

    def _fail_with_error(self, message: str) -> NoReturn:
        self._finish(cell_record(self.spec, self.stage, message, outcome="error"))
        pytest.fail(f"iqa-eval error: {message}", pytrace=False)


class MetamorphicCheck(CellCheck):
    """A metamorphic cell: cases drawn (with hypothesis) from the strategy its marker names, or
    by the test itself, and answered by the suite."""

    spec: CellSpec  # a metamorphic cell is always a stage-1 system's

    @property
    def groups(self) -> list[list[Item]]:
        """The stage-1 sample in comparability groups: cases are drawn inside one group."""
        return self.suite.metamorphic_items(self.spec)

    def check(self) -> None:
        """Evaluate the cases of the marker's ``cases=`` strategy and assert the relation's gate.
        They were drawn and asked with the run's cells, before any test ran."""
        strategy = case_strategy(self.node)
        if strategy is None:
            self._fail_with_error(
                f"check() draws from @pytest.mark.{RELATION_MARK}(protocol, cases=STRATEGY); this test's "
                "marker names none: add it, or draw cases from .groups and call check_cases(cases)"
            )
        self.check_cases(self.suite.metamorphic_cases(self.spec, strategy))

    def check_cases(self, cases: Sequence[Case]) -> None:
        def produce() -> tuple[CellSpec, CellResult, dict[str, Any] | None]:
            reason = self.suite.unsupported(self.spec)
            if reason is not None:
                raise Unsupported(reason)
            return self.spec, self.suite.metamorphic_result(self.spec, cases), None

        self._run(produce)


def measured_record(
    suite: Suite, spec: CellSpec, stage: int, result: CellResult, verdict: Verdict
) -> CellRecord:
    """A measured cell's record with what identifies its model and data and its noise ceiling."""
    dataset = suite.datasets[spec.dataset]
    stimuli = dataset.items(spec.setting, spec.attribute)
    record = cell_record(spec, stage, verdict.message, result=result, gate=dict(verdict.gate), items=stimuli)
    record["fingerprint"] = suite.clients[spec.model].fingerprint
    record["identity"] = suite.identity_record(spec.model)
    record["dataset_digest"] = dataset.manifest_digest()
    ceiling = suite.noise_ceiling(spec, result)
    record["noise_ceiling"] = None if ceiling is None else metric_record(ceiling)
    return record


@pytest.fixture
def iqa_cell(request: pytest.FixtureRequest) -> CellCheck:
    """The cell of a suite test: call ``iqa_cell.check()`` to evaluate it and assert its gate.

    The plugin parametrizes a test using it with one cell per model, dataset, setting,
    attribute and prompting system; mark the test ``@pytest.mark.iqa_stage(1)`` (every system on
    a uniform sample) or ``iqa_stage(2)`` (each model's best system on the difficult subsets).
    """
    stage, spec = request.param
    return CellCheck(request.config.stash[SUITE], stage, spec, request.node)


@pytest.fixture
def iqa_metamorphic(request: pytest.FixtureRequest) -> MetamorphicCheck:
    """A metamorphic cell: ``.groups`` holds the stage-1 sample in comparability groups to draw
    cases from, and ``.check_cases(cases)`` asks them and gates the relation's rate.

    Mark the test ``@pytest.mark.iqa_relation("ss"|"ds"|"ms")`` with the protocol whose answers
    the relation checks; it gets one cell per model, dataset, setting and attribute.
    """
    stage, spec = request.param
    return MetamorphicCheck(request.config.stash[SUITE], stage, spec, request.node)


def _cell_of(item: pytest.Item, fixture: str) -> CellSpec | Stage2Cell | None:
    """The cell an item's ``fixture`` is parametrized with, None for any other item. A test with
    no cell in the run (--iqa-study has no metamorphic cells) holds pytest's placeholder of an
    empty parametrization, not a (stage, cell) pair."""
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get(fixture) if callspec is not None else None
    return param[1] if isinstance(param, tuple) else None


def selected_ids(items: list[pytest.Item]) -> set[str]:
    """The ids of the selected cells: a stage-2 cell's id reads ``best/best`` as its baseline
    key does, since its system is chosen by the run."""
    cells = (_cell_of(item, name) for item in items for name in (PROPERTY, METAMORPHIC))
    return {cell.id for cell in cells if cell is not None}


def case_strategy(item: pytest.Item) -> CaseStrategy | None:
    marker = item.get_closest_marker(RELATION_MARK)
    strategy = None if marker is None else marker.kwargs.get("cases")
    return cast(CaseStrategy, strategy) if callable(strategy) else None


def selected_relations(suite: Suite, items: list[pytest.Item]) -> list[tuple[CellSpec, list[Case]]]:
    """The metamorphic cells of the selected tests whose marker names their cases' strategy, with
    the cases drawn: their queries go out in the run's one dispatch. A strategy that cannot draw
    is left to its test, which fails saying why."""
    out = []
    for item in items:
        spec, strategy = _cell_of(item, METAMORPHIC), case_strategy(item)
        if not isinstance(spec, CellSpec) or strategy is None:
            continue
        try:
            out.append((spec, suite.metamorphic_cases(spec, strategy)))
        except Exception:  # a test's own strategy may fail in any way: its test says how
            continue
    return out


def selected_specs(items: list[pytest.Item]) -> list[CellSpec | Stage2Cell]:
    """The cells of the selected suite tests (metamorphic cells: ``selected_relations``)."""
    return [cell for item in items if (cell := _cell_of(item, PROPERTY)) is not None]


def cell_of_nodeid(nodeid: str) -> str | None:
    """The baseline key of a cell test's node id (``path::test[<cell id>]``), None for others."""
    _, _, name = nodeid.partition("::")
    _, bracket, param = name.partition("[")
    return param[:-1] if bracket and param.endswith("]") and "/" in param else None
