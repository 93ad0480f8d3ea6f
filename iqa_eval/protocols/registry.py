"""The psychophysical methods by protocol name: the one list the suite's cells are built from."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from iqa_eval.protocols.base import Method
from iqa_eval.protocols.ds import DS
from iqa_eval.protocols.ms import MS
from iqa_eval.protocols.ss import SS
from iqa_eval.types import Protocol

_METHODS: tuple[Method, ...] = (SS, DS, MS)  # typed, so each class is checked against Method
METHODS: Mapping[Protocol, Method] = MappingProxyType({m.name: m for m in _METHODS})
"""Named ``METHODS``, not ``PROTOCOLS``: ``iqa_eval.types.PROTOCOLS`` already lists the names."""


def method(protocol: Protocol) -> Method:
    """The method of ``protocol``; a ValueError names the protocols there are (a cell built from
    user input may carry any string, whatever its type says)."""
    found = METHODS.get(protocol)
    if found is None:
        raise ValueError(f"protocol {protocol!r} is not available; known: {', '.join(METHODS)}")
    return found
