"""Model specs (``expert``, ``expert:<name>``, ...) to clients, with one clear error for a bad spec."""

from __future__ import annotations

from iqa_eval.images import ImageStore
from iqa_eval.models.base import ModelClient, ModelOptions

SPEC_FORMS = ("expert", "expert:<metric>")


class ModelSpecError(ValueError):
    """A model spec that names no known kind of model."""


def make_client(spec: str, store: ImageStore, options: ModelOptions | None = None) -> ModelClient:
    del options  # read by the API and local-model clients
    kind = spec.partition(":")[0]
    if kind == "expert":
        from iqa_eval.experts.panel import make_expert

        try:
            return make_expert(spec, store)
        except ValueError as err:
            raise ModelSpecError(f"model spec {spec!r}: {err}") from None
    raise ModelSpecError(f"unknown model spec {spec!r}; use one of: {', '.join(SPEC_FORMS)}")
