"""Model specs (``expert``, ``openai:<model>``, ``hf:<model>``, ``replay:<file>`` ...) to clients,
with one clear error for a bad spec.

Adapters are imported only when their spec is used, so a run of the experts never imports an
HTTP client or transformers.
"""

from __future__ import annotations

from iqa_eval.images import ImageStore
from iqa_eval.models.base import ModelClient, ModelOptions
from iqa_eval.models.base import ModelSpecError as ModelSpecError
from iqa_eval.models.pricing import PriceTable

SPEC_FORMS = (
    "expert",
    "expert:<metric>",
    "openai:<model>",
    "hf:<local directory or hub id>",
    "replay:<file>",
    "replay:<file>#<fingerprint>",
)


def make_client(
    spec: str, store: ImageStore, options: ModelOptions | None = None, prices: PriceTable | None = None
) -> ModelClient:
    kind = spec.partition(":")[0]
    try:
        if kind == "expert":
            from iqa_eval.models.expert import make_expert

            return make_expert(spec, store)
        if kind == "openai":
            from iqa_eval.models.openai_api import OpenAIModel

            return OpenAIModel(spec, store, options, prices)
        if kind == "hf":
            from iqa_eval.models.hf import HFModel

            return HFModel(spec, store, options)
        if kind == "replay":
            from iqa_eval.models.replay import ReplayModel

            return ReplayModel(spec)
    except ValueError as err:
        raise ModelSpecError(f"model spec {spec!r}: {err}") from None
    raise ModelSpecError(f"unknown model spec {spec!r}; use one of: {', '.join(SPEC_FORMS)}")
