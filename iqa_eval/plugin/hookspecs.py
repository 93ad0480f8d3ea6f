"""Hooks the plugin offers to conftest.py files and other plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from iqa_eval.images import ImageStore
    from iqa_eval.models.base import ModelClient


@pytest.hookspec(firstresult=True)
def pytest_iqa_make_model(spec: str, store: ImageStore) -> ModelClient | None:
    """Return a client for ``spec``, or None to leave it to the built-in kinds.

    This is how a team plugs in a model the suite does not know (an in-house server, a wrapper
    with special preprocessing) without forking: implement ``ModelClient`` and return it here
    for the spec names you choose.
    """
