"""How hard the engine pushes an endpoint: retries with exponential backoff and jitter (a
server's ``retry-after`` wins), and a concurrency limit that halves on rate limits and grows back
by one per window of successes."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass


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

    A burst of 429s answers requests that were all sent under the same limit, so only the first
    of them halves it: each slot carries the epoch it was taken in, and a rate limit from an
    epoch before the last cut is already accounted for (without this, 64 requests rejected
    together would cut 64 to 1). A server's ``retry-after`` also pauses every new request
    until it has passed.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self._active = 0
        self._successes = 0
        self._epoch = 0
        self._resume_at = 0.0
        self._cond = asyncio.Condition()

    async def acquire(self) -> int:
        """Take a slot; returns the epoch to hand back to :meth:`release`."""
        async with self._cond:
            while self._active >= self.limit:
                await self._cond.wait()
            self._active += 1
            epoch = self._epoch
        pause = self._resume_at - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)  # holding the slot: nothing should be sent meanwhile
        return epoch

    def hold_off(self, seconds: float) -> None:
        """Send nothing new for ``seconds`` (a server's retry-after)."""
        self._resume_at = max(self._resume_at, time.monotonic() + max(seconds, 0.0))

    async def release(self, rate_limited: bool, epoch: int | None = None) -> None:
        async with self._cond:
            self._active -= 1
            if rate_limited:
                if epoch is None or epoch == self._epoch:
                    self.limit = max(1, self.limit // 2)
                    self._epoch += 1
                self._successes = 0
            else:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify(max(0, self.limit - self._active))
