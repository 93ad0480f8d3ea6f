"""The fixtures of a user's own tests: ``iqa_model`` (the model under test, asked about ad-hoc
images) and ``iqa_evaluate`` (a whole cell on any dataset, gated as the suite's cells are).

Both go through the run's suite, so a user's test shares the engine, the cache, the identity
rules and the caps with the built-in cells, and what it asked reaches the reports under the test's
own id: judgements as ``JUDGEMENT`` user properties, cells as cell records carrying ``test``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from iqa_eval.evaluation.adhoc import Asker, ImageJudgement, ImageLike
from iqa_eval.evaluation.gates import Gate, judge
from iqa_eval.evaluation.suite import STAGE1_SUBSET, Suite, Unsupported
from iqa_eval.plugin.cells import PROPERTY, SUITE, measured_record
from iqa_eval.plugin.options import USER_ERRORS
from iqa_eval.protocols.registry import METHODS
from iqa_eval.report.records import cell_record
from iqa_eval.sampling.subsets import stage2_subset
from iqa_eval.types import Attribute, CellResult, CellSpec, Protocol, Setting, Strategy

MODEL = "iqa_model"
EVALUATE = "iqa_evaluate"
JUDGEMENT = "iqa_judgement"
"""The user property that carries one ad-hoc judgement's record to the run's reports."""
SCRATCH = pytest.StashKey[tempfile.TemporaryDirectory[str]]()


CELL_KEYS = frozenset({"dataset", "setting", "attribute", "protocol", "strategy", "subset"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{EVALUATE}(dataset=, setting=, attribute=, protocol=, strategy=): a cell the test evaluates "
        "with iqa_evaluate, planned and sent with the suite's cells before any test runs",
    )


def declared_specs(suite: Suite, items: Sequence[pytest.Item]) -> list[CellSpec]:
    """The cells tests declare with ``@pytest.mark.iqa_evaluate(...)``, one per model under test:
    sent in the run's one dispatch, so the test's ``iqa_evaluate`` call only reads answers."""
    out = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or MODEL not in callspec.params:
            continue
        for mark in item.iter_markers(EVALUATE):
            out.append(_declared(suite, item.nodeid, str(callspec.params[MODEL]), mark))
    return out


def _declared(suite: Suite, nodeid: str, model: str, mark: pytest.Mark) -> CellSpec:
    where = f"{nodeid}: @pytest.mark.{EVALUATE}(...)"
    unknown = set(mark.kwargs) - CELL_KEYS
    missing = {"setting", "attribute"} - set(mark.kwargs)
    if mark.args or unknown or missing:
        problem = (
            "takes keywords only" if mark.args
            else f"has no {', '.join(sorted(unknown))}" if unknown
            else f"needs {' and '.join(sorted(missing))}"
        )  # fmt: skip
        raise pytest.UsageError(f"{where} {problem}; it takes {', '.join(sorted(CELL_KEYS))}")
    k = mark.kwargs
    spec = CellSpec(model, k.get("dataset", "builtin"), k["setting"], k["attribute"], k.get("protocol", "ss"),
                    k.get("strategy", "standard"), k.get("subset", STAGE1_SUBSET))  # fmt: skip
    impossible = _cell_problem(suite, spec)
    if impossible is not None:
        raise pytest.UsageError(f"{where}: {impossible}")
    return spec


def _cell_problem(suite: Suite, spec: CellSpec) -> str | None:
    """What makes a cell a test names impossible to evaluate in this run, or None."""
    if spec.dataset not in suite.datasets:
        known = ", ".join(suite.datasets)
        return f"unknown dataset {spec.dataset!r}; this run has {known} (add one with --iqa-data NAME=PATH)"
    dataset = suite.datasets[spec.dataset]
    if (spec.setting, spec.attribute) not in dataset.cells():
        cells = ", ".join(f"{s} {a}" for s, a in dataset.cells())
        return f"{spec.dataset} has no {spec.setting} {spec.attribute} cell; it has {cells}"
    if spec.protocol not in METHODS:
        return f"no protocol {spec.protocol!r}; the protocols are {', '.join(METHODS)}"
    strategies = METHODS[spec.protocol].strategies
    if spec.strategy not in strategies:
        return f"{spec.protocol} takes the strategies {', '.join(strategies)}, not {spec.strategy!r}"
    subsets = (STAGE1_SUBSET, stage2_subset(dataset))
    if spec.subset not in subsets:
        return f"no subset {spec.subset!r}; {spec.dataset} has {' and '.join(subsets)}"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per ``--iqa-model``: each model of the run is under test in turn."""
    if MODEL in metafunc.fixturenames:
        models = metafunc.config.stash[SUITE].config.models
        metafunc.parametrize(MODEL, list(models), ids=list(models), indirect=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    scratch = config.stash.get(SCRATCH, None)
    if scratch is not None:
        scratch.cleanup()


def _image_folder(config: pytest.Config, suite: Suite) -> Path:
    """Where arrays a test passes are written as PNG: beside the cache, so equal pixels are one
    stimulus across runs, or a scratch folder of this run when the cache is off."""
    if suite.config.use_cache:
        return suite.config.resolve(suite.config.cache_dir) / "adhoc"
    if SCRATCH not in config.stash:
        config.stash[SCRATCH] = tempfile.TemporaryDirectory(prefix="iqa-adhoc-")
    return Path(config.stash[SCRATCH].name)


class ModelUnderTest:
    """The model a user's test asks about its own images.

    Each ``ask_*`` returns an :class:`~iqa_eval.evaluation.adhoc.ImageJudgement`; reading its
    ``.score``, ``.preference`` or ``.ranking`` fails the test with the reason when the model gave
    none. A model that cannot take the question (an NR-only model asked with a reference) skips
    the test with the reason. Every judgement goes into the reports under the test's id.
    """

    def __init__(self, suite: Suite, spec: str, node: pytest.Item) -> None:
        self.spec, self._node = spec, node
        self._asker = Asker(suite, spec, _image_folder(node.config, suite))

    def __repr__(self) -> str:
        return f"<iqa_model {self.spec}>"

    def ask_score(self, image: ImageLike, reference: ImageLike | None = None) -> ImageJudgement:
        """A 0–100 quality score of ``image`` (against ``reference`` when given)."""
        return self._keep(lambda: self._asker.score(image, reference))

    def ask_preference(
        self, a: ImageLike, b: ImageLike, reference: ImageLike | None = None
    ) -> ImageJudgement:
        """Which of ``a`` and ``b`` looks better (closer to ``reference`` when given)."""
        return self._keep(lambda: self._asker.preference(a, b, reference))

    def ask_ranking(self, images: Sequence[ImageLike], reference: ImageLike | None = None) -> ImageJudgement:
        """A rank per image (0 = worst) of four images, against ``reference`` when given."""
        return self._keep(lambda: self._asker.ranking(images, reference))

    def _keep(self, ask: Any) -> ImageJudgement:
        try:
            judgement: ImageJudgement = ask()
        except Unsupported as err:
            pytest.skip(str(err))
        except USER_ERRORS as err:
            _error(str(err))
        self._node.user_properties.append((JUDGEMENT, {"test": self._node.nodeid, **judgement.to_record()}))
        return judgement


class CellEvaluator:
    """Evaluates whole cells for a user's test, on the model under test."""

    def __init__(self, suite: Suite, model: str, node: pytest.Item) -> None:
        self.suite, self.model, self._node = suite, model, node

    def __call__(
        self,
        *,
        dataset: str = "builtin",
        setting: Setting,
        attribute: Attribute,
        protocol: Protocol = "ss",
        strategy: Strategy = "standard",
        subset: str = STAGE1_SUBSET,
        gate: Gate | str | Path | None = None,
    ) -> CellResult:
        """The cell's result with its gate's outcome; ``result.check()`` asserts it.

        ``gate`` is a :class:`~iqa_eval.evaluation.gates.Gate`, a gate profile file, or None for
        the run's gate profile (``--iqa-gates``), which judges this cell as it would a suite cell.
        """
        suite = self.suite
        spec = CellSpec(self.model, dataset, setting, attribute, protocol, strategy, subset)
        problem = _cell_problem(suite, spec)
        if problem is not None:
            _error(problem)
        test = self._node.nodeid
        try:
            reason = suite.unsupported(spec)
            if reason is not None:
                self._keep(cell_record(spec, 1, reason, outcome="skipped"), test)
                pytest.skip(reason)
            chosen = suite.gate_of(spec, gate)
            result = suite.judged(spec, chosen)
        except USER_ERRORS as err:
            self._keep(cell_record(spec, 1, str(err), outcome="error"), test)
            _error(str(err))
        record = measured_record(suite, spec, 1, result, judge(result, chosen))
        record["outcome"], record["message"] = result.outcome, result.verdict
        self._keep(record, test)
        return result

    def _keep(self, record: Any, test: str) -> None:
        # Keyed by the test as well: the same cell asked by two tests, or by a test and the suite,
        # is a record of each.
        record["id"] = f"{test}::{record['id']}"
        record["test"] = test
        self._node.user_properties.append((PROPERTY, record))


def _error(message: str) -> NoReturn:
    pytest.fail(f"iqa-eval error: {message}", pytrace=False)


@pytest.fixture
def iqa_model(request: pytest.FixtureRequest) -> ModelUnderTest:
    """The model under test, for a test of your own: one test per ``--iqa-model``.

    ``iqa_model.ask_score(image, reference=None)``, ``.ask_preference(a, b, reference=None)`` and
    ``.ask_ranking([four images], reference=None)`` take paths, uint8 arrays or PIL images and
    return a judgement (``.score``, ``.preference``, ``.ranking``; ``.failure`` is the reason when
    the model gave none). Queries go through the run's engine, cache, caps and identity checks,
    and every judgement reaches the reports under the test's id.
    """
    suite = request.config.stash[SUITE]
    return ModelUnderTest(suite, str(request.param), request.node)


@pytest.fixture
def iqa_evaluate(request: pytest.FixtureRequest, iqa_model: ModelUnderTest) -> CellEvaluator:
    """Evaluate a whole cell on the model under test (one test per ``--iqa-model``):
    ``iqa_evaluate(dataset="mine", setting="nr", attribute="structure", protocol="ss",
    strategy="standard", gate=None)`` returns the ``CellResult`` with its gate's outcome, and
    ``result.check()`` asserts it as the suite's cells are asserted. The cell reaches the
    reports under the test's id; ``gate=None`` applies the run's gate profile.
    """
    return CellEvaluator(request.config.stash[SUITE], iqa_model.spec, request.node)
