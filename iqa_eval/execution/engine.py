"""Executes queries once: establish who answers, deduplicate, read the cache, dispatch the rest.

A run costs ``unique queries × latency / concurrency`` rather than the sum over tests. Before any
cached answer of a model is used, the model's identity is established live (for an API model:
its models listing and one real request), and only answers of that identity are replayed.
Transient failures are retried with exponential backoff and jitter (a server's ``retry-after``
wins, and holds back every request, since a rate limit applies to the account, not to one
query); a rate limit halves the concurrency, which then grows back by one per window of
successes. A permanent failure (bad key, unknown model, an endpoint that stopped answering)
stops sending to that model at once, with one message, and marks the rest of its queries with
the reason. A budget or a request cap stops sending once reached: what was not sent is a
``budget`` failure, never a score.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from iqa_eval.execution.cache import ResponseCache
from iqa_eval.execution.limits import AdaptiveLimit, RetryPolicy
from iqa_eval.execution.progress import Tick, meter, say_line
from iqa_eval.models.base import (
    ModelClient,
    ModelIdentity,
    NotSent,
    PermanentModelError,
    TransientModelError,
)
from iqa_eval.types import Answer, Query

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _well_formed(answer: Answer) -> Answer:
    """The answer with every lone surrogate replaced by U+FFFD.

    A JSON escape such as ``\\ud800`` gives a model (or a server's error message) a way to put
    half a character into a Python string, and no UTF-8 file can hold one: SQLite would refuse
    the answer mid-run, a report would fail to write, and a strict JSON reader would reject it.
    """
    text = _LONE_SURROGATE.sub("\ufffd", answer.text) if answer.text is not None else None
    detail = _LONE_SURROGATE.sub("\ufffd", answer.detail)
    if text == answer.text and detail == answer.detail:
        return answer
    return replace(answer, text=text, detail=detail)


def _quiet_interrupts(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """Everything asyncio reports, except a Ctrl-C left in a task nobody awaited.

    Ctrl-C raises in whichever task is running, sometimes one an HTTP library made for itself
    (aiohttp writes a request body in a task of its own). That task ends with the interrupt and
    nothing awaits it, so when it is collected asyncio prints its traceback, after the run has
    already stopped cleanly and said so.
    """
    if isinstance(context.get("exception"), KeyboardInterrupt):
        return
    loop.default_exception_handler(context)


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
    budget_exhausted: bool = False
    requests: int = 0
    """HTTP requests (or local calls) made, retries included: what ``--iqa-max-requests`` caps."""
    unsent: int = 0
    """Dispatched queries never sent: held back by a cap, or after the model stopped answering."""
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
            "requests",
            "unsent",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.budget_exhausted = self.budget_exhausted or other.budget_exhausted
        for reason, n in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n


IDENTITY_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.25, max_delay_s=2.0)
"""Establishing an identity is the first contact with a server: a dead endpoint should be named
within seconds, not after a query's full backoff (about 15 s)."""


@dataclass(frozen=True)
class Unidentified:
    """Why a model's identity could not be established: none of its queries is then sent, and
    none of its cached answers used."""

    reason: str
    detail: str

    def answer(self) -> Answer:
        return Answer(None, error=self.reason, detail=self.detail)


@dataclass(frozen=True)
class IdentityChange:
    """The served identity of a model differs from the one its cached answers were given by."""

    spec: str
    old: str
    new: str
    answers: int

    def message(self) -> str:
        return (
            f"{self.spec}: served identity changed, {self.old} -> {self.new}; asking again "
            f"({self.answers} cached answers of the old identity kept, not used)"
        )

    def to_record(self) -> dict[str, object]:
        return {"model": self.spec, "old": self.old, "new": self.new, "cached_answers_not_used": self.answers}


class Engine:
    """Runs queries for model clients; one engine serves a whole run (every stage, every model).

    :meth:`run` keeps one event loop for the engine's lifetime instead of a fresh one per call,
    so API clients keep their pooled connections from one stage to the next; :meth:`close`
    releases it.

    ``budget_usd`` and ``max_requests`` cover every run of the engine. Requests already in
    flight when a cap is reached still land, so the spend can pass the budget by what
    ``concurrency`` requests cost. A budget in USD needs a known price (the run configuration
    refuses one otherwise); ``max_requests`` holds for any model.

    What the user must be told once (an identity change, a model that stopped answering, a cap
    that stopped the run) is kept in :attr:`notices`, in the order it happened.
    """

    def __init__(
        self,
        cache: ResponseCache | None,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        progress: bool = True,
        seed: int = 0,
        budget_usd: float | None = None,
        max_requests: int | None = None,
    ) -> None:
        self.cache = cache
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.progress = progress
        self.budget_usd = budget_usd
        self.max_requests = max_requests
        self._rng = random.Random(seed)  # jitter only: it never changes what is asked
        self._spent = 0.0
        self._requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._identities: dict[str, ModelIdentity | Unidentified] = {}
        self._halted: dict[str, PermanentModelError] = {}
        self.stats = EngineStats()
        self.notices: list[str] = []
        self.identity_changes: list[IdentityChange] = []
        self.stopped_by: str | None = None
        """The cap that stopped sending (``budget`` or ``max_requests``), once one did."""

    @property
    def spent_usd(self) -> float:
        """Spend of every request this engine sent, failed ones included (they are billed too)."""
        return self._spent

    def _run_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop.set_exception_handler(_quiet_interrupts)
            # An engine dropped without close() (a notebook, a script) closes its loop as it goes:
            # left to the garbage collector, the loop's own sockets could be finalized first and
            # its __del__ would print a traceback into someone else's output.
            weakref.finalize(self, self._loop.close)
        return self._loop

    def run(self, client: ModelClient, queries: Sequence[Query]) -> dict[str, Answer]:
        """Answers by query key for every query; failures are answers with an error."""
        return self._run_loop().run_until_complete(self.run_async(client, queries))

    def identify(self, client: ModelClient) -> ModelIdentity | Unidentified:
        """The model's identity, established live the first time it is asked for."""
        return self._run_loop().run_until_complete(self.identity(client))

    def adopt(self, spec: str, identity: ModelIdentity | Unidentified) -> None:
        """Take an identity established elsewhere (by the pytest-xdist controller, once for all
        its workers): each worker asking again would send one request more per worker."""
        self._identities[spec] = identity

    def close(self, clients: Iterable[ModelClient] = ()) -> None:
        """Release the clients' connections on the loop that opened them, then stop that loop.

        Requests still pending (a run interrupted by Ctrl-C) are cancelled first: closing the
        connections under them would turn each into a failure to retry, and the loop running
        meanwhile could still send a query the user asked not to.
        """
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for client in clients:
                loop.run_until_complete(client.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def _say(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)

    async def identity(self, client: ModelClient) -> ModelIdentity | Unidentified:
        known = self._identities.get(client.spec)
        if known is not None:
            return known
        found: ModelIdentity | Unidentified
        last: TransientModelError | None = None
        found = Unidentified("unreachable", "")
        for attempt in range(IDENTITY_RETRY.max_attempts):
            try:
                found = await client.identify()
                break
            except PermanentModelError as err:
                found = Unidentified(err.reason, err.detail)
                break
            except TransientModelError as err:
                last = err
            if attempt + 1 < IDENTITY_RETRY.max_attempts:
                await asyncio.sleep(IDENTITY_RETRY.delay(attempt, last.retry_after, self._rng))
        else:
            assert last is not None
            found = Unidentified(
                "unreachable",
                f"{last.detail or last.reason} (no answer to {IDENTITY_RETRY.max_attempts} attempts to "
                "establish which model serves)",
            )
        if isinstance(found, Unidentified):
            self._say(f"{client.spec}: {found.reason}: {found.detail}; none of its queries is sent")
        elif self.cache is not None and client.cacheable:
            self.cache.remember(found)
        self._identities[client.spec] = found
        return found

    async def run_async(self, client: ModelClient, queries: Sequence[Query]) -> dict[str, Answer]:
        start = time.perf_counter()
        stats = EngineStats(requested=len(queries))
        unique = list({q.key: q for q in queries}.values())
        stats.unique = len(unique)
        answers: dict[str, Answer] = {}
        try:
            identity = await self.identity(client)
            if isinstance(identity, Unidentified):
                failed = identity.answer()
                answers = {q.key: failed for q in unique}
                stats.failed = len(unique)
                stats.failures[identity.reason] = len(unique)
                return answers
            if self.cache is not None and client.cacheable:
                keys = [q.key for q in unique]
                answers.update(self.cache.get_many(identity.key, keys))
                missing = [k for k in keys if k not in answers]
                if missing:
                    self._note_superseded(client.spec, identity, missing)
            stats.cached = len(answers)
            todo = [q for q in unique if q.key not in answers]
            stats.dispatched = len(todo)
            if self.progress:
                cached = stats.cached
                estimate = client.estimate_cost(todo) if todo else None
                cost = "" if estimate is None else f", estimated cost at most ${estimate:.2f}"
                say_line(
                    f"{client.spec}: {len(unique)} unique queries, {cached} cached, {len(todo)} to ask{cost}"
                )
            if todo:
                await self._dispatch(client, identity, todo, answers, stats)
        finally:
            stats.wall_s = time.perf_counter() - start
            self.stats.add(stats)
            for notice in client.notices():
                self._say(notice)
        return answers

    def _note_superseded(self, spec: str, identity: ModelIdentity, missing: Sequence[str]) -> None:
        assert self.cache is not None
        if any(change.spec == spec for change in self.identity_changes):
            return
        older = self.cache.superseded(identity, missing)
        if older:
            change = IdentityChange(spec, older[0].describe(), identity.describe(), older[0].answers)
            self.identity_changes.append(change)
            self._say(change.message())

    def _cap_reached(self) -> str | None:
        if self.budget_usd is not None and self._spent >= self.budget_usd:
            return "budget"
        if self.max_requests is not None and self._requests >= self.max_requests:
            return "max_requests"
        return None

    async def _dispatch(
        self,
        client: ModelClient,
        identity: ModelIdentity,
        todo: Sequence[Query],
        answers: dict[str, Answer],
        stats: EngineStats,
    ) -> None:
        limit = AdaptiveLimit(self.concurrency)
        shown = meter(client.spec, len(todo), self.progress)
        done_count = 0
        store = self.cache is not None and client.cacheable
        filed_as = identity.key  # a digest made afresh at each use of the property

        async def one(query: Query) -> None:
            answer = _well_formed(await self._ask(client, query, limit, stats))
            answers[query.key] = answer
            stats.prompt_tokens += answer.usage.prompt_tokens
            stats.completion_tokens += answer.usage.completion_tokens
            stats.cost_usd += answer.cost_usd
            self._spent += answer.cost_usd
            if answer.ok:
                if store and query.decoding.deterministic:
                    assert self.cache is not None
                    self.cache.put(filed_as, query.key, answer)
            else:
                stats.failed += 1
                reason = answer.error or "unknown"
                stats.failures[reason] = stats.failures.get(reason, 0) + 1
            nonlocal done_count
            done_count += 1
            shown.update(Tick(client.spec, done_count, len(todo), stats.failed, self._spent, self.budget_usd))

        try:
            tasks = [asyncio.create_task(one(q)) for q in todo]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            shown.close()
            if store:
                assert self.cache is not None
                # On disk before the next stage reads them, another worker looks, or a Ctrl-C
                # ends the run.
                self.cache.flush()
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    def _capped(self, cap: str, stats: EngineStats) -> Answer:
        stats.budget_exhausted = True
        if self.stopped_by is None:
            self.stopped_by = cap
            what = f"the budget of ${self.budget_usd:.4f}" if cap == "budget" else "--iqa-max-requests"
            self._say(
                f"{what} stopped sending: ${self._spent:.4f} spent on {self._requests} requests; "
                "queries not sent are 'budget' failures and their cells errors"
            )
        if cap == "budget":
            detail = f"not sent: the spend ${self._spent:.4f} reached the budget of ${self.budget_usd:.4f}"
        else:
            detail = f"not sent: {self._requests} requests reached --iqa-max-requests {self.max_requests}"
        return Answer(None, error="budget", detail=detail)

    async def _ask(
        self, client: ModelClient, query: Query, limit: AdaptiveLimit, stats: EngineStats
    ) -> Answer:
        last: TransientModelError | None = None
        for attempt in range(self.retry.max_attempts):
            epoch: int | None = None
            rate_limited = False
            try:
                # Checked before and after the wait for a slot: answers that arrived meanwhile
                # spent money, or told that the model cannot answer at all.
                held = self._held_back(client, stats)
                if held is None:
                    epoch = await limit.acquire()
                    held = self._held_back(client, stats)
                if held is not None:
                    stats.unsent += attempt == 0
                    return held
                self._requests += 1
                stats.requests += 1
                try:
                    return await client.answer(query)
                except NotSent as held_back:
                    # The client knew the answer without sending (its server refused what the
                    # query needs): no request, neither towards --iqa-max-requests nor as sent.
                    self._requests -= 1
                    stats.requests -= 1
                    stats.unsent += attempt == 0
                    return held_back.answer
            except TransientModelError as err:
                last = err
                rate_limited = err.reason == "rate_limited"
                stats.rate_limited += rate_limited
                if err.retry_after is not None:
                    limit.hold_off(min(err.retry_after, self.retry.max_delay_s))
            except PermanentModelError as err:
                if client.spec not in self._halted:
                    self._halted[client.spec] = err
                    self._say(f"{client.spec}: {err.reason}: {err.detail}; stopped sending to it")
                return Answer(None, error=err.reason, detail=err.detail)
            finally:
                if epoch is not None:
                    await limit.release(rate_limited, epoch)
            if attempt + 1 < self.retry.max_attempts:
                stats.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, last.retry_after, self._rng))
        assert last is not None
        return Answer(
            None,
            error=last.reason,
            detail=f"{last.detail} (gave up after {self.retry.max_attempts} attempts)",
        )

    def _held_back(self, client: ModelClient, stats: EngineStats) -> Answer | None:
        """The answer of a query that must not be sent (the model stopped answering, a cap was
        reached), or None to send it."""
        err = self._halted.get(client.spec)
        if err is not None:
            return Answer(None, error=err.reason, detail=err.detail)
        cap = self._cap_reached()
        return None if cap is None else self._capped(cap, stats)
