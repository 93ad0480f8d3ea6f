"""The programmatic API: one cell, evaluated and gated exactly as the pytest suite does it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from iqa_eval.evaluation.config import RunConfig, parse_data
from iqa_eval.evaluation.gates import Gate
from iqa_eval.evaluation.suite import STAGE1_SUBSET, Suite
from iqa_eval.types import Attribute, CellResult, CellSpec, Protocol, Setting, Strategy


def evaluate(
    *,
    model: str = "expert",
    dataset: str = "builtin",
    setting: Setting,
    attribute: Attribute,
    protocol: Protocol = "ss",
    strategy: Strategy = "standard",
    subset: str = STAGE1_SUBSET,
    gate: Gate | str | Path | None = None,
    data: Sequence[str] = (),
    seed: int = 0,
    cache_dir: str | Path = ".iqa_cache",
    use_cache: bool = True,
    concurrency: int = 8,
) -> CellResult:
    """The CellResult a suite test asserts on, with its gate's outcome, for notebooks and other
    runners; ``result.check()`` asserts it.

    ``gate`` is a :class:`Gate`, a gate profile (TOML) whose rules apply as in a run, or None
    for the default gate (better than chance with confidence, coverage at least 90%). ``data``
    adds datasets as ``NAME=PATH``, as ``--iqa-data`` does. A cell whose answers went missing
    for reasons of infrastructure (an endpoint down, a bad key) is an ``error``, not a failure.
    """
    root = Path.cwd()
    config = RunConfig(
        root=root,
        models=(model,),
        cache_dir=Path(cache_dir),
        use_cache=use_cache,
        concurrency=concurrency,
        seed=seed,
        progress=False,
        data=parse_data(root, list(data)),
    )
    suite = Suite(config)
    try:
        if dataset not in suite.datasets:
            raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(suite.datasets)}")
        spec = CellSpec(model, dataset, setting, attribute, protocol, strategy, subset)
        return suite.judged(spec, gate)
    finally:
        # Closing the engine's loop with the clients on it: left open, its pending tasks were
        # reported as never awaited when the interpreter collected them.
        suite.close()
