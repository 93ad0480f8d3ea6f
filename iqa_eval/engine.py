"""Executes queries once: deduplicate, read the cache, dispatch the rest concurrently.

A run costs ``unique queries × latency / concurrency`` rather than the sum over tests. Transient
failures are retried with exponential backoff and jitter (a server's ``retry-after`` wins); a
rate limit halves the concurrency, which then grows back by one per window of successes. A
permanent failure (bad key, unknown model) stops the run with one message, after the answers
already received are safely in the cache.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from iqa_eval.cache import ResponseCache
from iqa_eval.models.base import ModelClient, PermanentModelError, TransientModelError
from iqa_eval.types import Answer, Query


class RunAborted(RuntimeError):
    """A permanent model error: every further request would fail the same way."""


@dataclass
class EngineStats:
    requested: int = 0
    unique: int = 0
    cached: int = 0
    dispatched: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, other: EngineStats) -> None:
        for name in (
            "requested",
            "unique",
            "cached",
            "dispatched",
            "failed",
            "retries",
            "rate_limited",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "wall_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return float(min(self.max_delay_s, self.base_delay_s * 2**attempt * (0.5 + rng.random())))


class AdaptiveLimit:
    """A concurrency limit that halves on rate limits and grows back slowly (AIMD).

    Waiters are woken one per freed slot, never all at once: with thousands of queued
    queries a broadcast would cost a wake-up per waiter per completion.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self._active = 0
        self._successes = 0
        self._cond = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._cond:
            while self._active >= self.limit:
                await self._cond.wait()
            self._active += 1

    async def release(self, rate_limited: bool) -> None:
        async with self._cond:
            self._active -= 1
            if rate_limited:
                self.limit = max(1, self.limit // 2)
                self._successes = 0
            else:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify(max(0, self.limit - self._active))


class Engine:
    def __init__(
        self,
        cache: ResponseCache | None,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        progress: bool = True,
        seed: int = 0,
    ) -> None:
        self.cache = cache
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.progress = progress
        self._rng = random.Random(seed)  # jitter only: it never changes what is asked
        self.stats = EngineStats()

    def run(self, client: ModelClient, queries: Sequence[Query]) -> dict[str, Answer]:
        """Answers by query key for every query; failures are answers with an error."""
        return asyncio.run(self.run_async(client, queries))

    async def run_async(self, client: ModelClient, queries: Sequence[Query]) -> dict[str, Answer]:
        start = time.perf_counter()
        stats = EngineStats(requested=len(queries))
        unique = list({q.key: q for q in queries}.values())
        stats.unique = len(unique)
        answers: dict[str, Answer] = {}
        if self.cache is not None and client.cacheable:
            answers.update(self.cache.get_many(client.fingerprint, [q.key for q in unique]))
        stats.cached = len(answers)
        todo = [q for q in unique if q.key not in answers]
        stats.dispatched = len(todo)
        if todo:
            await self._dispatch(client, todo, answers, stats)
        stats.wall_s = time.perf_counter() - start
        self.stats.add(stats)
        return answers

    async def _dispatch(
        self, client: ModelClient, todo: Sequence[Query], answers: dict[str, Answer], stats: EngineStats
    ) -> None:
        limit = AdaptiveLimit(self.concurrency)
        bar = tqdm(
            total=len(todo),
            desc=client.spec,
            unit="q",
            disable=None if self.progress else True,
            leave=False,
            dynamic_ncols=True,
        )
        abort: list[PermanentModelError] = []

        async def one(query: Query) -> None:
            answer = await self._ask(client, query, limit, stats, abort)
            answers[query.key] = answer
            if answer.ok:
                stats.prompt_tokens += answer.usage.prompt_tokens
                stats.completion_tokens += answer.usage.completion_tokens
                stats.cost_usd += answer.cost_usd
                if self.cache is not None and client.cacheable and query.decoding.deterministic:
                    self.cache.put(client.fingerprint, query.key, answer)
            else:
                stats.failed += 1
                reason = answer.error or "unknown"
                stats.failures[reason] = stats.failures.get(reason, 0) + 1
            bar.update(1)
            bar.set_postfix(failed=stats.failed, refresh=False)

        try:
            tasks = [asyncio.create_task(one(q)) for q in todo]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            bar.close()
        if abort:
            err = abort[0]
            raise RunAborted(f"{client.spec}: {err.reason}: {err.detail}".rstrip(": "))

    async def _ask(
        self,
        client: ModelClient,
        query: Query,
        limit: AdaptiveLimit,
        stats: EngineStats,
        abort: list[PermanentModelError],
    ) -> Answer:
        last: TransientModelError | None = None
        for attempt in range(self.retry.max_attempts):
            if abort:
                raise asyncio.CancelledError
            await limit.acquire()
            rate_limited = False
            try:
                return await client.answer(query)
            except TransientModelError as err:
                last = err
                rate_limited = err.reason == "rate_limited"
                stats.rate_limited += rate_limited
            except PermanentModelError as err:
                abort.append(err)
                raise RunAborted(str(err)) from None
            finally:
                await limit.release(rate_limited)
            if attempt + 1 < self.retry.max_attempts:
                stats.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, last.retry_after, self._rng))
        assert last is not None
        return Answer(
            None,
            error=last.reason,
            detail=f"{last.detail} (gave up after {self.retry.max_attempts} attempts)",
        )
