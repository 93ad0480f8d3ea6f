"""The engine: dedupe, cache, bounded concurrency, retries, and stopping on permanent errors."""

import asyncio

import pytest

from iqa_eval.cache import ResponseCache
from iqa_eval.engine import AdaptiveLimit, Engine, RetryPolicy, RunAborted
from iqa_eval.models.base import ModelClient, PermanentModelError, TransientModelError
from iqa_eval.types import Answer, Decoding, Query

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)


def query(i, temperature=0.0):
    return Query("nr", "ss", "standard", "t", "h", f"prompt {i}", (), Decoding(temperature=temperature))


class Scripted(ModelClient):
    """Answers 'Score: i'; fails transiently on the first `flaky` attempts of each query."""

    def __init__(self, flaky=0, permanent_at=None, delay=0.0):
        self.spec = self.fingerprint = "scripted"
        self.calls = {}
        self.flaky, self.permanent_at, self.delay = flaky, permanent_at, delay
        self.active = self.peak = 0

    async def answer(self, q):
        self.calls[q.text] = self.calls.get(q.text, 0) + 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            if self.permanent_at is not None and q.text == f"prompt {self.permanent_at}":
                raise PermanentModelError("auth", "invalid API key")
            if self.calls[q.text] <= self.flaky:
                raise TransientModelError("server_error", "502")
            return Answer(f"Score: {q.text.split()[-1]}")
        finally:
            self.active -= 1


def test_duplicates_are_asked_once_and_cache_serves_reruns(tmp_path):
    client = Scripted()
    queries = [query(i % 5) for i in range(20)]
    engine = Engine(ResponseCache(tmp_path), concurrency=4, progress=False)
    answers = engine.run(client, queries)
    assert len(answers) == 5 and sum(client.calls.values()) == 5
    again = Engine(ResponseCache(tmp_path), concurrency=4, progress=False)
    assert again.run(client, queries) == {k: Answer(a.text, cached=True) for k, a in answers.items()}
    assert sum(client.calls.values()) == 5
    assert again.stats.cached == 5 and again.stats.dispatched == 0


def test_non_deterministic_queries_are_not_cached(tmp_path):
    cache = ResponseCache(tmp_path)
    Engine(cache, progress=False).run(Scripted(), [query(1, temperature=0.7)])
    assert cache.count() == 0


def test_transient_failures_are_retried_to_the_same_result():
    client = Scripted(flaky=2)
    engine = Engine(None, concurrency=3, retry=FAST, progress=False)
    answers = engine.run(client, [query(i) for i in range(10)])
    assert all(a.ok for a in answers.values())
    assert engine.stats.retries == 20


def test_exhausted_retries_become_failures_not_scores(tmp_path):
    cache = ResponseCache(tmp_path)
    engine = Engine(cache, retry=FAST, progress=False)
    answers = engine.run(Scripted(flaky=99), [query(1)])
    (answer,) = answers.values()
    assert answer.text is None and answer.error == "server_error" and "gave up after 4" in answer.detail
    assert cache.count() == 0 and engine.stats.failures == {"server_error": 1}


def test_permanent_error_stops_the_run_and_keeps_what_was_answered(tmp_path):
    cache = ResponseCache(tmp_path)
    client = Scripted(permanent_at=30, delay=0.001)
    with pytest.raises(RunAborted, match="invalid API key"):
        Engine(cache, concurrency=2, progress=False).run(client, [query(i) for i in range(200)])
    assert 0 < cache.count() < 200
    assert sum(client.calls.values()) < 200


def test_concurrency_is_bounded():
    client = Scripted(delay=0.01)
    Engine(None, concurrency=5, progress=False).run(client, [query(i) for i in range(40)])
    assert client.peak == 5


def test_adaptive_limit_halves_on_rate_limit_and_grows_back():
    async def scenario():
        limit = AdaptiveLimit(8)
        await limit.acquire()
        await limit.release(rate_limited=True)
        assert limit.limit == 4
        for _ in range(4):
            await limit.acquire()
            await limit.release(rate_limited=False)
        assert limit.limit == 5

    asyncio.run(scenario())


def test_retry_after_wins_over_backoff():
    import random

    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=30)
    assert policy.delay(3, 2.5, random.Random(0)) == 2.5
    assert policy.delay(0, None, random.Random(0)) <= 1.5
    assert policy.delay(10, None, random.Random(0)) <= 30
