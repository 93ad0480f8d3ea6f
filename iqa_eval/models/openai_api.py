"""OpenAI, or any OpenAI-compatible server (vLLM, llama.cpp, LM Studio ...), as a model client.

The SDK's own retries are off (``max_retries=0``): the engine retries with one policy for every
client, sees every rate limit (so it can cut concurrency), and counts what it retried. Every SDK
error is mapped onto the suite's two kinds: transient (retry) or permanent (stop the run).

The images travel as the dataset's pixels in lossless PNG (``ImageStore.png``), never resized or
re-encoded; the provider's ``detail`` setting is sent as configured (``--iqa-image-detail``).

Nothing the key could leak through is trusted: server messages are scrubbed of the key, of
``Bearer`` tokens and of ``sk-`` style secrets before they reach an exception, an answer or a log.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import itertools
import json
import math
import os
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion

from iqa_eval.images import ImageStore
from iqa_eval.models.base import (
    Capabilities,
    ModelClient,
    ModelOptions,
    PermanentModelError,
    TransientModelError,
)
from iqa_eval.pricing import PriceTable
from iqa_eval.types import Answer, Query, Usage

if TYPE_CHECKING:
    import httpx2

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_KEY = "not-needed"
"""Sent to local servers when no key is set: the SDK insists on one, local servers ignore it."""

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s'\",;]+"), r"\1 ***"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), "sk-***"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@"), r"\1"),  # user:password@ in URLs
)
MAX_DETAIL_CHARS = 500
POOL_REQUESTS = 16


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


def redact_url(url: str) -> str:
    """The URL without user:password, fit for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOCAL_HOSTS


@dataclass
class _Pool:
    client: openai.AsyncOpenAI
    outstanding: int = 0


@dataclass
class _Replica:
    url: str
    pools: list[_Pool]
    outstanding: int = 0


