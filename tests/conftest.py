"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fake_openai import accurate_responder, fake_openai, reversed_responder  # noqa: F401
from hypothesis import settings

from iqa_eval.datasets.builtin import BuiltinDataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]

# Hypothesis's default 200 ms deadline measures the machine, not the code: on a busy two-core
# runner a correct example can take longer and the test fails. Every property here runs
# without one; a test that sets its own settings inherits this unless it says otherwise.
settings.register_profile("iqa", deadline=None)
settings.load_profile("iqa")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory per test process: the built-in dataset is generated once in it."""
    path = tmp_path_factory.getbasetemp() / "iqa-cache"
    BuiltinDataset(path).cells()
    return path


@pytest.fixture(scope="session")
def builtin(shared_cache: Path) -> BuiltinDataset:
    dataset = BuiltinDataset(shared_cache)
    dataset.items("fr", "structure")  # builds (or verifies) the files once
    return dataset


@pytest.fixture
def suite_dir(pytester: pytest.Pytester, shared_cache: Path) -> pytest.Pytester:
    """A pytester directory holding a copy of the suite's test files and gate profile."""
    for folder in ("test_protocols", "test_attributes", "fixtures/gates"):
        shutil.copytree(REPO / folder, pytester.path / folder)
    pytester.makeini("[pytest]\ntestpaths = test_protocols test_attributes\n")
    return pytester
