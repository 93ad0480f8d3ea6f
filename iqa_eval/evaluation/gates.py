"""Gates: what a cell must reach to pass, read from a TOML profile.

A gate is judged on the lower confidence bound by default, because a point value above the
threshold on a small sample is not evidence. Coverage (the share of queries that produced a valid
judgement) is gated too: a model that answers one query in ten cannot pass on that tenth.

Profile format::

    [defaults]                 # every cell no rule matches; also every cell of an unknown model
    threshold = 0.0            # the metric must exceed this ...
    bound = "lower"            # ... at its lower confidence bound ("point": the value itself)
    min_coverage = 0.9

    [[gate]]                   # later rules override earlier ones for the keys they set
    models = "expert*"         # fnmatch pattern on the model spec
    select = "fr and color"    # a marker expression over the cell's markers
    cells = "*/kadid10k/*"     # fnmatch pattern on the cell id (model/dataset/setting_attribute/
                               # protocol/strategy/subset): dataset and subset have no markers
    metric = "srcc"            # default: the cell's primary metric
    threshold = 0.6
    baseline_tolerance = 0.05  # with --iqa-baseline: a drop the cell may show before it regresses
"""

from __future__ import annotations

import ast
import fnmatch
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from iqa_eval.types import ATTRIBUTES, PROTOCOLS, SETTINGS, STRATEGIES, CellResult, CellSpec, Stage2Cell

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MARKERS: frozenset[str] = frozenset(
    [
        *SETTINGS,
        *ATTRIBUTES,
        *PROTOCOLS,
        *STRATEGIES,
        *(f"{s}_{a}" for s in SETTINGS for a in ATTRIBUTES),
        "metamorphic",
    ]
)


class GateError(ValueError):
    """A gate profile that cannot be used; the message names the file and the rule."""


def cell_markers(spec: CellSpec | Stage2Cell) -> frozenset[str]:
    """The markers that select a cell; a stage-2 cell learns its system only at run time, so it
    carries no system markers."""
    markers = {spec.setting, spec.attribute, f"{spec.setting}_{spec.attribute}"}
    if isinstance(spec, CellSpec):
        markers |= {spec.protocol, spec.strategy}
    if spec.subset == "metamorphic":
        markers.add("metamorphic")
    return frozenset(markers)


@dataclass(frozen=True)
class Gate:
    metric: str | None = None
    threshold: float = 0.0
    bound: str = "lower"
    min_coverage: float = 0.9
    known_gap: str | None = None
    baseline_tolerance: float = 0.02
    source: str = "default gate: better than chance with confidence"

    def describe(self, metric: str) -> dict[str, object]:
        return {
            "metric": metric,
            "threshold": self.threshold,
            "bound": self.bound,
            "min_coverage": self.min_coverage,
            "known_gap": self.known_gap,
            "baseline_tolerance": self.baseline_tolerance,
            "source": self.source,
        }


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    gate: Mapping[str, object]