class OpenAIModel(ModelClient):
    """``openai:<model>`` against one or several base URLs (replicas of one deployment).

    Several replicas are balanced by least outstanding requests, ties taken round-robin. Each
    replica is served by SDK clients of at most ``POOL_REQUESTS`` requests in flight each, added
    as concurrency demands: the HTTP library scans every connection of a pool for every request,
    so one pool carrying 64 requests spent more CPU on that scan than on the requests. The SDK
    clients are built on first use in the running event loop and rebuilt if a later call comes
    from another loop, since their connections belong to the loop that opened them.

    ``transport`` replaces the HTTP transport (tests pass an ``httpx2.MockTransport``).
    """

    def __init__(
        self,
        spec: str,
        store: ImageStore,
        options: ModelOptions | None = None,
        prices: PriceTable | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        kind, _, model = spec.partition(":")
        if kind != "openai" or not model.strip():
            raise ValueError("use openai:<model>, e.g. openai:gpt-4o")
        options = options or ModelOptions()
        urls = options.base_urls or (os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,)
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"base URL {redact_url(url)!r} is not an http(s) URL")
        key = os.environ.get("OPENAI_API_KEY", "").strip()
        if not key:
            remote = [redact_url(u) for u in urls if not is_local(u)]
            if remote:
                raise ValueError(f"an API key is needed for {', '.join(remote)}: set OPENAI_API_KEY")
            key = LOCAL_KEY
        self.spec = spec
        self.model = model
        self.fingerprint = f"openai:{model}"  # the same for every replica of the deployment
        self.capabilities = Capabilities(max_images=None)
        self.cacheable = True
        self.urls = tuple(urls)
        self.detail = options.image_detail
        self.timeout_s = options.timeout_s
        self.prices = prices or PriceTable()
        self.price_note = self.prices.note(model)
        self._store = store
        self._key = key
        self._transport = transport
        self._replicas: list[_Replica] = []
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._turn = itertools.count()

    # -- request -------------------------------------------------------------------------------

    def request(self, query: Query) -> dict[str, Any]:
        """The chat-completions arguments: the text first, then every image in presentation order."""
        content: list[dict[str, Any]] = [{"type": "text", "text": query.text}]
        for image in query.images:
            png = self._store.png(image.stimulus.path, image.encoding)
            url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            content.append({"type": "image_url", "image_url": {"url": url, "detail": self.detail}})
        args: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": query.decoding.temperature,
            "max_tokens": query.decoding.max_tokens,
        }
        if query.decoding.seed is not None:
            args["seed"] = query.decoding.seed
        return args

    async def answer(self, query: Query) -> Answer:
        # Encoding (the first time an image is used) and base64 are CPU work: off the event loop,
        # so hundreds of requests in flight keep moving meanwhile.
        args = await asyncio.to_thread(self.request, query)
        replica = self._pick()
        pool = self._pool(replica)
        replica.outstanding += 1
        pool.outstanding += 1
        start = time.perf_counter()
        try:
            # client.post (the SDK's documented path for raw requests) with the exact body and auth
            # of chat.completions.create, minus its parameter transform: our body is plain JSON
            # already, and walking it against the SDK's TypedDicts took about a quarter of the
            # client's CPU per request, which is what caps throughput at high concurrency.
            completion = await pool.client.post(
                "/chat/completions",
                body=args,
                cast_to=ChatCompletion,
                options={"security": {"bearer_auth": True}},
            )
        except openai.APIError as err:
            raise self._map_error(err, replica.url) from None
        except json.JSONDecodeError as err:
            raise TransientModelError(
                "malformed", f"{redact_url(replica.url)} sent a body that is not JSON ({err.msg})"
            ) from None
        finally:
            replica.outstanding -= 1
            pool.outstanding -= 1
        return self._read(completion, replica.url, time.perf_counter() - start)

    def _read(self, completion: object, url: str, latency: float) -> Answer:
        where = redact_url(url)
        if not isinstance(completion, ChatCompletion):
            raise TransientModelError("malformed", f"{where} sent a non-JSON answer")
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise TransientModelError("empty", f"{where} sent an answer without choices")
        usage_in = getattr(completion, "usage", None)
        usage = Usage(
            int(getattr(usage_in, "prompt_tokens", 0) or 0),
            int(getattr(usage_in, "completion_tokens", 0) or 0),
        )
        cost = self.prices.cost(self.model, usage)
        message = getattr(choices[0], "message", None)
        finish = getattr(choices[0], "finish_reason", None)
        refusal = getattr(message, "refusal", None)
        text = getattr(message, "content", None)
        empty = not isinstance(text, str) or not text.strip()
        # Refusals and cut-off answers are the model's deterministic reply to this query: failures
        # to record (and pay for once), not glitches to retry.
        failure = None
        if refusal:
            failure = ("refusal", self._scrub(str(refusal)))
        elif empty and finish == "content_filter":
            failure = ("refusal", "the provider's content filter withheld the answer")
        elif empty and finish == "length":
            failure = ("truncated", "the token limit was reached before any answer; raise --iqa-max-tokens")
        if failure is not None:
            reason, detail = failure
            return Answer(None, error=reason, detail=detail, usage=usage, latency_s=latency, cost_usd=cost)
        if empty:
            raise TransientModelError("empty", f"{where} sent an empty answer")
        assert isinstance(text, str)
        return Answer(text, usage=usage, latency_s=latency, cost_usd=cost)

    def _map_error(self, err: openai.APIError, url: str) -> Exception:
        where = redact_url(url)
        if isinstance(err, openai.APITimeoutError):
            return TransientModelError("timeout", f"no answer from {where} within {self.timeout_s:g} s")
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__ or err.__context__
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else err.message
            return TransientModelError("connection", self._scrub(f"{where}: {reason}"))
        if not isinstance(err, openai.APIStatusError):
            return TransientModelError("malformed", self._scrub(f"{where}: {err.message}"))
        status = err.status_code
        said = self._scrub(f"HTTP {status} from {where}: {_server_message(err)}")
        if status == 429:
            wait = parse_retry_after(err.response.headers)
            return TransientModelError("rate_limited", said, retry_after=wait)
        if status >= 500 or status in (408, 409, 425):
            return TransientModelError("server_error", said)
        if status in (401, 403):
            return PermanentModelError("auth", f"{said}; check OPENAI_API_KEY and its access to {self.model}")
        if status == 404:
            return PermanentModelError(
                "model_not_found", f"{said}; check the model name {self.model!r} and the base URL"
            )
        return PermanentModelError("bad_request", said)

    def _scrub(self, text: str) -> str:
        if self._key != LOCAL_KEY and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        for pattern, replacement in _SECRETS:
            text = pattern.sub(replacement, text)
        return text[:MAX_DETAIL_CHARS]

    # -- replicas ------------------------------------------------------------------------------

    def _pick(self) -> _Replica:
        replicas = self._clients()
        turn = next(self._turn)
        n = len(replicas)
        return min(
            (replicas[(turn + i) % n] for i in range(n)),
            key=lambda r: r.outstanding,
        )

    def _pool(self, replica: _Replica) -> _Pool:
        for pool in replica.pools:
            if pool.outstanding < POOL_REQUESTS:
                return pool
        replica.pools.append(_Pool(self._make_client(replica.url)))
        return replica.pools[-1]

    def _clients(self) -> list[_Replica]:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop() is not loop:
            self._replicas = [_Replica(url, []) for url in self.urls]
            self._loop = weakref.ref(loop)
        return self._replicas

    def _make_client(self, url: str) -> openai.AsyncOpenAI:
        # An HTTP client of our own (with the SDK's defaults) rather than the SDK's wrapper, whose
        # finaliser schedules its close on whatever loop is running when it is collected: after a
        # change of loop that is a loop its connections do not belong to.
        # A user:password in the URL goes to the HTTP client as its auth (the Basic auth the URL
        # would have given) and the URL is passed without it: the HTTP library logs every
        # request's URL at INFO level, and a log file must not carry the password.
        parts = urlsplit(url)
        user, password = parts.username or "", parts.password or ""
        auth = (unquote(user), unquote(password)) if user or password else None
        return openai.AsyncOpenAI(
            api_key=self._key,
            base_url=redact_url(url) if auth else url,
            timeout=self.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(transport=self._transport, auth=auth),
        )

    async def aclose(self) -> None:
        replicas, self._replicas, self._loop = self._replicas, [], None
        for replica in replicas:
            for pool in replica.pools:
                await pool.client.close()


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()
    return err.message
