"""The registry of psychophysical methods: one per protocol, found by its name."""

from __future__ import annotations

import pytest

from iqa_eval.protocols.registry import METHODS, method
from iqa_eval.types import PROTOCOLS


def test_every_protocol_has_the_method_of_its_name_in_the_suites_order():
    assert tuple(METHODS) == PROTOCOLS
    assert all(method(name).name == name for name in PROTOCOLS)


def test_an_unknown_protocol_is_a_clear_error():
    with pytest.raises(ValueError, match=r"protocol 'xs' is not available; known: ss, ds, ms"):
        method("xs")  # type: ignore[arg-type]
