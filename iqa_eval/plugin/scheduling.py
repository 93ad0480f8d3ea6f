"""How pytest-xdist hands out the suite's tests: cells that share work go to the same worker.

The cells of one model, dataset, setting and attribute share their images (every prompting
system and metamorphic relation judges the same stimuli, and an expert measures each stimulus
once per process), and the stage-2 cells of a setting need every stage-1 cell of that setting
(the best system is chosen from all of them). Each model, dataset and setting is therefore one
scope, on one worker: no query is ever needed by two workers, so ``-n N`` sends exactly the
requests ``-n 0`` sends, where smaller scopes made the worker of a stage-2 cell ask again what
another worker was still asking (26% more requests against an API model).

pytest-xdist's own ``loadgroup`` cannot be used for this: it groups by ``xdist_group`` marks
through node ids it rewrites by a private attribute that pytest 9.2 no longer reads, so the
marks are silently ignored. The scope is read from the cell's id instead, which names it.

Imported only by the ``pytest_xdist_make_scheduler`` hook, that is, only when xdist runs.
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

from iqa_eval.plugin.scopes import cell_scope


class CellScheduling(LoadGroupScheduling):  # type: ignore[misc]
    """``loadgroup`` with the cells' scopes; other tests are balanced one by one (or by their own
    ``xdist_group``, where pytest-xdist can still see it)."""

    def _split_scope(self, nodeid: str) -> str:
        scope = cell_scope(nodeid)
        return str(super()._split_scope(nodeid)) if scope is None else scope
