"""The engine: identities, dedupe, cache, bounded concurrency, retries, rate limits, caps, and stopping
on permanent errors."""

import asyncio
import gc
import time

import pytest

from iqa_eval.execution.cache import ResponseCache
from iqa_eval.execution.engine import Engine, Unidentified
from iqa_eval.execution.limits import AdaptiveLimit, RetryPolicy
from iqa_eval.models.base import (
    ModelClient,
    ModelIdentity,
    PermanentModelError,
    TransientModelError,
    UnreachableError,
)
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


def test_permanent_error_stops_sending_and_keeps_what_was_answered(tmp_path):
    cache = ResponseCache(tmp_path)
    client = Scripted(permanent_at=30, delay=0.001)
    engine = Engine(cache, concurrency=2, progress=False)
    answers = engine.run(client, [query(i) for i in range(200)])
    assert 0 < cache.count() < 200
    assert sum(client.calls.values()) < 200
    failed = [a for a in answers.values() if not a.ok]
    assert len(failed) == 200 - cache.count()
    assert {(a.error, a.detail) for a in failed} == {("auth", "invalid API key")}
    assert engine.notices == ["scripted: auth: invalid API key; stopped sending to it"]
    assert engine.stats.unsent == len(failed) - 1  # the failing query itself was sent


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


class Billed(ModelClient):
    """Answers everything at a fixed price per answer."""

    def __init__(self, price):
        self.spec = self.fingerprint = "billed"
        self.price, self.calls = price, 0

    async def answer(self, q):
        self.calls += 1
        return Answer("Score: 1", cost_usd=self.price)


def test_a_budget_stops_sending_and_the_rest_are_budget_failures(tmp_path):
    cache = ResponseCache(tmp_path)
    client = Billed(price=0.01)
    engine = Engine(cache, concurrency=1, progress=False, budget_usd=0.025)
    answers = engine.run(client, [query(i) for i in range(10)])
    assert client.calls == 3  # 0.00, 0.01, 0.02 are under the budget; 0.03 reaches it
    failed = [a for a in answers.values() if not a.ok]
    assert len(failed) == 7 and {a.error for a in failed} == {"budget"}
    assert "reached the budget of $0.0250" in failed[0].detail
    assert cache.count() == 3  # budget failures are never cached
    assert engine.stats.budget_exhausted and engine.stats.failures == {"budget": 7}
    assert engine.spent_usd == pytest.approx(0.03) and engine.stats.cost_usd == pytest.approx(0.03)
    # The budget holds for the whole engine: a later run sends nothing at all.
    assert all(a.error == "budget" for a in engine.run(client, [query(i) for i in range(10, 15)]).values())
    assert client.calls == 3


def test_a_zero_budget_sends_nothing_and_no_budget_sends_everything():
    client = Billed(price=1.0)
    Engine(None, progress=False, budget_usd=0.0).run(client, [query(i) for i in range(5)])
    assert client.calls == 0
    engine = Engine(None, progress=False)
    engine.run(client, [query(i) for i in range(5)])
    assert client.calls == 5 and not engine.stats.budget_exhausted


def test_a_burst_of_rate_limits_from_one_window_halves_the_limit_once():
    async def scenario():
        limit = AdaptiveLimit(8)
        epochs = [await limit.acquire() for _ in range(8)]
        for epoch in epochs:  # all eight were sent under the same limit
            await limit.release(rate_limited=True, epoch=epoch)
        assert limit.limit == 4
        epoch = await limit.acquire()  # sent after the cut: its rate limit is news
        await limit.release(rate_limited=True, epoch=epoch)
        assert limit.limit == 2

    asyncio.run(scenario())


class RateLimitedOnce(ModelClient):
    """The first call gets a 429 with retry-after; records when every call started."""

    def __init__(self, retry_after):
        self.spec = self.fingerprint = "limited"
        self.retry_after, self.starts, self.limited_at = retry_after, [], None

    async def answer(self, q):
        now = time.monotonic()
        self.starts.append(now)
        if self.limited_at is None:
            self.limited_at = now
            raise TransientModelError("rate_limited", "429", retry_after=self.retry_after)
        return Answer("Score: 1")


def test_retry_after_holds_back_every_request_not_only_the_limited_one():
    client = RateLimitedOnce(retry_after=0.2)
    engine = Engine(None, concurrency=1, retry=RetryPolicy(max_delay_s=1.0), progress=False)
    answers = engine.run(client, [query(i) for i in range(4)])
    assert all(a.ok for a in answers.values()) and engine.stats.rate_limited == 1
    later = [t for t in client.starts if t > client.limited_at]
    assert len(later) == 4 and min(later) >= client.limited_at + 0.2


