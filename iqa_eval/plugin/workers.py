"""Where cells run: pytest-xdist's workers (the scheduler that keeps a scope on one worker, the
model identities the controller hands each worker, each scope's queries sent at once) and
``--iqa-shard``'s share of a CI matrix."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from iqa_eval.evaluation.metamorphic import Case
from iqa_eval.evaluation.suite import Suite, Unsupported
from iqa_eval.execution.engine import Unidentified
from iqa_eval.models.base import ModelIdentity
from iqa_eval.plugin.cells import SUITE, selected_relations, selected_specs
from iqa_eval.plugin.options import USER_ERRORS
from iqa_eval.plugin.scopes import cell_scope
from iqa_eval.types import CellSpec, Stage2Cell

EXECUTED_SCOPES = pytest.StashKey[set[str]]()
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


def execute_up_front(
    suite: Suite,
    selected: list[CellSpec | Stage2Cell],
    relations: Sequence[tuple[CellSpec, Sequence[Case]]] = (),
) -> None:
    """Send every query of the selected cells at once: their stage-1 cells, the stage-1 cells of
    the settings their stage-2 cells choose a system from and the metamorphic cases, then the
    stage-2 cells themselves.

    One dispatch keeps ``concurrency`` requests in flight across cell boundaries; cell by cell,
    each cell's last wave of requests would leave the model idle, and each metamorphic test would
    wait a whole round trip of its own.
    """
    stage2 = [cell for cell in selected if isinstance(cell, Stage2Cell)]
    groups = {cell.group for cell in stage2}
    stage1 = [cell for cell in selected if isinstance(cell, CellSpec)]
    suite.execute([*stage1, *(s for s in suite.stage1_specs() if s.group in groups)], relations)
    chosen = []
    for cell in stage2:
        try:
            chosen.append(suite.stage2_spec(cell)[0])
        except Unsupported:
            continue  # the test itself skips with the reason
    suite.execute(chosen)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """In an xdist worker, execute the whole scope of the first cell it runs from that scope.

    The scheduler hands a worker all the cells of a scope (model, dataset, setting), and every
    worker holds the whole selection, so the worker knows them all at its first cell. Without
    this, each cell sent its queries on its own and ``-n 2`` ran slower than one process against
    an API model. A user's error here is left to the cell's own test, which reports it.
    """
    config = item.config
    scope = cell_scope(item.nodeid)
    if not is_worker(config) or scope is None:
        return
    done = config.stash.setdefault(EXECUTED_SCOPES, set())
    if scope in done:
        return
    done.add(scope)
    same_scope = [other for other in item.session.items if cell_scope(other.nodeid) == scope]
    suite = config.stash[SUITE]
    try:
        execute_up_front(suite, selected_specs(same_scope), selected_relations(suite, same_scope))
    except USER_ERRORS:
        return


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n`` (``load``) or ``--dist loadgroup``, keep each group's cells on one worker; any
    other ``--dist`` the user chose is theirs."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from iqa_eval.plugin.scheduling import CellScheduling  # imports xdist: only when it runs

    return CellScheduling(config, log)


def cell_id(item: pytest.Item) -> str:
    """The cell an item tests (its node id when it tests none): what a shard is chosen by."""
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec is not None else ():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], CellSpec | Stage2Cell):
            return value[1].id
    return item.nodeid


def shard_of(cell_id: str, count: int) -> int:
    """The 1-based shard of a cell: a hash, not the collection order, so every machine of a CI
    matrix agrees whatever it collected, and stage-1 and stage-2 cells spread alike."""
    return int.from_bytes(hashlib.sha256(cell_id.encode()).digest()[:8], "big") % count + 1
