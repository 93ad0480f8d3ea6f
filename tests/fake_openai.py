"""A fault-injecting OpenAI-compatible server: real HTTP on 127.0.0.1, for tests and benchmarks.

It is an asyncio server (HTTP/1.1 with keep-alive) in a daemon thread rather than the stdlib
``ThreadingHTTPServer``: 64 concurrent keep-alive connections cost coroutines instead of
threads, and a coroutine can stall past the client's timeout or drop a connection as cheaply as
it can answer. In the throughput benchmark it uses about 15% of a core at 64 requests in
flight, so the numbers measure the engine and its HTTP client, not the server.

Faults are drawn per request body and attempt (a seeded hash of both), not from one stream of
random numbers in arrival order: which query meets which fault is then the same under any
concurrency and any timing, so a faulty run is exactly reproducible. ``max_faults_per_request``
bounds the faults one query can meet, so every query succeeds within the engine's attempts.

It describes itself as real servers do: ``/v1/models`` entries with ``id``, ``created``,
``owned_by`` and ``root`` (vLLM's fields; ``created_now`` gives vLLM's and SGLang's habit of
stamping the listing time), a ``model`` and ``system_fingerprint`` in every completion (null
unless set, as vLLM sends it), OpenAI's error bodies and ``retry-after`` headers. Requests
without images (the suite's identity probe) are answered ``OK`` and counted in ``probes``, apart
from the suite's queries.

Answers come from a pluggable ``responder(request_json) -> str``. :class:`ExpertResponder` is
a classical expert behind HTTP: it decodes the PNG data URLs, recognises the prompting system
from the prompt text (it must be one of the suite's templates), restores the image roles from
their order, and answers exactly as ``ExpertModel`` would. That gives an accurate model whose
answers are a pure function of the pixels it was sent (so a faulty run must reproduce a clean
one exactly), and with ``reverse=True`` a model known to rank backwards. It defaults to
``expert:psnr``: on the built-in FR structure ladders PSNR ranks perfectly (SRCC 1.0), like the
full panel, but measures a pair in about 10 ms instead of 155 ms, which keeps the end-to-end
tests fast.

With ``logprobs`` in a request it answers as OpenAI and vLLM do: ``choices[0].logprobs.content``
holds the answer token with its ``logprob`` and ``bytes`` and up to ``top_logprobs``
alternatives. A responder may return a :class:`Reply` with the alternatives of the first token
(several spellings of a word among them, as real tokenizers give); a plain text answer gets
probability 1. ``ExpertResponder`` answers the ``levels`` templates with probabilities that follow
its expert's qualities, so they follow the truth wherever the expert does. ``refuse_logprobs``
answers every request for logprobs with OpenAI's HTTP 400.

Run as a script (``python tests/fake_openai.py --latency 0.1``) it prints its base URL and
serves until its standard input closes; the benchmark uses that to keep the server out of the
engine's process (and its GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import math
import random
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp  # noqa: F401  (see below)
import pytest

from iqa_eval.images import ImageStore
from iqa_eval.models.expert import JUDGED_PER_PROTOCOL, make_expert
from iqa_eval.prompts import Template, get_template, supports
from iqa_eval.types import PROTOCOLS, SETTINGS, STRATEGIES, ImageRole, Query, QueryImage

# The client's HTTP library is imported here, in the test process, on purpose: pytester's
# in-process runs forget every module first imported inside them, and importing it afresh for
# every run of the suite would cost each run the import.


@dataclass(frozen=True)
class Reply:
    """An answer token with the probabilities of the alternatives at its position."""

    text: str
    alternatives: tuple[tuple[str, float], ...]


Responder = Callable[[dict[str, Any]], "str | Reply"]

TRANSIENT_FAULTS = (
    "rate_limit_retry_after",
    "rate_limit",
    "server_500",
    "server_502",
    "server_503",
    "timeout",
    "drop",
    "malformed",
    "no_choices",
    "empty_content",
)
FAULTS = (*TRANSIENT_FAULTS, "refusal")
REFUSAL = "I'm sorry, but I can't help with that."
_DATA_URL = re.compile(r"^data:image/png;base64,(.*)$", re.DOTALL)


def constant(text: str) -> Responder:
    """A model that says ``text`` whatever it is asked (``"I like turtles"``: a nonsense model)."""
    return lambda request: text


def message_parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    content = request["messages"][-1]["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def prompt_text(request: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message_parts(request) if p.get("type") == "text")


def images_of(request: dict[str, Any]) -> list[bytes]:
    """The PNG bytes of the request's images, in order; a non-PNG data URL is a test failure."""
    out = []
    for part in message_parts(request):
        if part.get("type") == "image_url":
            match = _DATA_URL.match(part["image_url"]["url"])
            if match is None:
                raise ValueError("image is not a PNG data URL")
            out.append(base64.b64decode(match.group(1)))
    return out


