"""The pytest plugin: options, markers, cell parametrization, gating, and reports.

Plan → execute → assert: once pytest has collected and selected the cells (after ``-m``/``-k``),
every selected cell is planned and the union of their queries runs through one engine, so each
test only reads its answers and asserts its gate. Under pytest-xdist each worker evaluates the
cells it is given, sharing the response cache, and the workers' cell records travel to the
controller in ``user_properties``, where the reports are written once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

import pytest

from iqa_eval.config import OPTIONS, ConfigError, RunConfig, build, coerce, read_pyproject
from iqa_eval.datasets.base import DatasetError
from iqa_eval.engine import RunAborted
from iqa_eval.gates import MARKERS, GateError, cell_markers, judge
from iqa_eval.images import ImageError
from iqa_eval.models.registry import ModelSpecError
from iqa_eval.report.records import cell_record
from iqa_eval.report.run_info import now
from iqa_eval.report.writer import build_report, write_reports
from iqa_eval.suite import Suite, Unsupported
from iqa_eval.types import CellSpec

SUITE = pytest.StashKey[Suite]()
STAGE_MARK = "iqa_stage"
PROPERTY = "iqa_cell"
USER_ERRORS = (ConfigError, GateError, ModelSpecError, DatasetError, ImageError)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("iqa-eval", "image quality evaluation of multimodal models")
    for name, (kind, _, text) in OPTIONS.items():
        flag, dest = "--iqa-" + name.replace("_", "-"), "iqa_" + name
        if kind is bool:
            group.addoption(flag, action="store_true", default=None, dest=dest, help=text)
        elif kind is list:
            group.addoption(flag, action="append", default=None, dest=dest, metavar="VALUE", help=text)
        else:
            group.addoption(flag, default=None, dest=dest, metavar="VALUE", help=text)
        ini_type: Literal["linelist", "string"] = "linelist" if kind is list else "string"
        parser.addini(dest, help=text, type=ini_type, default=None)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _run_config(config: pytest.Config) -> RunConfig:
    root = Path(config.rootpath)
    project = read_pyproject(root)
    values: dict[str, Any] = {}
    for name, (_, default, _) in OPTIONS.items():
        dest = "iqa_" + name
        cli = config.getoption(dest)
        if cli is not None:
            value, where = cli, f"--iqa-{name.replace('_', '-')}"
            if name in ("gates", "report_dir", "cache"):
                value = str(Path(cli).absolute())  # as typed, relative to where pytest was started
        elif name in project:
            value, where = project[name], f"[tool.iqa_eval] {name}"
        elif config.getini(dest) not in (None, []):
            value, where = config.getini(dest), f"ini {dest}"
        else:
            value, where = default, "default"
        values[name] = coerce(name, value, where)
    return build(root, values)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from iqa_eval import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    for marker in sorted(MARKERS):
        config.addinivalue_line("markers", f"{marker}: iqa-eval cells of {marker}")
    config.addinivalue_line("markers", f"{STAGE_MARK}(n): iqa-eval stage of the cells of this test (1 or 2)")
    try:
        run_config = _run_config(config)
    except ConfigError as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    if os.environ.get("CI") or not config.get_verbosity() >= 0:
        run_config = RunConfig(**{**run_config.__dict__, "progress": False})
    suite = Suite(run_config, lambda spec, store: config.hook.pytest_iqa_make_model(spec=spec, store=store))
    config.stash[SUITE] = suite
    config.pluginmanager.register(RunPlugin(config, suite), "iqa-eval-run")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if PROPERTY not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(STAGE_MARK)
    if marker is None or marker.args[0] not in (1, 2):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: a test using iqa_cell needs @pytest.mark.iqa_stage(1|2)"
        )
    stage = int(marker.args[0])
    suite = metafunc.config.stash[SUITE]
    try:
        specs = suite.stage1_specs() if stage == 1 else suite.stage2_specs()
    except USER_ERRORS as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    params = []
    for spec in specs:
        names = (
            cell_markers(spec)
            if stage == 1
            else {spec.setting, spec.attribute, f"{spec.setting}_{spec.attribute}"}
        )
        marks = [getattr(pytest.mark, name) for name in sorted(names)]
        params.append(pytest.param((stage, spec), id=spec.id, marks=marks))
    metafunc.parametrize(PROPERTY, params, indirect=True)


class CellCheck:
    """What a suite test receives: its cell, and the one call that evaluates and gates it."""

    def __init__(self, suite: Suite, stage: int, spec: CellSpec, node: pytest.Item) -> None:
        self.suite, self.stage, self.spec, self.node = suite, stage, spec, node

    def check(self) -> None:
        """Evaluate the cell and assert its gate; the record goes to the reports either way."""
        spec, extra = self.spec, {}
        try:
            if self.stage == 2:
                spec, best = self.suite.stage2_spec(spec)
                extra = {
                    "selected_by": {
                        "rule": "highest mean stage-1 SRCC over attributes",
                        "srcc": best.srcc,
                        "ranking": [list(r) for r in best.ranking],
                    }
                }
            reason = self.suite.unsupported(spec)
            if reason is not None:
                raise Unsupported(reason)
            result = self.suite.result(spec)
        except Unsupported as err:
            self._finish(_bare_record(spec, self.stage, "skipped", str(err)))
            pytest.skip(str(err))
        except RunAborted as err:
            self.node.session.shouldstop = f"iqa-eval stopped: {err}"
            self._fail_with_error(spec, str(err))
        except USER_ERRORS as err:
            self._fail_with_error(spec, str(err))
        gate = self.suite.gates.gate_for(spec)
        verdict = judge(result, gate)
        record = cell_record(result, self.stage, dict(verdict.gate), verdict.message)
        record.update(extra)
        record["fingerprint"] = self.suite.clients[spec.model].fingerprint
        record["dataset_digest"] = self.suite.datasets[spec.dataset].manifest_digest()
        self._finish(record)
        if gate.known_gap is not None:
            if verdict.passed:
                pytest.fail(
                    f"known gap no longer holds ({gate.known_gap}): the cell passes now, so remove "
                    f"known_gap from {gate.source}: {verdict.message}",
                    pytrace=False,
                )
            pytest.xfail(f"known gap: {gate.known_gap}: {verdict.message}")
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)

    def _finish(self, record: dict[str, Any]) -> None:
        self.node.user_properties.append((PROPERTY, record))

    def _fail_with_error(self, spec: CellSpec, message: str) -> NoReturn:
        self._finish(_bare_record(spec, self.stage, "error", message))
        pytest.fail(f"iqa-eval error: {message}", pytrace=False)


def _bare_record(spec: CellSpec, stage: int, outcome: str, message: str) -> dict[str, Any]:
    """The record of a cell that produced no result: it still appears in the reports."""
    return {
        "id": spec.id, "stage": stage, "model": spec.model, "dataset": spec.dataset,
        "setting": spec.setting, "attribute": spec.attribute, "protocol": spec.protocol,
        "strategy": spec.strategy, "subset": spec.subset, "n_items": 0, "n_queries": 0,
        "n_failed": {}, "coverage": 0.0, "primary_metric": None, "metrics": {}, "gate": None,
        "outcome": outcome, "message": message, "notes": [], "predictions": [], "examples": [],
    }  # fmt: skip


@pytest.fixture
def iqa_cell(request: pytest.FixtureRequest) -> CellCheck:
    stage, spec = request.param
    return CellCheck(request.config.stash[SUITE], stage, spec, request.node)


def _selected_specs(items: list[pytest.Item]) -> list[tuple[int, CellSpec]]:
    out = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and PROPERTY in callspec.params:
            out.append(callspec.params[PROPERTY])
    return out


class RunPlugin:
    """Per-run state and the hooks that use it; registered once per pytest configuration."""

    def __init__(self, config: pytest.Config, suite: Suite) -> None:
        self.config = config
        self.suite = suite
        self.records: dict[str, dict[str, Any]] = {}
        self.started = now()
        self.report_paths: tuple[Path, Path] | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Execute every selected cell's queries up front, deduplicated, in one engine run."""
        selected = _selected_specs(session.items)
        if not selected or _is_worker(self.config) or self.config.option.collectonly:
            return
        suite = self.suite
        stage1 = [spec for stage, spec in selected if stage == 1]
        groups = {(spec.model, spec.dataset, spec.setting) for stage, spec in selected if stage == 2}
        stage1 += [s for s in suite.stage1_specs() if (s.model, s.dataset, s.setting) in groups]
        start = time.perf_counter()
        try:
            suite.execute(stage1)
            suite.execute(self._stage2(selected))
        except RunAborted as err:
            pytest.exit(f"iqa-eval stopped: {err}", returncode=pytest.ExitCode.TESTS_FAILED)
        except USER_ERRORS as err:
            raise pytest.UsageError(f"iqa-eval: {err}") from None
        stats = suite.engine.stats
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"iqa-eval: {len(selected)} cells, {stats.unique} unique queries "
                f"({stats.cached} cached, {stats.dispatched} asked, {stats.failed} failed) "
                f"in {time.perf_counter() - start:.1f}s"
            )

    def _stage2(self, selected: list[tuple[int, CellSpec]]) -> list[CellSpec]:
        specs = []
        for stage, spec in selected:
            if stage == 2:
                try:
                    specs.append(self.suite.stage2_spec(spec)[0])
                except Unsupported:
                    continue  # the test itself skips with the reason
        return specs

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and not report.passed):
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                record: dict[str, Any] = dict(cast(dict[str, Any], value))
                if record["outcome"] not in ("error", "skipped"):
                    # A known gap is an expected failure: pytest reports it as skipped
                    # (xfailed), the JSON keeps the truth, "failed", with its known_gap.
                    record["outcome"] = "passed" if report.passed else "failed"
                self.records[record["id"]] = record

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config) or not self.records:
            return
        suite = self.suite
        run = {
            "started": self.started,
            "finished": now(),
            "seed": suite.config.seed,
            "partial": bool(session.shouldstop) or exitstatus == pytest.ExitCode.INTERRUPTED,
            "gates": suite.gates.source,
        }
        report = build_report(list(self.records.values()), run, suite.config.root)
        self.report_paths = write_reports(report, suite.config.resolve(suite.config.report_dir))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_paths is None:
            return
        terminalreporter.write_sep("-", "iqa-eval cells")
        for record in sorted(self.records.values(), key=lambda r: (r["stage"], r["id"])):
            terminalreporter.write_line(summary_line(record))
        terminalreporter.write_sep("-", "iqa-eval reports")
        for path in self.report_paths:
            terminalreporter.write_line(str(path))


def summary_line(record: dict[str, Any]) -> str:
    metric = record["metrics"].get(record["primary_metric"] or "", {})
    value, ci = metric.get("value"), metric.get("ci", [None, None])

    def f(x: float | None) -> str:
        return "  n/a" if x is None else f"{x:+.3f}"

    return (
        f"{record['outcome']:<7} {record['id']:<60} {record['primary_metric'] or '-':<5} {f(value)} "
        f"[{f(ci[0])}, {f(ci[1])}] cov {100 * record['coverage']:5.1f}%"
    )
