"""The pytest plugin: options, markers, cell parametrization, gating, and reports.

Plan → execute → assert: once pytest has collected and selected the cells (after ``-m``/``-k``),
every selected cell is planned and the union of their queries runs through one engine, so each
test only reads its answers and asserts its gate. Under pytest-xdist the controller establishes
each model's identity once and hands it to the workers; each worker evaluates the cells it is
given, sharing the response cache, and the workers' cell records travel to the controller in
``user_properties``, where the reports are written once.

Exit statuses: 0 when every gate held, 1 when a gate was missed or a cell regressed,
:data:`EXIT_UNMEASURED` when the only failures are cells that could not be measured (an endpoint
down, a bad key, a cap reached), so CI can retry an outage instead of blocking a deployment for it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

import pytest

from iqa_eval.datasets.base import DatasetError
from iqa_eval.evaluation.baseline import Baseline, BaselineError, compare_cells
from iqa_eval.evaluation.config import OPTIONS, ConfigError, RunConfig, build, coerce, read_pyproject
from iqa_eval.evaluation.gates import MARKERS, GateError, cell_markers, judge
from iqa_eval.evaluation.metamorphic import Case
from iqa_eval.evaluation.suite import Suite, Unsupported
from iqa_eval.execution.engine import Unidentified
from iqa_eval.execution.usage import combine_usage
from iqa_eval.images import ImageError
from iqa_eval.models.base import ModelIdentity
from iqa_eval.models.registry import ModelSpecError
from iqa_eval.report.history import append_history
from iqa_eval.report.plots import ScatterPlotter
from iqa_eval.report.records import cell_record, metric_record
from iqa_eval.report.run_info import now
from iqa_eval.report.summary import summary_lines
from iqa_eval.report.writer import build_report, remove_partial, write_reports
from iqa_eval.sampling import SelectionError
from iqa_eval.types import CellResult, CellSpec, Item

SUITE = pytest.StashKey[Suite]()
BASELINE = pytest.StashKey[Baseline | None]()
STAGE_MARK = "iqa_stage"
PROPERTY = "iqa_cell"
METAMORPHIC = "iqa_metamorphic"
RELATION_MARK = "iqa_relation"
WORKER_USAGE = "iqa_eval_usage"
WORKER_NOTICES = "iqa_eval_notices"
IDENTITIES = "iqa_eval_identities"
EXIT_UNMEASURED = 75
"""Cells could not be measured (sysexits' EX_TEMPFAIL: try again later), and nothing failed a gate."""
USER_ERRORS = (ConfigError, GateError, ModelSpecError, DatasetError, ImageError, SelectionError)


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
            # Paths typed on the command line are relative to where pytest was started.
            if name in ("gates", "report_dir", "cache", "baseline", "prices"):
                value = str(Path(cli).absolute())
            elif name == "data":
                value = [_absolute_data(entry) for entry in cli]
        elif name in project:
            value, where = project[name], f"[tool.iqa_eval] {name}"
        elif config.getini(dest) not in (None, []):
            value, where = config.getini(dest), f"ini {dest}"
        else:
            value, where = default, "default"
        values[name] = coerce(name, value, where)
    return build(root, values)


def _absolute_data(entry: str) -> str:
    name, sep, path = entry.partition("=")
    return f"{name}={Path(path).absolute()}" if sep and path else entry


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from iqa_eval import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    for marker in sorted(MARKERS):
        config.addinivalue_line("markers", f"{marker}: iqa-eval cells of {marker}")
    config.addinivalue_line("markers", f"{STAGE_MARK}(n): iqa-eval stage of the cells of this test (1 or 2)")
    config.addinivalue_line(
        "markers", f"{RELATION_MARK}(protocol): the metamorphic relation this test checks"
    )
    try:
        run_config = _run_config(config)
    except ConfigError as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    if os.environ.get("CI") or not config.get_verbosity() >= 0:
        run_config = replace(run_config, progress=False)
    if _is_worker(config):
        # Each xdist worker has an engine of its own: a share of each cap keeps the run within it
        # (a worker may stop while another still has some left, never the reverse).
        workers = int(config.workerinput["workercount"])  # type: ignore[attr-defined]
        if run_config.budget_usd is not None:
            run_config = replace(run_config, budget_usd=run_config.budget_usd / workers)
        if run_config.max_requests is not None:
            run_config = replace(run_config, max_requests=run_config.max_requests // workers)
    suite = Suite(run_config, lambda spec, store: config.hook.pytest_iqa_make_model(spec=spec, store=store))
    config.stash[SUITE] = suite
    config.pluginmanager.register(RunPlugin(config, suite), "iqa-eval-run")
    if _is_worker(config):
        for spec, identity in config.workerinput.get(IDENTITIES, {}).items():  # type: ignore[attr-defined]
            suite.engine.adopt(spec, _identity_from_wire(spec, identity))


def _identity_to_wire(identity: ModelIdentity | Unidentified) -> dict[str, Any]:
    if isinstance(identity, Unidentified):
        return {"unidentified": [identity.reason, identity.detail]}
    return identity.to_record()


def _identity_from_wire(spec: str, wire: dict[str, Any]) -> ModelIdentity | Unidentified:
    if "unidentified" in wire:
        reason, detail = wire["unidentified"]
        return Unidentified(str(reason), str(detail))
    return ModelIdentity.from_record(spec, wire)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n`` (``load``) or ``--dist loadgroup``, keep each group's cells on one worker; any
    other ``--dist`` the user chose is theirs."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from iqa_eval.scheduling import CellScheduling

    return CellScheduling(config, log)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if PROPERTY in metafunc.fixturenames:
        _parametrize_cells(metafunc)
    elif METAMORPHIC in metafunc.fixturenames:
        _parametrize_metamorphic(metafunc)


def _parametrize_cells(metafunc: pytest.Metafunc) -> None:
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
        # Stage-2 cells learn their system only at run time, so they carry no system markers.
        names = cell_markers(spec) if stage == 1 else cell_markers(spec) - {spec.protocol, spec.strategy}
        params.append(pytest.param((stage, spec), id=spec.id, marks=_marks(names)))
    metafunc.parametrize(PROPERTY, params, indirect=True)


def _parametrize_metamorphic(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(RELATION_MARK)
    if marker is None or marker.args[0] not in ("ss", "ds", "ms"):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: a test using iqa_metamorphic needs "
            "@pytest.mark.iqa_relation('ss'|'ds'|'ms')"
        )
    suite = metafunc.config.stash[SUITE]
    try:
        specs = suite.metamorphic_specs(marker.args[0])
    except USER_ERRORS as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    params = [pytest.param((1, spec), id=spec.id, marks=_marks(cell_markers(spec))) for spec in specs]
    metafunc.parametrize(METAMORPHIC, params, indirect=True)


def _marks(names: Iterable[str]) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, name) for name in sorted(names)]