def _template_patterns() -> list[tuple[re.Pattern[str], Template]]:
    patterns = []
    for setting, protocol, strategy in itertools.product(SETTINGS, PROTOCOLS, STRATEGIES):
        if not supports(protocol, strategy):
            continue
        template = get_template(setting, protocol, strategy)
        regex = re.escape(template.text).replace(re.escape("{demo_label}"), ".+?")
        patterns.append((re.compile(regex, re.DOTALL), template))
    return patterns


def _roles(template: Template) -> list[ImageRole]:
    judged = JUDGED_PER_PROTOCOL[template.protocol]
    fr = template.setting == "fr"
    roles: list[ImageRole] = []
    if template.strategy == "icl":
        roles += ["demo_reference"] * fr + ["demo"] * judged
    roles += ["reference"] * fr + ["image"] * judged
    return roles


LEVELS = ("excellent", "good", "fair", "poor", "bad")
LEVEL_CENTRES = (100.0, 75.0, 50.0, 25.0, 0.0)
SPELLINGS = (("{}", 0.1), (" {}", 0.3), ("{C}", 0.6))
"""How a level's probability is split over its tokens: real tokenizers have several spellings."""


def level_alternatives(
    quality: float, spread: float = 15.0, elsewhere: float = 0.04
) -> tuple[tuple[str, float], ...]:
    """First-token alternatives for a model whose belief centres on ``quality`` (0–100): each
    level weighted by a Gaussian around it, split over spellings, and ``elsewhere`` on no level."""
    weights = [math.exp(-0.5 * ((quality - c) / spread) ** 2) for c in LEVEL_CENTRES]
    total = sum(weights)
    out = []
    for word, weight in zip(LEVELS, weights, strict=True):
        for spelling, share in SPELLINGS:
            out.append((spelling.format(word, C=word.capitalize()), (1 - elsewhere) * share * weight / total))
    return (*out, ("The", elsewhere))


class Held:
    """Answers the first ``answer_first`` requests, then holds every later one until released.

    A run against it cannot finish before the test has interrupted or killed it, whatever the
    timing; exactly ``answer_first`` queries have been answered when it is stopped. Release it
    before the server stops, or the server waits for the held threads.
    """

    def __init__(self, responder: Responder, answer_first: int) -> None:
        self.responder = responder
        self.answer_first = answer_first
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._seen = 0

    def __call__(self, request: dict[str, Any]) -> str:
        with self._lock:
            self._seen += 1
            hold = self._seen > self.answer_first
        if hold:
            self.released.wait(120)
        return self.responder(request)


class WellFormed:
    """Answers every suite query in its template's format, with values drawn from a hash of the
    request: parseable like a model that follows the format, and costing the server next to
    nothing (the benchmarks measure the client, not the answers)."""

    def __init__(self) -> None:
        self._patterns = _template_patterns()

    def __call__(self, request: dict[str, Any]) -> str:
        text = prompt_text(request)
        template = next((t for pattern, t in self._patterns if pattern.fullmatch(text)), None)
        if template is None:
            raise ValueError("the prompt is none of the suite's templates")
        # CRC-32 over the parts rather than a SHA-256 of the request serialised again: ~400 KB of
        # images made that 1.3 ms a request, a third of the server's work in the benchmarks.
        draw = random.Random(
            _crc32(
                text,
                *(p["image_url"]["url"] for p in message_parts(request) if p.get("type") == "image_url"),
                json.dumps({k: v for k, v in request.items() if k != "messages"}, sort_keys=True),
            )
        )
        if template.strategy == "levels":
            return draw.choice(LEVELS if template.protocol == "ss" else ("1", "0"))
        if template.protocol == "ss":
            return f"Score: {draw.randint(0, 100)}"
        if template.protocol == "ds":
            return f"Score: {draw.randint(0, 1)}"
        ranks = [0, 1, 2, 3]
        draw.shuffle(ranks)
        return "Score: " + ", ".join(map(str, ranks))


def _crc32(*parts: str) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part.encode() + b"\0", crc)
    return crc


