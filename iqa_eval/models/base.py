"""The one interface every model answers through: experts, API models, local models, replays.

Keeping experts behind the same interface as an MLLM means the default run exercises the whole
path (prompt, images with roles, text answer, parsing) instead of a shortcut that skips it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from iqa_eval.types import SETTINGS, Answer, Query, Setting


class TransientModelError(Exception):
    """A failure worth retrying (rate limit, 5xx, timeout, dropped connection, empty body)."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


class PermanentModelError(Exception):
    """A failure that every further request would repeat (bad key, unknown model, bad request).

    The engine stops the run on the first one, so the user sees one clear message instead of
    thousands of identical failures.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ModelSpecError(ValueError):
    """A model spec that names no known kind of model, or a model that cannot be set up from it."""


@dataclass(frozen=True)
class Capabilities:
    """What a model can take; cells beyond it are skipped with the reason, not failed."""

    max_images: int | None = None
    settings: tuple[Setting, ...] = SETTINGS


@dataclass(frozen=True)
class ModelOptions:
    """Run-wide settings for clients; each kind of client reads the ones it understands."""

    base_urls: tuple[str, ...] = ()
    image_detail: str = "high"
    timeout_s: float = 120.0
    device: str = "cpu"
    dtype: str = "float32"


class ModelClient(abc.ABC):
    """A model the suite can query.

    ``fingerprint`` enters the cache key next to the query key: it must change whenever the
    model's answers could change (another model version, another expert implementation).
    ``cacheable`` says whether deterministic answers of this client may be stored at all.
    """

    spec: str
    fingerprint: str
    capabilities: Capabilities = Capabilities()
    cacheable: bool = True

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