class CellCheck:
    """What a suite test receives: its cell, and the one call that evaluates and gates it."""

    def __init__(self, suite: Suite, stage: int, spec: CellSpec, node: pytest.Item) -> None:
        self.suite, self.stage, self.spec, self.node = suite, stage, spec, node

    def check(self) -> None:
        """Evaluate the cell and assert its gate; the record goes to the reports either way."""
        self._run(self._result)

    def _result(self) -> tuple[CellSpec, CellResult, dict[str, Any]]:
        spec, extra = self.spec, {}
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
        return spec, self.suite.result(spec), extra

    def _run(self, produce: Callable[[], tuple[CellSpec, CellResult, dict[str, Any]]]) -> None:
        try:
            spec, result, extra = produce()
        except Unsupported as err:
            self._finish(_bare_record(self.spec, self.stage, "skipped", str(err)))
            pytest.skip(str(err))
        except USER_ERRORS as err:
            self._fail_with_error(str(err))
        gate = self.suite.gates.gate_for(spec)
        verdict = judge(result, gate)
        dataset = self.suite.datasets[spec.dataset]
        stimuli = dataset.items(spec.setting, spec.attribute)
        record = cell_record(result, self.stage, dict(verdict.gate), verdict.message, stimuli)
        record.update(extra)
        record["fingerprint"] = self.suite.clients[spec.model].fingerprint
        record["identity"] = self.suite.identity_record(spec.model)
        record["dataset_digest"] = dataset.manifest_digest()
        ceiling = self.suite.noise_ceiling(spec, result)
        record["noise_ceiling"] = None if ceiling is None else metric_record(ceiling)
        unmeasured = self.suite.unmeasured(spec, result)
        if unmeasured is not None:
            # Its numbers stay in the record, but no gate or baseline judges a partial measurement.
            record["outcome"] = "error"
            record["message"] = f"{unmeasured}; {verdict.message}"
            self._finish(record)
            pytest.fail(f"iqa-eval error: {unmeasured}", pytrace=False)
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
            pytest.fail(verdict.message, pytrace=False)

    def _against_baseline(self, record: dict[str, Any], tolerance: float) -> str | None:
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

    def _finish(self, record: dict[str, Any]) -> None:
        self.node.user_properties.append((PROPERTY, record))

    def _fail_with_error(self, message: str) -> NoReturn:
        self._finish(_bare_record(self.spec, self.stage, "error", message))
        pytest.fail(f"iqa-eval error: {message}", pytrace=False)