class ExpertResponder:
    """A classical expert answering chat requests (see the module docstring for why)."""

    def __init__(self, workdir: Path, spec: str = "expert:psnr", *, reverse: bool = False) -> None:
        self._dir = workdir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._store = ImageStore()
        self._expert = make_expert(spec, self._store, reverse=reverse)
        self._patterns = _template_patterns()
        self._lock = threading.Lock()
        self._loops = threading.local()

    def __call__(self, request: dict[str, Any]) -> str | Reply:
        text = prompt_text(request)
        template = next((t for pattern, t in self._patterns if pattern.fullmatch(text)), None)
        if template is None:
            raise ValueError("the prompt is none of the suite's templates")
        paths = [self._file(png) for png in images_of(request)]
        roles = _roles(template)
        if len(paths) != len(roles):
            raise ValueError(f"{template.id} takes {len(roles)} images, got {len(paths)}")
        query = Query(
            template.setting,
            template.protocol,
            template.strategy,
            template.id,
            template.hash,
            text,
            tuple(QueryImage(r, self._store.stimulus(p)) for r, p in zip(roles, paths, strict=True)),
        )
        if template.strategy == "levels":
            return self._levels(query)
        return self._ask(query)

    def _ask(self, query: Query) -> str:
        loop = getattr(self._loops, "loop", None)
        if loop is None:  # one loop per server worker thread, not a new loop (and thread pool) per call
            loop = self._loops.loop = asyncio.new_event_loop()
        answer = loop.run_until_complete(self._expert.answer(query))
        assert answer.text is not None
        return answer.text

    def _levels(self, query: Query) -> Reply:
        """Probabilities from the expert's quality of each judged image: SS spreads them over the
        levels around that quality, DS is a logistic of the two qualities' difference."""
        reference = [im for im in query.images if im.role == "reference"]
        qualities = []
        for image in (im for im in query.images if im.role == "image"):
            single = replace(query, protocol="ss", strategy="standard", images=(*reference, image))
            qualities.append(float(self._ask(single).removeprefix("Score:")))
        if query.protocol == "ss":
            return Reply("", level_alternatives(qualities[0]))
        first = 1.0 / (1.0 + math.exp(-(qualities[0] - qualities[1]) / 4.0))
        return Reply("", (("1", 0.97 * first), ("0", 0.97 * (1.0 - first)), ("The", 0.03)))

    def _file(self, png: bytes) -> str:
        path = self._dir / f"{hashlib.sha256(png).hexdigest()}.png"
        with self._lock:
            if not path.exists():
                path.write_bytes(png)
        return str(path)