class _Selection:
    """A marker expression (and/or/not/parentheses) compiled once and checked against markers."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        try:
            tree = ast.parse(text.replace("-", "_"), mode="eval")
        except SyntaxError as err:
            raise GateError(f"{where}: select = {text!r} is not a marker expression: {err.msg}") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in MARKERS:
                raise GateError(
                    f"{where}: select = {text!r} names unknown marker {node.id!r}; "
                    f"known markers: {', '.join(sorted(MARKERS))}"
                )
            if not isinstance(
                node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Name, ast.Load)
            ):
                raise GateError(f"{where}: select = {text!r} may only use marker names, and, or, not, ()")
        self._code = compile(tree, where, "eval")

    def matches(self, markers: frozenset[str]) -> bool:
        env = {name: name in markers for name in MARKERS}
        return bool(eval(self._code, {"__builtins__": {}}, env))


@dataclass(frozen=True)
class _Rule:
    models: str
    selection: _Selection | None
    settings: Mapping[str, Any]
    where: str
    cells: str = "*"


# Old metric names a profile may still use, and what they are called now (the same number).
RENAMED_METRICS = {"bias": "position_balance"}
_KEYS = {"metric", "threshold", "bound", "min_coverage", "known_gap", "baseline_tolerance"}


class GateProfile:
    def __init__(self, defaults: Gate, rules: Iterable[_Rule], source: str) -> None:
        self.defaults = defaults
        self.rules = tuple(rules)
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> GateProfile:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise GateError(f"{path}: gate profile not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise GateError(f"{path}: not valid TOML: {err}") from None
        unknown = set(data) - {"defaults", "gate"}
        if unknown:
            raise GateError(f"{path}: unknown section(s) {sorted(unknown)}; expected [defaults] and [[gate]]")
        defaults = Gate(**_checked(data.get("defaults", {}), f"{path} [defaults]"))
        if defaults.metric is not None or defaults.known_gap is not None:
            raise GateError(
                f"{path} [defaults]: metric and known_gap belong in [[gate]] rules; "
                "the default gate judges each cell's primary metric"
            )
        rules = []
        for n, raw in enumerate(data.get("gate", []), start=1):
            where = f"{path} [[gate]] #{n}"
            if not isinstance(raw, dict):
                raise GateError(f"{where}: must be a table")
            raw = dict(raw)
            models = raw.pop("models", "*")
            select = raw.pop("select", None)
            cells = raw.pop("cells", "*")
            if not all(isinstance(v, str) for v in (models, cells)) or not isinstance(select, str | None):
                raise GateError(f"{where}: models, select and cells must be strings")
            selection = _Selection(select, where) if select else None
            rules.append(_Rule(models, selection, _checked(raw, where), where, cells))
        return cls(defaults, rules, str(path))

    def gate_for(self, spec: CellSpec) -> Gate:
        markers = cell_markers(spec)
        gate = self.defaults
        for rule in self.rules:
            if (
                fnmatch.fnmatchcase(spec.model, rule.models)
                and fnmatch.fnmatchcase(spec.id, rule.cells)
                and (rule.selection is None or rule.selection.matches(markers))
            ):
                gate = replace(gate, **rule.settings, source=f"{rule.where}")
        return gate


def _checked(settings: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = set(settings) - _KEYS
    if unknown:
        raise GateError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    out = dict(settings)
    for key in ("threshold", "min_coverage", "baseline_tolerance"):
        if key in out and (not isinstance(out[key], (int, float)) or isinstance(out[key], bool)):
            raise GateError(f"{where}: {key} must be a number, got {out[key]!r}")
    if "baseline_tolerance" in out and not out["baseline_tolerance"] >= 0:
        raise GateError(f"{where}: baseline_tolerance must be >= 0, got {out['baseline_tolerance']}")
    if "min_coverage" in out and not 0 <= out["min_coverage"] <= 1:
        raise GateError(f"{where}: min_coverage must lie in [0, 1], got {out['min_coverage']}")
    if "bound" in out and out["bound"] not in ("lower", "point"):
        raise GateError(f"{where}: bound must be 'lower' or 'point', got {out['bound']!r}")
    for key in ("metric", "known_gap"):
        if key in out and not isinstance(out[key], str):
            raise GateError(f"{where}: {key} must be a string")
    if out.get("metric") in RENAMED_METRICS:
        old, new = out["metric"], RENAMED_METRICS[out["metric"]]
        warnings.warn(f"{where}: metric {old!r} is now called {new!r}; gating on {new!r}", FutureWarning, 2)
        out["metric"] = new
    return out


def judge(result: CellResult, gate: Gate) -> Verdict:
    """Pass or fail one cell, with a message that shows everything the decision used."""
    name = gate.metric or result.primary_metric
    described = gate.describe(name)
    metric = result.metrics.get(name)
    coverage = result.coverage
    cov_text = f"coverage {coverage:.1%} of {result.n_queries} queries (min {gate.min_coverage:.0%})"
    if metric is None:
        return Verdict(False, f"{result.spec.id}: metric {name!r} is not reported by this cell", described)
    judged = metric.low if gate.bound == "lower" else metric.value
    ci = f"[{_fmt(metric.low)}, {_fmt(metric.high)}]"
    where = "lower bound" if gate.bound == "lower" else "value"
    detail = (
        f"{name} {where} {_fmt(judged)} (value {_fmt(metric.value)}, 95% CI {ci}, "
        f"n={metric.n} {'groups' if metric.aggregation == 'local_mean' else 'units'}) "
        f"must exceed {gate.threshold:g}; {cov_text}"
    )
    reasons = []
    if judged is None:
        reasons.append(f"{name} is undefined ({metric.note or 'no valid judgements'})")
    elif not judged > gate.threshold:
        reasons.append(f"{name} too low")
    if coverage < gate.min_coverage:
        reasons.append("coverage too low")
    passed = not reasons
    message = detail if passed else f"{'; '.join(reasons)}: {detail}"
    return Verdict(passed, message, described)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