def test_a_permanent_error_of_one_model_leaves_another_model_alone():
    broken, working = Scripted(permanent_at=0), Scripted()
    working.spec = working.fingerprint = "working"
    engine = Engine(None, progress=False)
    assert not next(iter(engine.run(broken, [query(0)]).values())).ok
    assert all(a.ok for a in engine.run(working, [query(i) for i in range(5)]).values())


class Served(Scripted):
    """A model behind a server that says which deployment it is."""

    def __init__(self, served, fail_identify=0):
        super().__init__()
        self.spec = self.fingerprint = "openai:mymodel"
        self.served = served
        self.identified = 0
        self.fail_identify = fail_identify

    async def identify(self):
        self.identified += 1
        if self.identified <= self.fail_identify:
            raise TransientModelError("connection", "http://gpu1:8000/v1: refused")
        return ModelIdentity.of(self.spec, self.fingerprint, self.served)


def test_cached_answers_serve_only_the_identity_that_gave_them(tmp_path):
    queries = [query(i) for i in range(6)]
    old = Served({"model": "mymodel", "system_fingerprint": "fp_old"})
    Engine(ResponseCache(tmp_path), progress=False).run(old, queries)
    assert sum(old.calls.values()) == 6

    replaced = Served({"model": "mymodel", "system_fingerprint": "fp_new"})
    engine = Engine(ResponseCache(tmp_path), progress=False)
    engine.run(replaced, queries)
    assert sum(replaced.calls.values()) == 6 and engine.stats.cached == 0
    (change,) = engine.identity_changes
    assert "fp_old" in change.old and "fp_new" in change.new and change.answers == 6
    assert engine.notices == [change.message()] and "asking again" in change.message()

    # Both identities stay on disk; the old one is served again once it is back.
    back = Served({"model": "mymodel", "system_fingerprint": "fp_old"})
    engine = Engine(ResponseCache(tmp_path), progress=False)
    engine.run(back, queries)
    assert back.calls == {} and engine.stats.cached == 6
    assert sorted(h.answers for h in ResponseCache(tmp_path).identities()) == [6, 6]


def test_the_identity_is_established_once_per_engine_before_the_cache_is_read(tmp_path):
    client = Served({"model": "m"}, fail_identify=2)
    engine = Engine(ResponseCache(tmp_path), progress=False)
    engine.run(client, [query(0)])
    engine.run(client, [query(1)])
    assert client.identified == 3  # two transient failures, then once for the engine's life


def test_a_model_whose_identity_cannot_be_established_is_not_asked_and_its_cache_not_used(tmp_path):
    queries = [query(i) for i in range(3)]
    Engine(ResponseCache(tmp_path), progress=False).run(Served({"model": "m"}), queries)
    dead = Served({"model": "m"}, fail_identify=99)
    engine = Engine(ResponseCache(tmp_path), progress=False)
    answers = engine.run(dead, queries)
    assert dead.calls == {} and engine.stats.cached == 0
    assert {a.error for a in answers.values()} == {"unreachable"}
    assert "refused" in next(iter(answers.values())).detail
    assert engine.notices[0].startswith("openai:mymodel: unreachable:")


def test_an_identity_adopted_from_elsewhere_is_not_asked_for():
    client = Served({"model": "m"})
    engine = Engine(None, progress=False)
    engine.adopt(client.spec, ModelIdentity.of(client.spec, client.fingerprint, {"model": "m"}))
    engine.run(client, [query(0)])
    assert client.identified == 0
    engine.adopt("other", Unidentified("auth", "bad key"))
    other = Scripted()
    other.spec = "other"
    assert next(iter(engine.run(other, [query(0)]).values())).error == "auth" and other.calls == {}


class GoesDown(Scripted):
    """Answers `up` queries, then every endpoint is gone."""

    def __init__(self, up):
        super().__init__()
        self.up = up

    async def answer(self, q):
        self.calls[q.text] = self.calls.get(q.text, 0) + 1
        if sum(self.calls.values()) > self.up:
            raise UnreachableError("http://gpu1:8000/v1 failed 5 requests in a row")
        return Answer("Score: 1")


