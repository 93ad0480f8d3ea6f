"""Which cells share work, read from a test's node id: what xdist's scheduler keeps on one worker
and what a worker executes at once.

The cells of one model, dataset and setting share their images, and a stage-2 cell needs every
stage-1 cell of its setting; no query is needed in two scopes.
"""

from __future__ import annotations

from iqa_eval.types import ATTRIBUTES, SETTINGS


def cell_scope(nodeid: str) -> str | None:
    """The scope of a cell test's node id (``path::test[<cell id>]``), None for other tests.

    The cell id is read from the right: a model spec (``hf:/models/llava``) or a dataset name may
    hold slashes, the last four fields of a cell id cannot.
    """
    _, _, name = nodeid.partition("::")  # the path ends at the first "::", the cell id may hold more
    _, bracket, param = name.partition("[")
    if not bracket or not param.endswith("]"):
        return None
    parts = param[:-1].rsplit("/", 4)
    if len(parts) != 5 or "/" not in parts[0]:
        return None
    model_dataset, setting_attribute, _, _, _ = parts
    setting, _, attribute = setting_attribute.partition("_")
    if setting not in SETTINGS or attribute not in ATTRIBUTES:
        return None
    return f"iqa-eval:{model_dataset}/{setting}"