class MetamorphicCheck(CellCheck):
    """A metamorphic cell: the test draws the cases (with hypothesis), the suite answers them."""

    @property
    def groups(self) -> list[list[Item]]:
        """The stage-1 sample in comparability groups: cases are drawn inside one group."""
        return self.suite.metamorphic_items(self.spec)

    def check_cases(self, cases: Sequence[Case]) -> None:
        def produce() -> tuple[CellSpec, CellResult, dict[str, Any]]:
            reason = self.suite.unsupported(self.spec)
            if reason is not None:
                raise Unsupported(reason)
            return self.spec, self.suite.metamorphic_result(self.spec, cases), {}

        self._run(produce)


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


@pytest.fixture
def iqa_metamorphic(request: pytest.FixtureRequest) -> MetamorphicCheck:
    stage, spec = request.param
    return MetamorphicCheck(request.config.stash[SUITE], stage, spec, request.node)


def _selected_ids(items: list[pytest.Item]) -> set[str]:
    """The ids of the selected cells: a stage-2 cell's id reads ``best/best`` as its baseline
    key does, since its system is chosen by the run."""
    keys = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        for name in (PROPERTY, METAMORPHIC):
            if callspec is not None and name in callspec.params:
                keys.add(callspec.params[name][1].id)
    return keys


def _selected_specs(items: list[pytest.Item]) -> list[tuple[int, CellSpec]]:
    out = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and PROPERTY in callspec.params:
            out.append(callspec.params[PROPERTY])
    return out


def _cell_of_nodeid(nodeid: str) -> str | None:
    """The baseline key of a cell test's node id (``path::test[<cell id>]``), None for others."""
    _, _, name = nodeid.partition("::")
    _, bracket, param = name.partition("[")
    return param[:-1] if bracket and param.endswith("]") and "/" in param else None


def _cell_id(item: pytest.Item) -> str:
    """The cell an item tests (its node id when it tests none): what a shard is chosen by."""
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec is not None else ():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], CellSpec):
            return value[1].id
    return item.nodeid


def shard_of(cell_id: str, count: int) -> int:
    """The 1-based shard of a cell: a hash, not the collection order, so every machine of a CI
    matrix agrees whatever it collected, and stage-1 and stage-2 cells spread alike."""
    return int.from_bytes(hashlib.sha256(cell_id.encode()).digest()[:8], "big") % count + 1


def _pytest_html_extras() -> Any:
    """pytest-html's extras module when it is installed (it is optional), else None."""
    try:
        return importlib.import_module("pytest_html.extras")
    except ImportError:
        return None


