"""Queries that arrive together share one forward pass: a micro-batcher between the engine's event
loop and the model's worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from iqa_eval.types import Query

Kind = Literal["generate", "levels", "options"]


def generate_group(query: Query) -> Hashable:
    """Queries that may share one generate call.

    Decoding must agree, and so must the image count: equal-length image lists are the one
    layout every family's processor batches, while ragged ones are handled differently by each.
    """
    return ("generate", query.decoding.temperature, query.decoding.max_tokens, len(query.images))


@dataclass
class _Pending:
    kind: Kind
    query: Query
    group: Hashable
    future: asyncio.Future[Any]


@dataclass
class _LoopQueue:
    pending: list[_Pending] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class MicroBatcher:
    """Turns concurrent calls on one event loop into batched calls in a worker thread.

    The queue belongs to the running loop (the engine keeps one loop for its lifetime, but any
    caller may bring its own) and lives only while it has work. The first caller starts a drain that
    waits ``window_s`` for the others, then runs up to ``batch_size`` requests of the oldest
    request's group at a time; requests arriving meanwhile join the next batch.
    """

    def __init__(
        self, run: Callable[[Kind, Sequence[Query]], list[Any]], batch_size: int, window_s: float
    ) -> None:
        self._run = run
        self._batch_size = batch_size
        self._window_s = window_s
        self._queues: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}

    async def submit(self, kind: Kind, query: Query, group: Hashable) -> Any:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
            queue.task = loop.create_task(self._drain(loop, queue))
        future: asyncio.Future[Any] = loop.create_future()
        queue.pending.append(_Pending(kind, query, group, future))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        try:
            await asyncio.sleep(self._window_s)
            while queue.pending:
                batch = self._take(queue.pending)
                if not batch:
                    continue
                try:
                    results = await asyncio.to_thread(self._run, batch[0].kind, [p.query for p in batch])
                except Exception as err:
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(err)
                    continue
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
        finally:
            del self._queues[loop]

    def _take(self, pending: list[_Pending]) -> list[_Pending]:
        # Callers cancelled while waiting (the engine stops on a permanent error) are dropped.
        pending[:] = [p for p in pending if not p.future.done()]
        if not pending:
            return []
        group = pending[0].group
        batch = [p for p in pending if p.group == group][: self._batch_size]
        taken = {id(p) for p in batch}
        pending[:] = [p for p in pending if id(p) not in taken]
        return batch
