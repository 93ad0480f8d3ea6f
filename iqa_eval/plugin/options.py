"""The plugin's options: ``--iqa-*`` flags and their ini keys, read with ``[tool.iqa_eval]`` into the
run's configuration, and the errors that are the user's to fix.

Which source wins is evaluation.config's rule (command line, then ``[tool.iqa_eval]``, then the
ini file, then the defaults); this module only knows where pytest keeps each of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from iqa_eval.datasets.base import DatasetError
from iqa_eval.evaluation.config import OPTIONS, ConfigError, RunConfig, build, coerce, read_pyproject
from iqa_eval.evaluation.gates import GateError
from iqa_eval.images import ImageError
from iqa_eval.models.registry import ModelSpecError
from iqa_eval.sampling import SelectionError

USER_ERRORS = (ConfigError, GateError, ModelSpecError, DatasetError, ImageError, SelectionError)
"""Errors in what the user gave (options, files, specs): one line and a usage error, no traceback."""


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


def run_config(config: pytest.Config) -> RunConfig:
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