class RunPlugin:
    """Per-run state and the hooks that use it; registered once per pytest configuration."""

    def __init__(self, config: pytest.Config, suite: Suite) -> None:
        self.config = config
        self.suite = suite
        self.records: dict[str, dict[str, Any]] = {}
        self.started = now()
        self.report_paths: tuple[Path, Path] | None = None
        self.history_path: Path | None = None
        self.write_seconds = 0.0
        self.html_extras = _pytest_html_extras()
        self._scatter: ScatterPlotter | None = None
        self.interrupted = False
        self.worker_usage: list[dict[str, Any] | None] = []
        self.worker_notices: list[str] = []
        self.unmeasured_cells = 0
        self.other_failures = 0
        self.exit_unmeasured = False
        self._said: set[str] = set()
        baseline = suite.config.baseline
        try:
            config.stash[BASELINE] = Baseline.load(suite.config.resolve(baseline)) if baseline else None
            # Read now, not when the first cell is gated: a broken profile is a usage error, not a
            # traceback inside every test.
            _ = suite.gates
            if suite.config.budget_usd is not None and not _is_worker(config):
                self._check_prices()
        except (BaselineError, GateError, *USER_ERRORS) as err:
            raise pytest.UsageError(f"iqa-eval: {err}") from None

    def _check_prices(self) -> None:
        unpriced = self.suite.unpriced()
        if unpriced:
            raise pytest.UsageError(
                "iqa-eval: --iqa-budget-usd cannot hold for a model without a known price: "
                + "; ".join(unpriced)
                + '. Give its price in a TOML file passed as --iqa-prices FILE ([models."NAME"] with '
                "input and output in USD per 1M tokens), or cap the number of requests instead with "
                "--iqa-max-requests N"
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Establish every model's identity once, in the controller, for all the workers: each
        worker asking for itself would send one request more per worker."""
        identities = {spec: _identity_to_wire(self.suite.identity(spec)) for spec in self.suite.config.models}
        node.workerinput[IDENTITIES] = identities

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """Under xdist only the workers collect: check the baseline against what they selected."""
        try:
            self._check_baseline_overlap({key for nodeid in ids if (key := _cell_of_nodeid(nodeid))})
        except pytest.UsageError as err:
            pytest.exit(str(err), returncode=pytest.ExitCode.USAGE_ERROR)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Keep this shard's share of the items (``--iqa-shard K/N``), deselecting the rest."""
        shard = self.suite.config.shard
        if shard is None:
            return
        index, count = shard
        keep = [item for item in items if shard_of(_cell_id(item), count) == index]
        dropped = [item for item in items if shard_of(_cell_id(item), count) != index]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Execute every selected cell's queries up front, deduplicated, in one engine run."""
        selected = _selected_specs(session.items)
        if not selected or _is_worker(self.config) or self.config.option.collectonly:
            return
        suite = self.suite
        stage1 = [spec for stage, spec in selected if stage == 1]
        groups = {spec.group for stage, spec in selected if stage == 2}
        stage1 += [s for s in suite.stage1_specs() if s.group in groups]
        self._check_baseline_overlap(_selected_ids(session.items))
        start = time.perf_counter()
        try:
            suite.execute(stage1)
            suite.execute(self._stage2(selected))
        except KeyboardInterrupt:
            # pytest stops the run (exit code 2); the answers received are in the cache, and the
            # report still says what was run and that it was cut short.
            self.interrupted = True
            raise
        except USER_ERRORS as err:
            raise pytest.UsageError(f"iqa-eval: {err}") from None
        stats = suite.engine.stats
        self._say_notices()
        self._write_line(
            f"iqa-eval: {len(selected)} cells, {stats.unique} unique queries "
            f"({stats.cached} cached, {stats.dispatched} asked, {stats.failed} failed) "
            f"in {time.perf_counter() - start:.1f}s"
        )

    def _write_line(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    def _say_notices(self) -> None:
        """What the engine must tell once (identity changes, endpoints down, a cap that stopped
        sending), each printed the first time it is known."""
        for notice in self.suite.engine.notices:
            if notice not in self._said:
                self._said.add(notice)
                self._write_line(f"iqa-eval: {notice}")

    def _check_baseline_overlap(self, selected: set[str]) -> None:
        """A baseline that shares none of the selected cells would gate nothing: a usage error."""
        baseline = self.config.stash.get(BASELINE, None)
        if baseline is None or not selected or selected & set(baseline.cells):
            return
        example = sorted(baseline.cells)[:1]
        raise pytest.UsageError(
            f"iqa-eval: the baseline {baseline.source} shares none of the {len(selected)} selected cells "
            f"(it holds {len(baseline.cells)}, e.g. {example[0] if example else 'none'}); "
            "bless a report of the same models and datasets, or drop --iqa-baseline"
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
        if report.failed:
            unmeasured = report.when == "call" and any(
                name == PROPERTY and cast(dict[str, Any], value).get("outcome") == "error"
                for name, value in report.user_properties
            )
            if unmeasured:
                self.unmeasured_cells += 1
            else:
                self.other_failures += 1
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

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """An xdist worker is done: keep what it sent, spent and had to say for the run's report."""
        output = getattr(node, "workeroutput", {})
        self.worker_usage.append(output.get(WORKER_USAGE))
        for notice in output.get(WORKER_NOTICES, []):
            if notice not in self.worker_notices:
                self.worker_notices.append(notice)

    def _notices(self) -> list[str]:
        own = self.suite.engine.notices if "engine" in self.suite.__dict__ else []
        return list(dict.fromkeys([*own, *self.worker_notices]))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config):
            self.suite.close()
            workeroutput = self.config.workeroutput  # type: ignore[attr-defined]
            workeroutput[WORKER_USAGE] = self.suite.usage()
            workeroutput[WORKER_NOTICES] = self._notices()
            return
        if exitstatus == pytest.ExitCode.TESTS_FAILED and self.unmeasured_cells and not self.other_failures:
            session.exitstatus = EXIT_UNMEASURED
            self.exit_unmeasured = True
        if not (self.records or self.interrupted):
            return
        suite = self.suite
        # Requests cut off by an interrupt enter the usage only once their tasks are cancelled.
        suite.close()
        shard = suite.config.shard
        baseline = self.config.stash.get(BASELINE, None)
        partial = bool(session.shouldstop) or exitstatus == pytest.ExitCode.INTERRUPTED or self.interrupted
        engine = suite.engine if "engine" in suite.__dict__ else None
        run = {
            "started": self.started,
            "finished": now(),
            "seed": suite.config.seed,
            "partial": partial,
            "gates": suite.gates.source,
            "model_specs": list(suite.config.models),
            "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "baseline": baseline.source if baseline else None,
            "usage": combine_usage([suite.usage(), *self.worker_usage]),
            "notices": self._notices(),
            "identity_changes": [c.to_record() for c in engine.identity_changes] if engine else [],
            "exit_status": int(session.exitstatus),
        }
        start = time.perf_counter()
        report = build_report(list(self.records.values()), run, suite.config.root)
        directory = suite.config.resolve(suite.config.report_dir)
        # An interrupted run never replaces the last complete report: it is written beside it.
        self.report_paths = write_reports(report, directory, partial=partial)
        if not partial:
            remove_partial(directory)
        # A shard is part of a run: `iqa-eval merge` appends the whole run's line instead. A run
        # cut short before any cell finished has nothing to chart.
        if shard is None and self.records:
            self.history_path = append_history(directory, report)
        self.write_seconds = time.perf_counter() - start

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.suite.close()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_paths is None:
            return
        notices = [n for n in self._notices() if n not in self._said]  # each said once
        if notices:
            terminalreporter.write_sep("-", "iqa-eval notices")
            for notice in notices:
                terminalreporter.write_line(f"iqa-eval: {notice}")
        terminalreporter.write_sep("-", "iqa-eval cells")
        for line in summary_lines(list(self.records.values())):
            terminalreporter.write_line(line)
        terminalreporter.write_sep("-", f"iqa-eval reports (written in {self.write_seconds:.1f}s)")
        for path in (*self.report_paths, *([self.history_path] if self.history_path else [])):
            terminalreporter.write_line(str(path))
        if self.exit_unmeasured:
            terminalreporter.write_line(
                f"iqa-eval: {self.unmeasured_cells} cell(s) could not be measured and no gate failed: "
                f"exit status {EXIT_UNMEASURED} (infrastructure, not capability)"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """With pytest-html installed, its report shows each cell's scatter plot too."""
        report = yield
        if self.html_extras is None or report.when != "call":
            return report
        for name, value in item.user_properties:
            record = cast(dict[str, Any], value)
            if name == PROPERTY and record.get("predictions"):
                self._scatter = self._scatter or ScatterPlotter()
                uri = self._scatter.render(record["predictions"], str(record["id"]))
                if uri is not None:
                    extra = self.html_extras.png(uri.partition(",")[2], name="prediction vs ground truth")
                    report.extras = [*getattr(report, "extras", []), extra]
        return report