@dataclass
class FakeOpenAI:
    """The server; settings may be changed while it runs (each request reads them afresh)."""

    responder: Responder = field(default_factory=lambda: constant("Score: 50"))
    latency_s: float = 0.0
    """Seconds from a request's arrival to its answer, as a real server's time to answer is
    counted: the server's own parsing falls inside it, not on top of it."""
    fault_rate: float = 0.0
    faults: tuple[str, ...] = TRANSIENT_FAULTS
    max_faults_per_request: int = 2
    seed: int = 0
    stall_s: float = 5.0
    """How long a ``timeout`` fault keeps the client waiting (set it past the client's timeout)."""
    retry_after_ms: int = 20
    api_key: str | None = None
    """When set, any other key gets 401 (whose message echoes the key, worse than OpenAI does)."""
    models: tuple[str, ...] | None = None
    """When set, any other model gets 404 model_not_found."""
    served_model: str | None = None
    """The ``model`` its completions name (a dated snapshot, say); None echoes the request's."""
    system_fingerprint: str | None = None
    listing: bool = True
    """Serve ``/v1/models``; False answers 404 there, as some servers do."""
    root: str | None = None
    """The listing's ``root`` (vLLM: the weights' path); None leaves it out."""
    created: int = 1_715_000_000
    created_now: bool = False
    """Stamp ``created`` with the time of the listing request, as vLLM and SGLang do."""
    status_override: int | None = None
    """Answer every chat request with this HTTP status (e.g. 500), OpenAI's error body included."""
    refuse_logprobs: bool = False
    """Answer every request for logprobs with HTTP 400, as OpenAI does for models without them."""
    responder_in_thread: bool = True
    """Run the responder in a thread (an expert measures pixels for milliseconds); a cheap one
    answers on the server's loop, sparing the benchmarks a thread hop per request."""

    requests: int = field(default=0, init=False)
    probes: int = field(default=0, init=False)
    logprob_requests: int = field(default=0, init=False)
    listings: int = field(default=0, init=False)
    fault_counts: Counter[str] = field(default_factory=Counter, init=False)
    last_request: dict[str, Any] | None = field(default=None, init=False)
    last_headers: dict[str, str] = field(default_factory=dict, init=False)
    port: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self._attempts: Counter[str] = Counter()
        self._faulted: Counter[str] = Counter()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def asked(self) -> Counter[str]:
        """How often each distinct request body (one query) got past the key and model checks;
        read it once the server is idle or stopped."""
        return Counter(self._attempts)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="fake-openai")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        """Stop serving; stopping a stopped server does nothing."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()

        async def main() -> None:
            self._stop = asyncio.Event()
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=2**20, backlog=1024)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stop.wait()
            server.close()
            handlers = list(self._connections)
            for task, writer in self._connections.items():
                writer.transport.abort()
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()

        try:
            loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                due = asyncio.get_running_loop().time() + self.latency_s
                keep_open = await self._route(method, target.split("?")[0], headers, body, writer, due)
                if not keep_open or headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        except asyncio.CancelledError:
            return  # stopped: on Python 3.11 a cancelled handler task makes asyncio log a traceback
        finally:
            self._connections.pop(task, None)
            writer.close()

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes | dict[str, Any],
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> bool:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"content-type: {content_type}",
            f"content-length: {len(data)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return True

    async def _route(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
        due: float,
    ) -> bool:
        if method == "GET" and path == "/v1/models" and self.listing:
            self.listings += 1
            names = self.models or (self.served_model or "test-model",)
            created = int(time.time()) if self.created_now else self.created
            data = [
                {"id": m, "object": "model", "created": created, "owned_by": "fake"}
                | ({"root": self.root} if self.root else {})
                for m in names
            ]
            return await self._send(writer, 200, {"object": "list", "data": data})
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(headers, body, writer, due)
        return await self._send(writer, 404, _error(f"no route {method} {path}", "not_found"))

    async def _chat(
        self, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter, due: float
    ) -> bool:
        try:
            request = json.loads(body)
        except ValueError:
            return await self._send(writer, 400, _error("the body is not JSON", "invalid_json"))
        probe = not any(part.get("type") == "image_url" for part in message_parts(request))
        if probe:
            self.probes += 1
        else:
            self.requests += 1
            self.last_request = request
        self.last_headers = headers
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            self.fault_counts["auth"] += 1
            given = headers.get("authorization", "").removeprefix("Bearer ")
            return await self._send(
                writer, 401, _error(f"Incorrect API key provided: {given}.", "invalid_api_key")
            )
        model = request.get("model")
        if self.models is not None and model not in self.models:
            self.fault_counts["model_not_found"] += 1
            message = f"The model `{model}` does not exist or you do not have access to it."
            return await self._send(writer, 404, _error(message, "model_not_found"))
        if self.status_override is not None:
            self.fault_counts[f"status_{self.status_override}"] += 1
            return await self._send(
                writer, self.status_override, _error("The server had an error.", "server_error")
            )
        if probe:
            return await self._send(writer, 200, self._completion(request, "OK"))
        if request.get("logprobs"):
            self.logprob_requests += 1
            if self.refuse_logprobs:
                self.fault_counts["logprobs_refused"] += 1
                error = _error(
                    "This model does not support the 'logprobs' parameter.", "unsupported_parameter"
                )
                error["error"]["param"] = "logprobs"
                return await self._send(writer, 400, error)
        fault = self._draw_fault(body)
        if self.latency_s > 0:
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
        if fault is not None:
            self.fault_counts[fault] += 1
            return await self._fault(fault, request, writer)
        try:
            text: str | Reply = (
                await asyncio.to_thread(self.responder, request)
                if self.responder_in_thread
                else self.responder(request)
            )
        except Exception as err:  # a broken responder is a test bug: make it visible, not a hang
            self.fault_counts["responder_error"] += 1
            message = f"responder failed: {type(err).__name__}: {err}"
            return await self._send(writer, 500, _error(message, "responder_error"))
        return await self._send(writer, 200, self._completion(request, text))

    def _completion(
        self, request: dict[str, Any], text: str | Reply | None, refusal: str | None = None
    ) -> dict[str, Any]:
        completion = _completion(request, text, refusal)
        completion["model"] = self.served_model or completion["model"]
        completion["system_fingerprint"] = self.system_fingerprint
        return completion

    def _draw_fault(self, body: bytes) -> str | None:
        digest = hashlib.sha256(body).hexdigest()
        attempt = self._attempts[digest]
        self._attempts[digest] += 1
        if self.fault_rate <= 0 or self._faulted[digest] >= self.max_faults_per_request:
            return None
        rng = random.Random(f"{self.seed}:{digest}:{attempt}")
        if rng.random() >= self.fault_rate:
            return None
        self._faulted[digest] += 1
        return rng.choice(self.faults)

    async def _fault(self, fault: str, request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        if fault == "rate_limit_retry_after":
            wait = {
                "retry-after-ms": str(self.retry_after_ms),
                "retry-after": str(-(-self.retry_after_ms // 1000)),
            }
            return await self._send(
                writer, 429, _error("Rate limit reached.", "rate_limit_exceeded"), headers=wait
            )
        if fault == "rate_limit":
            return await self._send(writer, 429, _error("Rate limit reached.", "rate_limit_exceeded"))
        if fault == "server_500":
            return await self._send(writer, 500, _error("The server had an error.", "server_error"))
        if fault == "server_502":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return await self._send(writer, 502, page, content_type="text/html")
        if fault == "server_503":
            return await self._send(writer, 503, _error("The engine is currently overloaded.", "overloaded"))
        if fault == "timeout":
            await asyncio.sleep(self.stall_s)
            return False
        if fault == "drop":
            return False
        if fault == "malformed":
            return await self._send(writer, 200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess')
        if fault == "no_choices":
            return await self._send(writer, 200, {**self._completion(request, ""), "choices": []})
        if fault == "empty_content":
            return await self._send(writer, 200, self._completion(request, ""))
        return await self._send(writer, 200, self._completion(request, None, refusal=REFUSAL))


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _logprobs(request: dict[str, Any], reply: Reply) -> dict[str, Any] | None:
    """OpenAI's ``logprobs`` of a one-token answer, when the request asked for them."""
    if not request.get("logprobs"):
        return None
    ranked = sorted(reply.alternatives, key=lambda tp: -tp[1])
    chosen = reply.text or ranked[0][0]
    p = dict(reply.alternatives).get(chosen, 1e-9)

    def entry(token: str, probability: float) -> dict[str, Any]:
        return {"token": token, "logprob": math.log(probability), "bytes": list(token.encode())}

    top = [entry(t, q) for t, q in ranked[: int(request.get("top_logprobs") or 0)] if q > 0]
    return {"content": [{**entry(chosen, p), "top_logprobs": top}], "refusal": None}


