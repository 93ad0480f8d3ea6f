"""The one interface every model answers through: experts, API models, local models, replays.

Keeping experts behind the same interface as an MLLM means the default run exercises the whole
path (prompt, images with roles, text answer, parsing) instead of a shortcut that skips it.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iqa_eval.types import SETTINGS, Answer, Query, Setting

INFRASTRUCTURE_FAILURES = frozenset(
    {
        "connection",
        "timeout",
        "server_error",
        "rate_limited",
        "malformed",
        "unreachable",
        "budget",
        "auth",
        "tls",
        "model_not_found",
        "bad_request",
        "not_recorded",
    }
)
"""Reasons an answer is missing that say nothing about the model's judgement: the query never
reached the model, or its answer never came back. A cell with any of them could not be measured
(an ``error``), where an unparseable or refused answer is the model's own doing and counts
against its coverage."""


class TransientModelError(Exception):
    """A failure worth retrying (rate limit, 5xx, timeout, dropped connection, empty body)."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


class PermanentModelError(Exception):
    """A failure that every further request would repeat (bad key, unknown model, bad request).

    The engine stops sending to that model on the first one and marks the rest of its queries
    with the same reason, so the user sees one clear message instead of thousands of identical
    failures.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ModelSpecError(ValueError):
    """A model spec that names no known kind of model, or a model that cannot be set up from it."""


class UnreachableError(PermanentModelError):
    """Every endpoint of a model failed again and again without answering (refused, unresolved,
    timing out, 5xx): waiting out the retries of every query would only delay the verdict."""

    def __init__(self, detail: str) -> None:
        super().__init__("unreachable", detail)


@dataclass(frozen=True)
class ModelIdentity:
    """Which model gave an answer: the spec's fingerprint plus what the server says of itself.

    A name is not an identity: the weights behind ``openai:mymodel`` can be replaced while the
    name stays. ``served`` holds what the serving side discloses (the ``model`` and
    ``system_fingerprint`` of its answers, its ``/v1/models`` entry), so a cached answer is
    reused only while the server still describes itself the same way. A server that discloses
    nothing leaves ``served`` empty: then a revision pinned in the spec
    (``openai:mymodel@<commit>``) is what tells two deployments apart.
    """

    spec: str
    fingerprint: str
    served: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, spec: str, fingerprint: str, served: Mapping[str, object] | None = None) -> ModelIdentity:
        pairs = ((str(k), str(v)) for k, v in (served or {}).items() if v is not None and str(v) != "")
        return cls(spec, fingerprint, tuple(sorted(pairs)))

    @property
    def key(self) -> str:
        """What cached answers are filed under: the fingerprint alone when nothing was served."""
        if not self.served:
            return self.fingerprint
        blob = json.dumps(self.served, separators=(",", ":")).encode()
        return f"{self.fingerprint}#{hashlib.sha256(blob).hexdigest()[:16]}"

    def describe(self) -> str:
        if not self.served:
            return self.fingerprint
        return f"{self.fingerprint} ({', '.join(f'{k}={v}' for k, v in self.served)})"

    def to_record(self) -> dict[str, Any]:
        return {"key": self.key, "fingerprint": self.fingerprint, "served": dict(self.served)}

    @classmethod
    def from_record(cls, spec: str, record: Mapping[str, Any]) -> ModelIdentity:
        return cls.of(spec, str(record["fingerprint"]), record.get("served") or {})


@dataclass(frozen=True)
class Capabilities:
    """What a model can take; cells beyond it are skipped with the reason, not failed."""

    max_images: int | None = None
    settings: tuple[Setting, ...] = SETTINGS
    probabilities: bool = False
    """Whether it can answer with the probabilities of answer words (local logits, API
    logprobs): only such models get ``levels`` cells."""


@dataclass(frozen=True)
class ModelOptions:
    """Run-wide settings for clients; each kind of client reads the ones it understands."""

    base_urls: tuple[str, ...] = ()
    image_detail: str = "high"
    timeout_s: float = 120.0
    device: str = "cpu"
    dtype: str = "float32"


NO_PROBABILITIES = "no_logprobs"
"""The failure of a ``levels`` query whose model gives no probabilities after all (its server
refused logprobs); once the client knows, it raises :class:`NotSent` with it instead of asking."""


class NotSent(Exception):
    """Raised by a client that knows a query's answer without sending it (its server refused
    what the query needs while the query waited): the engine counts no request for it."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.detail)
        self.answer = answer


class ModelClient(abc.ABC):
    """A model the suite can query.

    ``fingerprint`` enters the cache key next to the query key: it must change whenever the
    model's answers could change (another model version, another expert implementation).
    ``cacheable`` says whether deterministic answers of this client may be stored at all.
    ``priced`` says whether its answers cost money, so a budget can only hold for a known price.
    """

    spec: str
    fingerprint: str
    capabilities: Capabilities = Capabilities()
    cacheable: bool = True

    @property
    def price_unknown(self) -> str | None:
        """Why a budget in USD cannot hold for this model (its price is unknown), or None."""
        return None

    async def identify(self) -> ModelIdentity:
        """The identity its answers are cached under, established before any cached answer is used.

        Local models and experts are what their fingerprint says (weights digest, versioned
        measures); a client whose answers come from a server asks the server.
        """
        return ModelIdentity.of(self.spec, self.fingerprint)

    def estimate_cost(self, queries: Sequence[Query]) -> float | None:
        """USD that sending ``queries`` may cost at most, or None when they cost nothing or the
        price is unknown; said before dispatch, so a user can stop a run that would cost too much."""
        del queries
        return None

    def refuses_probabilities(self) -> str | None:
        """Why a model whose capabilities promise probabilities cannot give them after all (its
        server refused logprobs), once it is known; None while it gives them or was never asked."""
        return None

    def notices(self) -> list[str]:
        """What the client has to tell the user once (an endpoint taken out of rotation)."""
        return []

    @abc.abstractmethod
    async def answer(self, query: Query) -> Answer:
        """Answer one query, or raise TransientModelError / PermanentModelError."""

    def use_cache_dir(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Where the client may keep what it derives from stimuli, shared across runs and processes.

        Called once before the first answer, and only when caching is on; answers themselves are
        the engine's to cache.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most clients hold nothing
        """Release connections or weights."""
