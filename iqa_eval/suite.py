"""One evaluation run: its datasets, model clients, engine, and the results of its cells.

Stage 1 runs every prompting system on a uniform sample; stage 2 takes each model's best system
(by mean SRCC over the stage-1 cells of that model, dataset and setting) to the harder subset of
each attribute. Stage 2 derives the best system from answers, never from which tests happened to
run first, so the outcome is the same under any test order and any number of xdist workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from iqa_eval.cache import ResponseCache
from iqa_eval.cells import PROTOCOL_IMPLS, Planner, evaluate
from iqa_eval.config import RunConfig
from iqa_eval.datasets.base import Dataset
from iqa_eval.datasets.builtin import BuiltinDataset
from iqa_eval.engine import Engine
from iqa_eval.gates import Gate, GateProfile
from iqa_eval.images import ImageStore
from iqa_eval.models.base import ModelClient
from iqa_eval.models.registry import make_client
from iqa_eval.protocols.base import Plan
from iqa_eval.types import STRATEGIES, Answer, CellResult, CellSpec, Protocol, Strategy

STAGE1_SUBSET = "uniform"
STAGE2_SUBSET = "finegrained"
BEST = "best"


@dataclass(frozen=True)
class BestSystem:
    protocol: Protocol
    strategy: Strategy
    srcc: float
    ranking: tuple[tuple[str, float], ...]


def systems() -> list[tuple[Protocol, Strategy]]:
    return [(p, s) for p in PROTOCOL_IMPLS for s in STRATEGIES if s in available_strategies(p)]  # type: ignore[misc]


def available_strategies(protocol: str) -> tuple[str, ...]:
    return tuple(getattr(PROTOCOL_IMPLS[protocol], "STRATEGIES", STRATEGIES))


class Unsupported(Exception):
    """The model cannot take a cell; the cell is skipped with this reason."""


ModelFactory = Callable[[str, ImageStore], "ModelClient | None"]


class Suite:
    def __init__(self, config: RunConfig, model_factory: ModelFactory | None = None) -> None:
        self.config = config
        self.model_factory = model_factory
        self.store = ImageStore()
        self.planner = Planner(seed=config.seed, decoding=config.decoding)
        self._answers: dict[str, dict[str, Answer]] = {}
        self._plans: dict[str, Plan] = {}
        self._results: dict[str, CellResult] = {}

    # -- the run's parts, built on first use --------------------------------------------------

    @cached_property
    def datasets(self) -> dict[str, Dataset]:
        builtin = BuiltinDataset(self.config.resolve(self.config.cache_dir))
        return {builtin.name: builtin}

    @cached_property
    def clients(self) -> dict[str, ModelClient]:
        clients = {}
        for spec in self.config.models:
            custom = self.model_factory(spec, self.store) if self.model_factory else None
            clients[spec] = (
                custom if custom is not None else make_client(spec, self.store, self.config.model_options)
            )
        return clients

    @cached_property
    def cache(self) -> ResponseCache | None:
        return ResponseCache(self.config.resolve(self.config.cache_dir)) if self.config.use_cache else None

    @cached_property
    def engine(self) -> Engine:
        return Engine(
            self.cache, self.config.concurrency, progress=self.config.progress, seed=self.config.seed
        )

    @cached_property
    def gates(self) -> GateProfile:
        if self.config.gates is None:
            return GateProfile(Gate(), (), "built-in default gate")
        return GateProfile.load(self.config.resolve(self.config.gates))

    # -- cells --------------------------------------------------------------------------------

    def stage1_specs(self) -> list[CellSpec]:
        return [
            CellSpec(model, name, setting, attribute, protocol, strategy, STAGE1_SUBSET)
            for model in self.config.models
            for name, dataset in self.datasets.items()
            for setting, attribute in dataset.cells()
            for protocol, strategy in systems()
        ]

    def stage2_specs(self) -> list[CellSpec]:
        """Stage-2 cells before their system is known: protocol and strategy read ``best``."""
        return [
            CellSpec(model, name, setting, attribute, BEST, BEST, STAGE2_SUBSET)  # type: ignore[arg-type]
            for model in self.config.models
            for name, dataset in self.datasets.items()
            for setting, attribute in dataset.cells()
        ]

    def plan(self, spec: CellSpec) -> Plan:
        if spec.id not in self._plans:
            self._plans[spec.id] = self.planner.plan(spec, self.datasets[spec.dataset])
        return self._plans[spec.id]

    def unsupported(self, spec: CellSpec) -> str | None:
        """Why the model cannot take this cell (a reason to skip it), or None."""
        client = self.clients[spec.model]
        caps = client.capabilities
        if spec.setting not in caps.settings:
            return f"{spec.model} answers only {'/'.join(caps.settings).upper()} queries"
        if caps.max_images is not None:
            needed = max((len(pq.query.images) for pq in self.plan(spec).queries), default=0)
            if needed > caps.max_images:
                return f"{spec.model} takes at most {caps.max_images} images per query; this needs {needed}"
        return None

    def execute(self, specs: Iterable[CellSpec]) -> None:
        """Send the union of the cells' queries through the engine, once per model."""
        by_model: dict[str, list[CellSpec]] = {}
        for spec in specs:
            if self.unsupported(spec) is None:
                by_model.setdefault(spec.model, []).append(spec)
        for model, model_specs in by_model.items():
            known = self._answers.setdefault(model, {})
            queries = [
                pq.query
                for spec in model_specs
                for pq in self.plan(spec).queries
                if pq.query.key not in known
            ]
            if queries:
                known.update(self.engine.run(self.clients[model], queries))

    def result(self, spec: CellSpec) -> CellResult:
        if spec.id not in self._results:
            self.execute([spec])
            self._results[spec.id] = evaluate(
                spec, self.plan(spec), self._answers[spec.model], self.config.seed
            )
        return self._results[spec.id]

    def best_system(self, model: str, dataset: str, setting: str) -> BestSystem:
        """The stage-1 system with the highest mean SRCC over attributes (ties: listing order)."""
        specs = [
            s
            for s in self.stage1_specs()
            if (s.model, s.dataset, s.setting) == (model, dataset, setting) and self.unsupported(s) is None
        ]
        if not specs:
            raise Unsupported(f"{model} can run no prompting system on {dataset} {setting.upper()}")
        self.execute(specs)
        scores: dict[tuple[Protocol, Strategy], list[float]] = {}
        for spec in specs:
            value = self.result(spec).metrics["srcc"].value
            # An undefined SRCC (no valid judgements) carries no ranking information: chance, 0.
            scores.setdefault((spec.protocol, spec.strategy), []).append(0.0 if value is None else value)
        ranking = sorted(((system, sum(v) / len(v)) for system, v in scores.items()), key=lambda sv: -sv[1])
        (protocol, strategy), best = ranking[0]
        return BestSystem(protocol, strategy, best, tuple((f"{p}/{s}", v) for (p, s), v in ranking))

    def stage2_spec(self, spec: CellSpec) -> tuple[CellSpec, BestSystem]:
        best = self.best_system(spec.model, spec.dataset, spec.setting)
        return CellSpec(
            spec.model, spec.dataset, spec.setting, spec.attribute, best.protocol, best.strategy, spec.subset
        ), best
