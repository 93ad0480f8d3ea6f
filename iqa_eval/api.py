"""The programmatic API: one cell, evaluated exactly as the pytest suite evaluates it."""

from __future__ import annotations

from pathlib import Path

from iqa_eval.evaluation.config import RunConfig
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
    seed: int = 0,
    cache_dir: str | Path = ".iqa_cache",
    use_cache: bool = True,
    concurrency: int = 8,
) -> CellResult:
    """Return the same CellResult a suite test asserts on, for notebooks and other runners."""
    config = RunConfig(
        root=Path.cwd(),
        models=(model,),
        cache_dir=Path(cache_dir),
        use_cache=use_cache,
        concurrency=concurrency,
        seed=seed,
        progress=False,
    )
    suite = Suite(config)
    if dataset not in suite.datasets:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(suite.datasets)}")
    return suite.result(CellSpec(model, dataset, setting, attribute, protocol, strategy, subset))
