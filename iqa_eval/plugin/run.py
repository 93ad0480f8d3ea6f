"""One run under pytest: the suite built from the options, every selected cell's queries executed
up front, the cell records gathered (from xdist workers too), the reports and history written,
and the exit status."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from iqa_eval.evaluation.baseline import Baseline, BaselineError
from iqa_eval.evaluation.config import ConfigError
from iqa_eval.evaluation.gates import GateError
from iqa_eval.evaluation.suite import Suite
from iqa_eval.execution.usage import combine_usage
from iqa_eval.models.base import INFRASTRUCTURE_FAILURES
from iqa_eval.plugin import EXIT_UNMEASURED
from iqa_eval.plugin.cells import (
    BASELINE,
    PROPERTY,
    SUITE,
    cell_of_nodeid,
    selected_ids,
    selected_relations,
    selected_specs,
)
from iqa_eval.plugin.custom import JUDGEMENT, declared_specs
from iqa_eval.plugin.options import USER_ERRORS, run_config
from iqa_eval.plugin.terminal import Terminal
from iqa_eval.plugin.workers import (
    IDENTITIES,
    WORKER_NOTICES,
    WORKER_USAGE,
    cell_id,
    execute_up_front,
    identity_from_wire,
    identity_to_wire,
    is_worker,
    shard_of,
)
from iqa_eval.report.history import append_history
from iqa_eval.report.html import state
from iqa_eval.report.junit import judgement_text, junit_properties
from iqa_eval.report.plots import ScatterPlotter
from iqa_eval.report.run_info import now
from iqa_eval.report.step_summary import append_step_summary
from iqa_eval.report.writer import build_report, remove_partial, write_reports
from iqa_eval.types import CellSpec, Stage2Cell


def pytest_configure(config: pytest.Config) -> None:
    try:
        settings = run_config(config)
    except ConfigError as err:
        raise pytest.UsageError(f"iqa-eval: {err}") from None
    # A terminal gets a live bar, anything else (a CI log) a line every few seconds; -q hides both.
    if config.get_verbosity() < 0:
        settings = replace(settings, progress=False)
    if is_worker(config):
        # Each xdist worker has an engine of its own: a share of each cap keeps the run within it
        # (a worker may stop while another still has some left, never the reverse).
        workers = int(config.workerinput["workercount"])  # type: ignore[attr-defined]
        if settings.budget_usd is not None:
            settings = replace(settings, budget_usd=settings.budget_usd / workers)
        if settings.max_requests is not None:
            settings = replace(settings, max_requests=settings.max_requests // workers)
    suite = Suite(settings, lambda spec, store: config.hook.pytest_iqa_make_model(spec=spec, store=store))
    config.stash[SUITE] = suite
    config.pluginmanager.register(RunPlugin(config, suite), "iqa-eval-run")
    if is_worker(config):
        for spec, identity in config.workerinput.get(IDENTITIES, {}).items():  # type: ignore[attr-defined]
            suite.engine.adopt(spec, identity_from_wire(spec, identity))


def _unmeasured(properties: Sequence[tuple[str, object]]) -> bool:
    """Whether a failed test failed for want of answers: a cell it evaluated could not be
    measured, or a judgement it read went missing for a reason of infrastructure."""
    for name, value in properties:
        record = cast(dict[str, Any], value)
        if name == PROPERTY and record.get("outcome") == "error":
            return True
        if name == JUDGEMENT and record.get("failure") in INFRASTRUCTURE_FAILURES:
            return True
    return False


def custom_test(
    report: pytest.TestReport, judgements: Sequence[dict[str, Any]], cells: Sequence[str]
) -> dict[str, Any]:
    """A user's own test as the report lists it: its outcome, why, its judgements, its cells."""
    message = ""
    if report.failed or report.skipped:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(crash.message) if crash is not None else str(report.longrepr)
    return {
        "test": report.nodeid,
        "outcome": "skipped" if report.skipped else "passed" if report.passed else "failed",
        "message": message[:2000],
        "judgements": [{k: v for k, v in j.items() if k != "test"} for j in judgements],
        "cells": list(cells),
    }


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
        self.tests: dict[str, dict[str, Any]] = {}
        """The user's own tests that asked the model something, by node id."""
        self.started = now()
        self.report_paths: tuple[Path, Path] | None = None
        self.history_path: Path | None = None
        self.write_seconds = 0.0
        self.step_summary: Path | None = None
        self.html_extras = _pytest_html_extras()
        self._scatter: ScatterPlotter | None = None
        self.interrupted = False
        self.worker_usage: list[dict[str, Any] | None] = []
        self.worker_notices: list[str] = []
        self.unmeasured_cells = 0
        self.other_failures = 0
        self.exit_unmeasured = False
        self.terminal = Terminal(config)
        baseline = suite.config.baseline
        try:
            config.stash[BASELINE] = Baseline.load(suite.config.resolve(baseline)) if baseline else None
            # Read now, not when the first cell is gated: a broken profile is a usage error, not a
            # traceback inside every test.
            _ = suite.gates
            # Built now too: collection asks each client whether it gives probabilities.
            _ = suite.clients
            if suite.config.budget_usd is not None and not is_worker(config):
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
        identities = {spec: identity_to_wire(self.suite.identity(spec)) for spec in self.suite.config.models}
        node.workerinput[IDENTITIES] = identities

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """Under xdist only the workers collect: check the baseline against what they selected."""
        try:
            self._check_baseline_overlap({key for nodeid in ids if (key := cell_of_nodeid(nodeid))})
        except pytest.UsageError as err:
            pytest.exit(str(err), returncode=pytest.ExitCode.USAGE_ERROR)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Keep this shard's share of the items (``--iqa-shard K/N``), deselecting the rest."""
        shard = self.suite.config.shard
        if shard is None:
            return
        index, count = shard
        keep = [item for item in items if shard_of(cell_id(item), count) == index]
        dropped = [item for item in items if shard_of(cell_id(item), count) != index]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Execute every selected cell's queries up front, deduplicated, in one engine run."""
        if is_worker(self.config) or self.config.option.collectonly:
            return
        selected = [*selected_specs(session.items), *declared_specs(self.suite, session.items)]
        relations = selected_relations(self.suite, session.items)
        if not selected and not relations:
            return
        suite = self.suite
        stage2 = [cell for cell in selected if isinstance(cell, Stage2Cell)]
        groups = {cell.group for cell in stage2}
        chosen = {cell.id for cell in selected if isinstance(cell, CellSpec)}
        pulled = [s for s in suite.stage1_specs() if s.group in groups and s.id not in chosen]
        if pulled:
            # Otherwise `-m nr_color` asking for one cell and sending queries of 36 is a surprise.
            self.terminal.write_line(
                f"iqa-eval: stage 2 picks each system from stage 1 of every attribute of its setting: "
                f"{len(pulled)} stage-1 cells not selected run too ({', '.join(sorted(groups))})"
            )
        self._check_baseline_overlap(selected_ids(session.items))
        start = time.perf_counter()
        try:
            execute_up_front(suite, selected, relations)
        except KeyboardInterrupt:
            # pytest stops the run (exit code 2); the answers received are in the cache, and the
            # report still says what was run and that it was cut short.
            self.interrupted = True
            raise
        except USER_ERRORS as err:
            raise pytest.UsageError(f"iqa-eval: {err}") from None
        stats = suite.engine.stats
        self.terminal.say_notices(self.suite.engine.notices)
        self.terminal.write_line(
            f"iqa-eval: {len(selected) + len(relations)} cells, {stats.unique} unique queries "
            f"({stats.cached} cached, {stats.dispatched} asked, {stats.failed} failed) "
            f"in {time.perf_counter() - start:.1f}s"
        )

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

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self._scalar_properties(report)
            return
        if report.failed:
            if report.when == "call" and _unmeasured(report.user_properties):
                self.unmeasured_cells += 1
            else:
                self.other_failures += 1
        if report.when != "call" and not (report.when == "setup" and not report.passed):
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                record: dict[str, Any] = dict(cast(dict[str, Any], value))
                if "test" not in record and record["outcome"] not in ("error", "skipped"):
                    # A known gap is an expected failure: pytest reports it as skipped
                    # (xfailed), the JSON keeps the truth, "failed", with its known_gap. A user's
                    # test may evaluate several cells: each keeps the outcome its gate gave.
                    record["outcome"] = "passed" if report.passed else "failed"
                self.records[record["id"]] = record
        properties = [(name, cast(dict[str, Any], value)) for name, value in report.user_properties]
        judgements = [value for name, value in properties if name == JUDGEMENT]
        cells = [str(value["id"]) for name, value in properties if name == PROPERTY and "test" in value]
        if judgements or cells:
            self.tests[report.nodeid] = custom_test(report, judgements, cells)

    def _scalar_properties(self, report: pytest.TestReport) -> None:
        """Swap the cell record a teardown report carries for its scalar ``iqa.*`` properties:
        pytest's JUnit XML writes each of a teardown report's user properties as a property,
        and CI systems can show a number, not a repr of the whole record. Call reports keep the
        record: that is how a worker's cells reach the controller's reports."""
        properties: list[tuple[str, object]] = []
        for name, value in report.user_properties:
            if name == PROPERTY:
                record = cast(dict[str, Any], value)
                known = self.records.get(str(record["id"]), record)
                properties += junit_properties(known, state(known)[0])
            elif name == JUDGEMENT:
                properties.append(("iqa.judgement", judgement_text(cast(dict[str, Any], value))))
            else:
                properties.append((name, value))
        report.user_properties = properties

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
        return list(dict.fromkeys([*own, *self.worker_notices, *self._study_notices()]))

    def _study_notices(self) -> list[str]:
        """One line per dataset of the study the run lacked: its cells skip, and this says why."""
        record = self.suite.study_record() or {}
        return [
            f"--iqa-study: {m['dataset']} not given, its cells ({', '.join(m['cells'])}) are missing: "
            f"{m['add']}"
            for m in cast(list[dict[str, Any]], record.get("missing", []))
        ]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if is_worker(self.config):
            self.suite.close()
            workeroutput = self.config.workeroutput  # type: ignore[attr-defined]
            workeroutput[WORKER_USAGE] = self.suite.usage()
            workeroutput[WORKER_NOTICES] = self._notices()
            return
        if exitstatus == pytest.ExitCode.TESTS_FAILED and self.unmeasured_cells and not self.other_failures:
            session.exitstatus = EXIT_UNMEASURED
            self.exit_unmeasured = True
        if not (self.records or self.tests or self.interrupted):
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
            "study": suite.study_record(),
        }
        start = time.perf_counter()
        report = build_report(
            list(self.records.values()), run, suite.config.root, tests=list(self.tests.values())
        )
        directory = suite.config.resolve(suite.config.report_dir)
        # An interrupted run never replaces the last complete report: it is written beside it.
        self.report_paths = write_reports(report, directory, partial=partial)
        if not partial:
            remove_partial(directory)
        # A shard is part of a run: `iqa-eval merge` appends the whole run's line instead. A run
        # cut short before any cell finished has nothing to chart.
        if shard is None and (self.records or self.tests):
            self.history_path = append_history(directory, report)
        self.step_summary = append_step_summary(report)
        self.write_seconds = time.perf_counter() - start

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.suite.close()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_paths is None:
            return
        paths = [
            *self.report_paths,
            *([self.history_path] if self.history_path else []),
            *([self.step_summary] if self.step_summary else []),
        ]
        self.terminal.summary(
            terminalreporter,
            notices=self._notices(),
            records=list(self.records.values()),
            paths=paths,
            write_seconds=self.write_seconds,
            unmeasured=(self.unmeasured_cells, EXIT_UNMEASURED) if self.exit_unmeasured else None,
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