def test_an_unreachable_model_fails_its_remaining_queries_at_once():
    client = GoesDown(up=10)
    engine = Engine(None, concurrency=1, retry=RetryPolicy(max_attempts=6, base_delay_s=5), progress=False)
    start = time.monotonic()
    answers = engine.run(client, [query(i) for i in range(50)])
    assert time.monotonic() - start < 4  # no query waited out its backoff
    assert sum(a.ok for a in answers.values()) == 10
    assert {a.error for a in answers.values() if not a.ok} == {"unreachable"}
    assert sum(client.calls.values()) == 11


def test_max_requests_caps_what_is_sent():
    client = Scripted()
    engine = Engine(None, concurrency=2, retry=FAST, progress=False, max_requests=7)
    answers = engine.run(client, [query(i) for i in range(10)])
    assert sum(client.calls.values()) == 7 == engine.stats.requests
    assert sum(a.ok for a in answers.values()) == 7
    assert {a.error for a in answers.values() if not a.ok} == {"budget"}
    assert engine.stopped_by == "max_requests" and engine.stats.unsent == 3
    assert any("--iqa-max-requests stopped sending" in n and "7 requests" in n for n in engine.notices)


def test_max_requests_counts_retries():
    client = Scripted(flaky=2)
    engine = Engine(None, retry=FAST, progress=False, max_requests=2)
    (answer,) = engine.run(client, [query(0)]).values()
    assert client.calls == {"prompt 0": 2} and answer.error == "budget"


class LoopSpy(ModelClient):
    """Records the loops it ran on. It keeps the loop objects themselves, not their ids: a closed
    loop that was garbage-collected could hand its id (its address) to the next one."""

    def __init__(self):
        self.spec = self.fingerprint = "spy"
        self.seen, self.closed_on = [], None

    @property
    def loops(self):
        return {id(loop) for loop in self.seen}

    async def answer(self, q):
        loop = asyncio.get_running_loop()
        if all(loop is not known for known in self.seen):
            self.seen.append(loop)
        return Answer("Score: 1")

    async def aclose(self):
        self.closed_on = id(asyncio.get_running_loop())


def test_one_engine_keeps_one_loop_across_runs_and_closes_clients_on_it():
    client = LoopSpy()
    engine = Engine(None, progress=False)
    engine.run(client, [query(1)])
    engine.run(client, [query(2)])
    assert len(client.loops) == 1  # pooled connections of API clients survive from stage to stage
    engine.close([client])
    assert client.closed_on in client.loops
    engine.run(client, [query(3)])  # a closed engine starts a new loop when used again
    assert len(client.loops) == 2
    engine.close()


class InterruptedInAHelperTask(ModelClient):
    """Ctrl-C arriving while a helper task of the client's HTTP library runs (aiohttp writes a
    request body in a task of its own): the helper ends with KeyboardInterrupt, unawaited."""

    spec = fingerprint = "interrupted"

    def __init__(self):
        self.helpers = []

    async def answer(self, q):
        async def write_body():
            raise KeyboardInterrupt

        self.helpers.append(asyncio.ensure_future(write_body()))
        await asyncio.sleep(1)
        return Answer("Score: 1")


def test_a_ctrl_c_left_in_a_helper_task_prints_no_traceback_after_the_run(caplog):
    gc.collect()  # what other tests left behind is not this test's to report
    client = InterruptedInAHelperTask()
    engine = Engine(None, 2, retry=FAST, progress=False)
    with pytest.raises(KeyboardInterrupt):
        engine.run(client, [query(1)])
    engine.close([client])
    client.helpers.clear()  # the last reference: asyncio reports an unretrieved exception now
    gc.collect()
    assert "write_body" not in caplog.text  # the helper's unretrieved interrupt


def test_other_unretrieved_task_errors_are_still_reported(caplog):
    engine = Engine(None, 1, progress=False)

    class Broken(InterruptedInAHelperTask):
        async def answer(self, q):
            async def fail():
                raise RuntimeError("a bug in a helper")

            self.helpers.append(asyncio.ensure_future(fail()))
            await asyncio.sleep(0.01)
            return Answer("Score: 1")

    client = Broken()
    engine.run(client, [query(1)])
    engine.close([client])
    client.helpers.clear()
    gc.collect()
    assert "a bug in a helper" in caplog.text


def test_an_engine_dropped_without_close_closes_its_loop():
    engine = Engine(None, progress=False)
    engine.run(Scripted(), [query(1)])
    loop = engine._loop
    assert loop is not None and not loop.is_closed()
    del engine
    gc.collect()
    assert loop.is_closed()
