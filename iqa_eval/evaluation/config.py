"""Run settings from the command line, ``[tool.iqa_eval]`` in pyproject.toml, or pytest's ini.

The command line wins over ``[tool.iqa_eval]``, which wins over the ini file, which wins over
the defaults, so a CI job can pin a profile in pyproject.toml and a developer can still override
one option for a single run.

This module lives in evaluation/, not beside the plugin's options: a ``RunConfig`` is what the
evaluation's ``Suite`` is given, and more than one face builds one (the plugin from its options
and ini, ``iqa_eval.evaluate()`` from its arguments). Under plugin/ the suite would import a
face, against the floors; here the faces import it, as they import the suite.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqa_eval.datasets.base import DatasetError
from iqa_eval.datasets.registry import source
from iqa_eval.evaluation import study
from iqa_eval.models.base import ModelOptions
from iqa_eval.models.pricing import PricesError, PriceTable
from iqa_eval.types import Decoding

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_MODEL = "expert"
DEFAULT_GATES = Path("fixtures/gates/default.toml")
PACKAGED_GATES = Path(__file__).parents[1] / "suite" / "default-gates.toml"
"""The default profile as the package ships it: a project outside this repository (which has no
``fixtures/gates/default.toml`` of its own) is gated on it unless it names a profile."""


class ConfigError(ValueError):
    """A setting that cannot be used; the message names where it came from."""


@dataclass(frozen=True)
class RunConfig:
    root: Path
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    gates: Path | None = None
    report_dir: Path = Path("reports")
    cache_dir: Path = Path(".iqa_cache")
    use_cache: bool = True
    concurrency: int = 8
    seed: int = 0
    progress: bool = True
    decoding: Decoding = field(default_factory=Decoding)
    paper: bool = False
    random_fill: bool = False
    model_options: ModelOptions = field(default_factory=ModelOptions)
    budget_usd: float | None = None
    max_requests: int | None = None
    prices: PriceTable = field(default_factory=PriceTable)
    baseline: Path | None = None
    shard: tuple[int, int] | None = None
    data: tuple[tuple[str, Path], ...] = ()
    features: str = "handcrafted"
    study: bool = False

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path


# name -> (type, default); the same names serve as ``--iqa-<name>`` options, ini keys
# ``iqa_<name>`` and keys of ``[tool.iqa_eval]``.
OPTIONS: dict[str, tuple[type, Any, str]] = {
    "model": (
        list,
        [DEFAULT_MODEL],
        "model spec (repeatable): expert, expert:<metric>, openai:<model>, hf:<dir or id>, replay:<file>",
    ),
    "data": (
        list,
        [],
        "dataset to add as NAME=PATH (repeatable): a public one (names: iqa-eval datasets list) or your "
        "own CSV or folder holding labels.csv, as NAME=PATH or NAME:ATTRIBUTE=PATH for one attribute",
    ),
    "features": (
        str,
        "handcrafted",
        "semantic features of difficult-sample selection: handcrafted or hf:<CLIP path or hub id>",
    ),
    "gates": (
        str,
        None,
        "gate profile (TOML); default fixtures/gates/default.toml when present, else the one iqa-eval ships",
    ),
    "report_dir": (str, "reports", "where iqa-report.json and iqa-report.html are written"),
    "cache": (str, ".iqa_cache", "directory of the response cache and generated datasets"),
    "no_cache": (bool, False, "do not read or write cached answers"),
    "concurrency": (int, 8, "maximum concurrent requests per model"),
    "seed": (int, 0, "seed of every random choice (pairing, order swaps, bootstrap)"),
    "base_url": (list, [], "OpenAI-compatible server URL (repeatable: requests are spread over them)"),
    "image_detail": (str, "high", "image detail setting sent to API models (low, high, auto)"),
    "max_tokens": (int, 512, "maximum tokens per answer"),
    "temperature": (float, 0.0, "sampling temperature (answers are cached only at 0 or with a seed)"),
    "timeout": (float, 120.0, "seconds before a request counts as timed out (and is retried)"),
    "device": (str, "cpu", "torch device of local (hf:) models"),
    "dtype": (str, "float32", "torch dtype of local (hf:) models"),
    "budget_usd": (
        float,
        None,
        "stop sending API requests once the run has spent this many USD (needs a known price)",
    ),
    "max_requests": (int, None, "stop sending requests once the run has sent this many (retries count)"),
    "prices": (str, None, "TOML file of USD prices per 1M tokens, over the built-in table"),
    "compat": (
        str,
        "default",
        "'paper' reproduces the study: anchor-first DS, seed 20, fixed labels, re-asks",
    ),
    "paper_random_fill": (bool, False, "paper mode only: score failed answers at random, as the study did"),
    "study": (
        bool,
        False,
        "run exactly the study's cells on the public datasets given with --iqa-data (the built-in set "
        "stays out), with the classical measures as stage-2 reference rows",
    ),
    "baseline": (str, None, "previous iqa-report.json: fail cells significantly worse than there"),
    "shard": (str, None, "run share K/N of the cells (give each shard its own report dir)"),
}


def read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    section = data.get("tool", {}).get("iqa_eval", {})
    unknown = set(section) - set(OPTIONS)
    if unknown:
        raise ConfigError(
            f"{path} [tool.iqa_eval]: unknown key(s) {sorted(unknown)}; known: {sorted(OPTIONS)}"
        )
    return dict(section)


def coerce(name: str, value: Any, where: str) -> Any:
    kind = OPTIONS[name][0]
    if value is None:
        return None
    try:
        if kind is list:
            return [str(v) for v in (value if isinstance(value, list) else [value])]
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} = {value!r} is not a valid {kind.__name__}") from None


def build(root: Path, values: dict[str, Any]) -> RunConfig:
    models = tuple(dict.fromkeys(values["model"]))
    if not models:
        raise ConfigError("no model to evaluate: give --iqa-model SPEC")
    concurrency = values["concurrency"]
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    gates = values["gates"]
    if gates is None:
        gates = str(DEFAULT_GATES if (root / DEFAULT_GATES).is_file() else PACKAGED_GATES)
    if values["max_tokens"] < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {values['max_tokens']}")
    if values["compat"] not in ("default", "paper"):
        raise ConfigError(f"compat must be 'default' or 'paper', got {values['compat']!r}")
    if values["paper_random_fill"] and values["compat"] != "paper":
        raise ConfigError("paper_random_fill only exists in paper compatibility mode (--iqa-compat paper)")
    if values["image_detail"] not in ("low", "high", "auto"):
        raise ConfigError(f"image_detail must be low, high or auto, got {values['image_detail']!r}")
    budget = values["budget_usd"]
    if budget is not None and not budget >= 0:
        raise ConfigError(f"budget_usd must be a non-negative number of USD, got {budget}")
    max_requests = values["max_requests"]
    if max_requests is not None and max_requests < 0:
        raise ConfigError(f"max_requests must be a non-negative number of requests, got {max_requests}")
    try:
        prices = PriceTable.load(root / values["prices"]) if values["prices"] else PriceTable()
    except PricesError as err:
        raise ConfigError(str(err)) from None
    features = values["features"]
    if features != "handcrafted" and not (features.startswith("hf:") and len(features) > 3):
        raise ConfigError(f"features must be 'handcrafted' or 'hf:<CLIP path or hub id>', got {features!r}")
    data = parse_data(root, values["data"])
    if values["study"]:
        others = [name for name, _ in data if name not in study.DATASETS]
        if others:
            raise ConfigError(
                f"study: {', '.join(others)} is not a dataset of the study; --iqa-study runs only "
                f"{', '.join(study.DATASETS)} (drop --iqa-study to run other data)"
            )
    config = RunConfig(
        root=root,
        data=data,
        study=values["study"],
        features=features,
        models=models,
        gates=Path(gates) if gates else None,
        report_dir=Path(values["report_dir"]),
        cache_dir=Path(values["cache"]),
        use_cache=not values["no_cache"],
        concurrency=concurrency,
        seed=values["seed"],
        decoding=Decoding(temperature=values["temperature"], max_tokens=values["max_tokens"]),
        paper=values["compat"] == "paper",
        random_fill=values["paper_random_fill"],
        model_options=ModelOptions(
            base_urls=tuple(values["base_url"]),
            image_detail=values["image_detail"],
            timeout_s=values["timeout"],
            device=values["device"],
            dtype=values["dtype"],
        ),
        budget_usd=budget,
        max_requests=max_requests,
        prices=prices,
        baseline=Path(values["baseline"]) if values["baseline"] else None,
        shard=parse_shard(values["shard"]) if values["shard"] else None,
    )
    return config


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` as (K, N) with 1 <= K <= N: shard numbers are 1-based, as CI matrices count."""
    index, sep, count = text.partition("/")
    if sep and index.strip().isdigit() and count.strip().isdigit():
        k, n = int(index), int(count)
        if 1 <= k <= n:
            return k, n
    raise ConfigError(f"shard must be K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")


def parse_data(root: Path, specs: list[str]) -> tuple[tuple[str, Path], ...]:
    """``NAME=PATH`` specs as (name as given, path), checked before anything is loaded: a known
    name with its folder, or your own data as ``NAME`` or ``NAME:ATTRIBUTE`` with a CSV file or a
    folder holding labels.csv; each dataset once (relative paths are taken from the project root)."""
    parsed: dict[str, tuple[str, Path]] = {}
    for spec in specs:
        name, sep, given = (part.strip() for part in spec.partition("="))
        if not sep or not name or not given:
            raise ConfigError(
                f"data {spec!r}: expected NAME=PATH, e.g. kadid10k=/data/kadid10k or "
                "mine:color=shots/labels.csv"
            )
        path = Path(given).expanduser()
        try:
            dataset = source(name, root / path)
        except DatasetError as err:
            raise ConfigError(f"data {spec!r}: {err}") from None
        if dataset in parsed:
            raise ConfigError(f"data {spec!r}: {dataset} is given twice")
        parsed[dataset] = (name, path)
    return tuple(parsed.values())
