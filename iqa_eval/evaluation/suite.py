"""One evaluation run: its datasets, model clients, engine, and the results of its cells.

Stage 1 runs every prompting system on a uniform sample; stage 2 takes each model's best system
(by mean SRCC over the stage-1 cells of that model, dataset and setting) to the harder subset of
each attribute. Stage 2 derives the best system from answers, never from which tests happened to
run first, so the outcome is the same under any test order and any number of xdist workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from iqa_eval.datasets.base import Dataset
from iqa_eval.datasets.builtin import BuiltinDataset
from iqa_eval.datasets.ceiling import noise_ceiling
from iqa_eval.datasets.public import SelectionOptions
from iqa_eval.datasets.registry import load_dataset
from iqa_eval.evaluation import metamorphic, study
from iqa_eval.evaluation.cells import Planner, evaluate, judge_answer
from iqa_eval.evaluation.config import RunConfig
from iqa_eval.evaluation.gates import Gate, GateProfile, judge
from iqa_eval.execution.cache import ResponseCache
from iqa_eval.execution.engine import Engine, Unidentified
from iqa_eval.images import ImageStore
from iqa_eval.models.base import INFRASTRUCTURE_FAILURES, ModelClient, ModelIdentity
from iqa_eval.models.registry import make_client
from iqa_eval.protocols.base import Plan, metric_value
from iqa_eval.protocols.registry import METHODS
from iqa_eval.sampling.subsets import DIFFICULT, stage2_subset
from iqa_eval.types import (
    STRATEGIES,
    Answer,
    Attribute,
    CellResult,
    CellSpec,
    Item,
    MetricValue,
    Protocol,
    Query,
    Setting,
    Stage2Cell,
    Strategy,
)

STAGE1_SUBSET = "uniform"
METAMORPHIC_SUBSET = "metamorphic"
PAPER_REASKS = 2


@dataclass(frozen=True)
class BestSystem:
    protocol: Protocol
    strategy: Strategy
    srcc: float
    ranking: tuple[tuple[str, float], ...]


def systems() -> list[tuple[Protocol, Strategy]]:
    """The prompting systems of stage 1: each method with each strategy it supports."""
    return [(p, s) for p, m in METHODS.items() for s in STRATEGIES if s in m.strategies]


class Unsupported(Exception):
    """The model cannot take a cell; the cell is skipped with this reason."""


ModelFactory = Callable[[str, ImageStore], "ModelClient | None"]


class Suite:
    def __init__(self, config: RunConfig, model_factory: ModelFactory | None = None) -> None:
        self.config = config
        self.model_factory = model_factory
        keep = config.resolve(config.cache_dir) / "encoded" if config.use_cache else None
        self.store = ImageStore(keep)
        self.planner = Planner(seed=config.seed, decoding=config.decoding, paper=config.paper)
        self._answers: dict[str, dict[str, Answer]] = {}
        self._plans: dict[str, Plan] = {}
        self._results: dict[str, CellResult] = {}
        self._drawn: dict[tuple[str, metamorphic.CaseStrategy], list[metamorphic.Case]] = {}

    # -- the run's parts, built on first use --------------------------------------------------

    @cached_property
    def datasets(self) -> dict[str, Dataset]:
        cache_dir = self.config.resolve(self.config.cache_dir)
        datasets: dict[str, Dataset] = {}
        if not self.config.study:  # the built-in set is not one of the study's
            builtin = BuiltinDataset(cache_dir)
            datasets[builtin.name] = builtin
        options = SelectionOptions(cache_dir=cache_dir, features=self.config.features, seed=self.config.seed)
        for name, path in self.config.data:
            dataset = load_dataset(name, self.config.resolve(path), store=self.store, selection=options)
            datasets[dataset.name] = dataset  # ``name`` may carry an attribute: mine:color
        return datasets

    @cached_property
    def clients(self) -> dict[str, ModelClient]:
        clients = {}
        for spec in (*self.config.models, *self.reference_models()):
            custom = self.model_factory(spec, self.store) if self.model_factory else None
            clients[spec] = (
                custom
                if custom is not None
                else make_client(spec, self.store, self.config.model_options, self.config.prices)
            )
            if self.config.use_cache:
                clients[spec].use_cache_dir(self.config.resolve(self.config.cache_dir))
        return clients

    @cached_property
    def cache(self) -> ResponseCache | None:
        return ResponseCache(self.config.resolve(self.config.cache_dir)) if self.config.use_cache else None

    @cached_property
    def engine(self) -> Engine:
        return Engine(
            self.cache,
            self.config.concurrency,
            progress=self.config.progress,
            seed=self.config.seed,
            budget_usd=self.config.budget_usd,
            max_requests=self.config.max_requests,
        )

    @cached_property
    def gates(self) -> GateProfile:
        if self.config.gates is None:
            return GateProfile(Gate(), (), "built-in default gate")
        return GateProfile.load(self.config.resolve(self.config.gates))

    def usage(self) -> dict[str, object] | None:
        """What this process sent and spent, or None when it asked no query (the xdist controller,
        which only establishes identities)."""
        if "engine" not in self.__dict__ or not self.engine.stats.requested:
            return None
        stats = self.engine.stats
        notes = {spec: getattr(client, "price_note", "") for spec, client in self.clients.items()}
        return {
            "queries": stats.requested,
            "unique": stats.unique,
            "cached": stats.cached,
            # Queries a cap or a halted model held back were dispatched to the engine but never sent.
            "sent": stats.dispatched - stats.unsent,
            "requests": stats.requests,
            "failed": stats.failed,
            "failures": dict(stats.failures),
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "cost_usd": round(stats.cost_usd, 6),
            "budget_usd": self.config.budget_usd,
            "budget_exhausted": stats.budget_exhausted,
            "max_requests": self.config.max_requests,
            "stopped_by": self.engine.stopped_by,
            "price_notes": {spec: note for spec, note in notes.items() if note},
        }

    def unpriced(self) -> list[str]:
        """Why a budget in USD cannot hold: one line per model whose price is unknown."""
        return [f"{spec}: {why}" for spec, client in self.clients.items() if (why := client.price_unknown)]

    def identity(self, model: str) -> ModelIdentity | Unidentified:
        """Who answers for ``model`` in this run, established live on first use."""
        return self.engine.identify(self.clients[model])

    def identity_record(self, model: str) -> dict[str, object]:
        identity = self.identity(model)
        if isinstance(identity, Unidentified):
            return {"key": None, "fingerprint": self.clients[model].fingerprint, "served": {},
                    "unidentified": f"{identity.reason}: {identity.detail}"}  # fmt: skip
        return identity.to_record()

    def unmeasured(self, spec: CellSpec, result: CellResult) -> str | None:
        """Why a cell could not be measured (answers missing for reasons of infrastructure, not
        of the model), with counts and one example, or None when every query reached the model."""
        infra = {r: n for r, n in result.n_failed.items() if r in INFRASTRUCTURE_FAILURES}
        if not infra:
            return None
        known = self._answers.get(spec.model, {})
        plan = self.plan(spec) if spec.subset != METAMORPHIC_SUBSET else None
        keys = [pq.query.key for pq in plan.queries] if plan is not None else list(known)
        example = next(
            (a.detail for k in keys if (a := known.get(k)) is not None and a.error in infra and a.detail), ""
        )
        counts = ", ".join(f"{reason} {n}" for reason, n in sorted(infra.items(), key=lambda rn: -rn[1]))
        return (
            f"could not be measured: {sum(infra.values())} of {result.n_queries} queries unanswered "
            f"({counts})" + (f"; e.g. {example}" if example else "")
        )

    def close(self) -> None:
        """Close the engine's event loop and the clients' connections, if they were opened."""
        if "engine" in self.__dict__:
            self.engine.close(self.clients.values() if "clients" in self.__dict__ else ())

    # -- cells --------------------------------------------------------------------------------

    def dataset_cells(self) -> list[tuple[str, Setting, Attribute]]:
        """(dataset, setting, attribute) of every cell of the run: each loaded dataset's, or under
        ``--iqa-study`` exactly the study's, given or not (see :meth:`missing`)."""
        if self.config.study:
            return [(cell.dataset, cell.setting, cell.attribute) for cell in study.CELLS]
        return [(name, s, a) for name, dataset in self.datasets.items() for s, a in dataset.cells()]

    def missing(self, dataset: str, setting: Setting, attribute: Attribute) -> str | None:
        """Why a cell of the study has no data in this run, with what would add it; None when it has.

        Such a cell stays in the run and skips with this reason, so the terminal, the report and
        the tables show it instead of a study that silently shrank.
        """
        if dataset not in self.datasets:
            return f"{dataset} not given: {study.add_command(dataset)}"
        if (setting, attribute) not in self.datasets[dataset].cells():
            return f"{dataset} as given has no {setting}_{attribute} items"
        return None

    def study_record(self) -> dict[str, object] | None:
        """The run's study matrix for the report, None without ``--iqa-study``."""
        return study.record(self.datasets) if self.config.study else None

    def systems_of(self, model: str) -> list[tuple[Protocol, Strategy]]:
        """The stage-1 systems a model gets cells of: ``levels`` only where its client can give
        probabilities (a model without them would only add skipped cells), and never in paper
        mode or in the study's matrix, since the study had no such system."""
        if self.config.paper or self.config.study or not self.clients[model].capabilities.probabilities:
            return [(p, s) for p, s in systems() if s != "levels"]
        return systems()

    def stage1_specs(self) -> list[CellSpec]:
        return [
            CellSpec(model, name, setting, attribute, protocol, strategy, STAGE1_SUBSET)
            for model in self.config.models
            for name, setting, attribute in self.dataset_cells()
            for protocol, strategy in self.systems_of(model)
        ]

    def stage2_specs(self) -> list[Stage2Cell]:
        """Stage-2 cells, before their system is known."""
        return [
            Stage2Cell(model, name, setting, attribute, self._stage2_subset(name))
            for model in self.config.models
            for name, setting, attribute in self.dataset_cells()
        ]

    def reference_models(self) -> tuple[str, ...]:
        """The classical measures that are stage-2 reference rows (``--iqa-study`` only)."""
        return study.reference_models(self.config.models) if self.config.study else ()

    def reference_specs(self) -> list[CellSpec]:
        """The stage-2 cells of :meth:`reference_models`, each on its own setting's cells.

        A classical measure has no prompting system to choose: it scores each image, which is
        what its single-stimulus answer reads. Cells of datasets the run lacks are left to the
        models' own stage-2 cells, which report them as missing.
        """
        return [
            CellSpec(model, name, setting, attribute, "ss", "standard", self._stage2_subset(name))
            for name, setting, attribute in self.dataset_cells()
            if self.missing(name, setting, attribute) is None
            for model in self.reference_models()
            if study.measures(model, setting)
        ]

    def _stage2_subset(self, name: str) -> str:
        dataset = self.datasets.get(name)
        return DIFFICULT if dataset is None else stage2_subset(dataset)

    def plan(self, spec: CellSpec) -> Plan:
        if spec.id not in self._plans:
            self._plans[spec.id] = self.planner.plan(spec, self.datasets[spec.dataset])
        return self._plans[spec.id]

    def unsupported(self, spec: CellSpec) -> str | None:
        """Why the model cannot take this cell, or the run has no data for it (a reason to skip
        it), or None."""
        absent = self.missing(spec.dataset, spec.setting, spec.attribute)
        if absent is not None:
            return absent
        client = self.clients[spec.model]
        caps = client.capabilities
        if spec.strategy == "levels":
            if not caps.probabilities:
                return f"{spec.model} gives no answer probabilities, so it has no levels system"
            refused = client.refuses_probabilities()
            if refused is not None:
                return refused
        needed = 0
        if spec.setting in caps.settings and caps.max_images is not None:
            # Metamorphic queries are the standard system's: same image count as its stage-1 plan.
            planned = replace(spec, subset=STAGE1_SUBSET) if spec.subset == METAMORPHIC_SUBSET else spec
            needed = max((len(pq.query.images) for pq in self.plan(planned).queries), default=0)
        return self.cannot_take(spec.model, spec.setting, needed)

    def cannot_take(self, model: str, setting: Setting, images: int) -> str | None:
        """Why ``model`` cannot take a query of ``setting`` showing ``images`` images, or None:
        the capability check of cells and of a user's ad-hoc questions alike."""
        caps = self.clients[model].capabilities
        if setting not in caps.settings:
            return f"{model} answers only {'/'.join(caps.settings).upper()} queries"
        if caps.max_images is not None and images > caps.max_images:
            return f"{model} takes at most {caps.max_images} images per query; this needs {images}"
        return None

    def execute(
        self,
        specs: Iterable[CellSpec],
        relations: Iterable[tuple[CellSpec, Sequence[metamorphic.Case]]] = (),
    ) -> None:
        """Send the union of the cells' queries and of the metamorphic cases' through the engine,
        once per model."""
        by_model: dict[str, list[Query]] = {}
        for spec in specs:
            if self.unsupported(spec) is None:
                by_model.setdefault(spec.model, []).extend(pq.query for pq in self.plan(spec).queries)
        for spec, cases in relations:
            if self.unsupported(spec) is None:
                by_model.setdefault(spec.model, []).extend(self._relation_queries(spec, cases))
        for model, queries in by_model.items():
            self.ask(model, queries)

    def result(self, spec: CellSpec) -> CellResult:
        if spec.id not in self._results:
            self.execute([spec])
            # A server may turn out to refuse probabilities only once it is asked for them.
            reason = self.unsupported(spec) if spec.strategy == "levels" else None
            if reason is not None:
                raise Unsupported(reason)
            answers: Mapping[str, Answer] = self._answers[spec.model]
            if self.config.paper:
                answers = self._reask(spec, answers)
            self._results[spec.id] = evaluate(
                spec, self.plan(spec), answers, self.config.seed, random_fill=self.config.random_fill
            )
        return self._results[spec.id]

    def gate_of(self, spec: CellSpec, gate: Gate | str | Path | None = None) -> Gate:
        """The gate a caller names for a cell: a Gate, a profile file's rule for the cell, or the
        run's profile's (``--iqa-gates``, else the default gate) when None."""
        if isinstance(gate, Gate):
            return gate
        return self.gates.gate_for(spec) if gate is None else GateProfile.load(gate).gate_for(spec)

    def judged(self, spec: CellSpec, gate: Gate | str | Path | None = None) -> CellResult:
        """The cell's result with its outcome under ``gate`` (see :meth:`gate_of`): ``error``
        when answers went missing for reasons of infrastructure."""
        result = self.result(spec)
        verdict = judge(result, self.gate_of(spec, gate))
        unmeasured = self.unmeasured(spec, result)
        if unmeasured is not None:
            return replace(result, outcome="error", verdict=f"{unmeasured}; {verdict.message}")
        return replace(result, outcome="passed" if verdict.passed else "failed", verdict=verdict.message)

    def ask(self, model: str, queries: Sequence[Query]) -> Mapping[str, Answer]:
        """The answers to ad-hoc queries (metamorphic cases, a user's own images): each asked
        once per run, through the engine and the cache like every planned query."""
        known = self._answers.setdefault(model, {})
        missing = list({q.key: q for q in queries if q.key not in known}.values())
        if missing:
            known.update(self.engine.run(self.clients[model], missing))
        return known

    def noise_ceiling(self, spec: CellSpec, result: CellResult) -> MetricValue | None:
        """The SRCC a perfect observer could reach given the raters' noise, on the items the cell's
        SRCC was computed on (those with a prediction: failed answers leave items out) and
        aggregated as it is; None without an SRCC or without published rating noise."""
        srcc = result.metrics.get("srcc")
        if srcc is None:
            return None
        scored = {p.item_id for p in result.predictions}
        items = [item for item in self.plan(spec).items if item.id in scored]
        ceiling = noise_ceiling(items, self.config.seed, local=srcc.aggregation == "local_mean")
        return None if ceiling is None else metric_value(ceiling)

    def _reask(self, spec: CellSpec, answers: Mapping[str, Answer]) -> Mapping[str, Answer]:
        """The study's policy: a failed answer is asked again, up to twice. Each re-ask is its
        own request (and cache entry); the first valid answer stands in for the original."""
        resolved = dict(answers)
        known = self._answers[spec.model]
        pending = [
            pq.query for pq in self.plan(spec).queries if not judge_answer(spec, answers.get(pq.query.key)).ok
        ]
        for attempt in range(1, PAPER_REASKS + 1):
            if not pending:
                break
            again = [replace(q, attempt=attempt) for q in pending]
            known.update(self.engine.run(self.clients[spec.model], [q for q in again if q.key not in known]))
            still = []
            for original, retry in zip(pending, again, strict=True):
                if judge_answer(spec, known.get(retry.key)).ok:
                    resolved[original.key] = known[retry.key]
                else:
                    still.append(original)
            pending = still
        return resolved

    def metamorphic_specs(self, protocol: Protocol) -> list[CellSpec]:
        """The standard system's relation cells, and the ``levels`` system's where the model has it
        (DS: the soft preference must survive the swap; SS: the expected level the re-encoding);
        none of the study's cells."""
        if self.config.study:
            return []
        return [
            CellSpec(model, name, setting, attribute, protocol, strategy, METAMORPHIC_SUBSET)
            for model in self.config.models
            for strategy in ("standard", "levels")
            if (protocol, strategy) in self.systems_of(model)
            for name, setting, attribute in self.dataset_cells()
        ]

    def metamorphic_items(self, spec: CellSpec) -> list[list[Item]]:
        """The stage-1 sample in comparability groups, for the test to draw cases from."""
        stage1 = replace(spec, subset=STAGE1_SUBSET)
        groups: dict[str, list[Item]] = {}
        for item in self.plan(stage1).items:
            groups.setdefault(item.group, []).append(item)
        return list(groups.values())

    def metamorphic_cases(self, spec: CellSpec, strategy: metamorphic.CaseStrategy) -> list[metamorphic.Case]:
        """The cases a relation's strategy draws from the cell's groups, drawn once per run: the
        plan sends their queries with the cells', the test evaluates the same cases."""
        key = (spec.id, strategy)
        if key not in self._drawn:
            self._drawn[key] = metamorphic.collect(strategy(self.metamorphic_items(spec)))
        return self._drawn[key]

    def _relation_queries(self, spec: CellSpec, cases: Sequence[metamorphic.Case]) -> list[Query]:
        return [q for case in cases for q in metamorphic.queries(spec, case, self.config.decoding)]

    def metamorphic_result(self, spec: CellSpec, cases: Sequence[metamorphic.Case]) -> CellResult:
        decoding = self.config.decoding
        known = self.ask(spec.model, self._relation_queries(spec, cases))
        reason = self.unsupported(spec) if spec.strategy == "levels" else None
        if reason is not None:
            raise Unsupported(reason)
        return metamorphic.evaluate(spec, cases, known, decoding, self.config.seed)

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
        # Cells the model turned out not to take (a server refusing logprobs) are not candidates.
        specs = [s for s in specs if self.unsupported(s) is None]
        scores: dict[tuple[Protocol, Strategy], list[float]] = {}
        for spec in specs:
            value = self.result(spec).metrics["srcc"].value
            # An undefined SRCC (no valid judgements) carries no ranking information: chance, 0.
            scores.setdefault((spec.protocol, spec.strategy), []).append(0.0 if value is None else value)
        ranking = sorted(((system, sum(v) / len(v)) for system, v in scores.items()), key=lambda sv: -sv[1])
        (protocol, strategy), best = ranking[0]
        return BestSystem(protocol, strategy, best, tuple((f"{p}/{s}", v) for (p, s), v in ranking))

    def stage2_spec(self, cell: Stage2Cell) -> tuple[CellSpec, BestSystem]:
        """The cell a stage-2 cell evaluates: its model's best system, and how it was chosen."""
        absent = self.missing(cell.dataset, cell.setting, cell.attribute)
        if absent is not None:
            raise Unsupported(absent)
        best = self.best_system(cell.model, cell.dataset, cell.setting)
        return cell.with_system(best.protocol, best.strategy), best