def _completion(
    request: dict[str, Any], answer: str | Reply | None, refusal: str | None = None
) -> dict[str, Any]:
    """A chat completion with usage that grows with the prompt and images, as real ones do."""
    reply = (
        answer if isinstance(answer, Reply) else None if answer is None else Reply(answer, ((answer, 1.0),))
    )
    if reply is not None and not reply.text:
        reply = Reply(max(reply.alternatives, key=lambda tp: tp[1])[0], reply.alternatives)
    text = None if reply is None else reply.text
    images = sum(part.get("type") == "image_url" for part in message_parts(request))
    prompt_tokens = len(prompt_text(request)) // 4 + 85 * images
    completion_tokens = max(1, len(text or refusal or "") // 4)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
                "finish_reason": "stop",
                "logprobs": None if reply is None or not text else _logprobs(request, reply),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@pytest.fixture
def fake_openai() -> Iterator[Callable[..., FakeOpenAI]]:
    """Start fake servers (``fake_openai(latency_s=0.1, ...)``); all stop when the test ends."""
    servers: list[FakeOpenAI] = []

    def start(**settings: Any) -> FakeOpenAI:
        server = FakeOpenAI(**settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def accurate_responder(tmp_path_factory: pytest.TempPathFactory) -> ExpertResponder:
    """One per test process, so the panel measures each image pair once however many runs ask."""
    return ExpertResponder(tmp_path_factory.mktemp("accurate-model"))


@pytest.fixture(scope="session")
def reversed_responder(tmp_path_factory: pytest.TempPathFactory) -> ExpertResponder:
    return ExpertResponder(tmp_path_factory.mktemp("reversed-model"), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a fake OpenAI API until standard input closes")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--answers",
        choices=("constant", "well-formed"),
        default="constant",
        help="'Score: 50' to everything, or answers in each query's own format",
    )
    args = parser.parse_args()
    responder = WellFormed() if args.answers == "well-formed" else constant("Score: 50")
    server = FakeOpenAI(responder=responder, latency_s=args.latency, responder_in_thread=False).start()
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
