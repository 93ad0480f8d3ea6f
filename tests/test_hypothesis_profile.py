"""The project's property tests carry no timing-sensitive deadline (see conftest.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import settings

TESTS = Path(__file__).resolve().parent


def test_the_loaded_profile_has_no_deadline() -> None:
    assert settings.default.deadline is None


def test_every_explicit_settings_call_says_deadline_none() -> None:
    """Explicit settings inherit the profile, but a reader of one test should see it too, and a
    copy of a test into another suite should not bring back the deadline."""
    missing = []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "settings"):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            inherits = bool(node.args)  # settings(FUZZ, ...) inherits FUZZ's deadline
            deadline = keywords.get("deadline")
            if not inherits and not (isinstance(deadline, ast.Constant) and deadline.value is None):
                missing.append(f"{path.name}:{node.lineno}")
    assert not missing, f"settings() without deadline=None: {missing}"
