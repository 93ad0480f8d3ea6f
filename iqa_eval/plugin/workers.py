"""Where cells run: pytest-xdist's workers (the scheduler that keeps a scope on one worker, the
model identities the controller hands each worker) and ``--iqa-shard``'s share of a CI matrix."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from iqa_eval.execution.engine import Unidentified
from iqa_eval.models.base import ModelIdentity
from iqa_eval.types import CellSpec

WORKER_USAGE = "iqa_eval_usage"
WORKER_NOTICES = "iqa_eval_notices"
IDENTITIES = "iqa_eval_identities"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def identity_to_wire(identity: ModelIdentity | Unidentified) -> dict[str, Any]:
    if isinstance(identity, Unidentified):
        return {"unidentified": [identity.reason, identity.detail]}
    return identity.to_record()


def identity_from_wire(spec: str, wire: dict[str, Any]) -> ModelIdentity | Unidentified:
    if "unidentified" in wire:
        reason, detail = wire["unidentified"]
        return Unidentified(str(reason), str(detail))
    return ModelIdentity.from_record(spec, wire)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n`` (``load``) or ``--dist loadgroup``, keep each group's cells on one worker; any
    other ``--dist`` the user chose is theirs."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from iqa_eval.plugin.scheduling import CellScheduling

    return CellScheduling(config, log)


def cell_id(item: pytest.Item) -> str:
    """The cell an item tests (its node id when it tests none): what a shard is chosen by."""
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec is not None else ():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], CellSpec):
            return value[1].id
    return item.nodeid


def shard_of(cell_id: str, count: int) -> int:
    """The 1-based shard of a cell: a hash, not the collection order, so every machine of a CI
    matrix agrees whatever it collected, and stage-1 and stage-2 cells spread alike."""
    return int.from_bytes(hashlib.sha256(cell_id.encode()).digest()[:8], "big") % count + 1
