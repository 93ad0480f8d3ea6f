"""OpenAI, or any OpenAI-compatible server (vLLM, llama.cpp, LM Studio ...), as a model client.

The client speaks the chat-completions protocol itself over aiohttp rather than through the
OpenAI SDK. Measured against a local server at 64 requests in flight, the SDK spent about 2 ms
of CPU per request (building its request objects, its HTTP stack's connection bookkeeping,
validating the answer into models), which capped one process near 430 requests per second; a
plain POST of the JSON body costs about 0.35 ms. Against a remote API that makes no
difference, against a fast local server it is the difference between the model and the client
being the limit. The protocol surface used is small and stable: one POST, one JSON answer.

There are no retries here: the engine retries with one policy for every client, sees every rate
limit (so it can cut concurrency), and counts what it retried. Every failure is mapped onto the
suite's two kinds: transient (retry) or permanent (stop the run).

The images travel as the dataset's pixels in lossless PNG (``ImageStore.png``), never resized or
re-encoded; the provider's ``detail`` setting is sent as configured (``--iqa-image-detail``).

Before a run uses any cached answer, :meth:`OpenAIModel.identify` asks each endpoint what it
serves: its ``/v1/models`` entry and one tiny chat request, whose ``model`` and
``system_fingerprint`` name the deployment. An endpoint that fails several requests in a row and
has answered nothing for a while is taken out of the rotation, and when none is left every
further query fails at once as ``unreachable`` instead of waiting out its retries.

A query with options (the ``levels`` strategy) asks for ``logprobs`` with the ``top_logprobs``
of each answer token, as OpenAI and the OpenAI-compatible servers of vLLM and SGLang return
them, and is answered with the probability of each option read from the alternatives of the
first answer token that is not blank, every spelling of a word merged. The first such query
goes alone: a server that refuses logprobs (HTTP 400 naming them) or ignores them is then known
from one request, said once, and sent no other options query.

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
import secrets
import ssl
import time
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from iqa_eval.images import ImageStore
from iqa_eval.models.base import (
    NO_PROBABILITIES,
    Capabilities,
    ModelClient,
    ModelIdentity,
    ModelOptions,
    NotSent,
    PermanentModelError,
    TransientModelError,
    UnreachableError,
)
from iqa_eval.models.pricing import PriceTable
from iqa_eval.protocols.levels import merge
from iqa_eval.types import Answer, Query, QueryImage, Usage
from iqa_eval.version import __version__

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_KEY = "not-needed"
"""Sent to local servers when no key is set: they ignore it, and some reject a request without one."""

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s'\",;]+"), r"\1 ***"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), "sk-***"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@"), r"\1"),  # user:password@ in URLs
)
MAX_DETAIL_CHARS = 500
MAX_BODY_BYTES = 64 * 1024 * 1024
"""A chat completion is a few kilobytes; a server sending more than this is broken or hostile, and
reading on would only fill the memory."""
_ERROR_BODY_CHARS = 4000
DOWN_AFTER = 5
"""Failures in a row (refused, unresolved, timed out, 5xx) after which an endpoint that has not
answered for ``QUIET_S`` seconds is taken out of the rotation."""
QUIET_S = 10.0
"""A burst of 5xx from a server that answered a moment ago is a hiccup to retry, not an outage."""
VOLATILE_CREATED_S = 600.0
"""vLLM and SGLang fill a listing's ``created`` with the time of the listing request itself; a
value this close to now identifies nothing and would make every run a new identity."""
PROBE_TEXT = "Reply with the word OK."
TOP_LOGPROBS = 20
"""The most alternatives OpenAI returns per token (vLLM and SGLang allow as many or more)."""
LISTED_FIELDS = ("id", "root", "parent", "owned_by", "created")


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
class _Replica:
    where: str
    """The base URL without credentials: what messages name."""
    base: str
    endpoint: str
    headers: dict[str, str]
    session: aiohttp.ClientSession
    proxy: str | None
    """Looked up once (HTTP(S)_PROXY, NO_PROXY): aiohttp's own lookup (``trust_env``) reads the
    environment and ~/.netrc again for every request."""
    outstanding: int = 0
    failures_in_a_row: int = 0
    last_answer: float = -math.inf
    """When the endpoint last sent any HTTP answer other than a 5xx (monotonic seconds)."""
    last_failure: str = ""
    down: bool = False

    def answered(self) -> None:
        self.failures_in_a_row = 0
        self.last_answer = time.monotonic()

    def failed(self, detail: str) -> bool:
        """Count a connection-level failure; True when it takes the endpoint out of rotation."""
        self.failures_in_a_row += 1
        self.last_failure = detail
        quiet = time.monotonic() - self.last_answer >= QUIET_S
        if not self.down and self.failures_in_a_row >= DOWN_AFTER and quiet:
            self.down = True
            return True
        return False


class OpenAIModel(ModelClient):
    """``openai:<model>`` against one or several base URLs (replicas of one deployment).

    Several replicas are balanced by least outstanding requests, ties taken round-robin. Each
    replica has one keep-alive connection pool with no limit of its own: the engine's
    concurrency is the limit. The pools are opened on first use in the running event loop,
    closed when that loop winds down, and opened afresh if a later call comes from another
    loop, since connections belong to the loop that opened them.
    """

    def __init__(
        self,
        spec: str,
        store: ImageStore,
        options: ModelOptions | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        kind, _, name = spec.partition(":")
        model, at, revision = name.rpartition("@") if "@" in name else (name, "", "")
        if kind != "openai" or not model.strip():
            raise ValueError("use openai:<model> or openai:<model>@<revision>, e.g. openai:gpt-4o")
        if at and not revision.strip():
            raise ValueError("an empty @revision; pin one such as openai:mymodel@<deployment commit>")
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
        self.revision = revision or None
        # The same for every replica of the deployment; the served identity refines it.
        self.fingerprint = f"openai:{model}" + (f"@{revision}" if revision else "")
        self.capabilities = Capabilities(max_images=None, probabilities=True)
        self.cacheable = True
        self.urls = tuple(urls)
        self.detail = options.image_detail
        self.timeout_s = options.timeout_s
        self.prices = prices or PriceTable()
        self.price_note = self.prices.note(model)
        self._store = store
        self._key = key
        self._replicas: list[_Replica] = []
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._turn = itertools.count()
        self._notices: list[str] = []
        self._logprobs_known = False
        self._logprobs_refused: str | None = None
        self._first_options: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._urls: dict[tuple[str, str], bytes] = {}
        """Each image's data URL by path and encoding, made once: a dict's get and set are atomic
        under the GIL, and two threads making the same one make the same bytes."""
        self._mark = f"iqa-image-{secrets.token_hex(16)}"
        """Stands for an image's data URL in the JSON of a body until the URL is spliced in."""

    @property
    def price_unknown(self) -> str | None:
        return self.price_note

    def notices(self) -> list[str]:
        return list(self._notices)

    def refuses_probabilities(self) -> str | None:
        return self._logprobs_refused

    def estimate_cost(self, queries: Sequence[Query]) -> float | None:
        """An upper estimate: prompt tokens from the text (about 4 characters a token) and the
        images (OpenAI's tiles: 85 tokens, plus 170 per 512-px tile at high detail after fitting
        2048 px and scaling the short side to 768), and every answer at ``max_tokens``."""
        price = self.prices.lookup(self.model)
        if price is None:
            return None
        prompt = completion = 0
        for query in queries:
            prompt += len(query.text) // 4 + sum(
                _image_tokens(im.stimulus.width, im.stimulus.height, self.detail) for im in query.images
            )
            completion += query.decoding.max_tokens
        return price.cost(Usage(prompt, completion))

    # -- identity ------------------------------------------------------------------------------

    async def identify(self) -> ModelIdentity:
        """The fingerprint plus what every live endpoint says it serves.

        Replicas that describe themselves differently make one identity of all their
        descriptions, so a change on any of them is a change of the model under test.
        """
        described = []
        for replica in [r for r in self._open() if not r.down]:
            described.append(await self._describe(replica))
        if not described:
            raise self._unreachable()
        if all(d == described[0] for d in described):
            served = described[0]
        else:
            served = {f"{i}.{k}": v for i, d in enumerate(described) for k, v in d.items()}
        return ModelIdentity.of(self.spec, self.fingerprint, served)

    async def _describe(self, replica: _Replica) -> dict[str, object]:
        served: dict[str, object] = {}
        status, _, raw = await self._exchange(replica, "GET", replica.base + "/models", None)
        if 200 <= status < 300:
            served.update(self._listed(raw))
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROBE_TEXT}],
            "max_tokens": 1,
            "temperature": 0,
        }
        status, headers, raw = await self._exchange(
            replica, "POST", replica.endpoint, json.dumps(body).encode("ascii")
        )
        if not 200 <= status < 300:
            raise self._status_error(status, headers, raw, replica.where)
        try:
            data = json.loads(raw)
        except ValueError:
            raise TransientModelError("malformed", f"{replica.where} sent a body that is not JSON") from None
        if isinstance(data, dict):
            for name in ("model", "system_fingerprint"):
                if isinstance(data.get(name), str | int):
                    served[name] = data[name]
        return served

    def _listed(self, raw: bytes) -> dict[str, object]:
        """This model's entry of a ``/v1/models`` listing, as ``listing.<field>`` (empty when the
        server lists nothing readable or not this model)."""
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        entries = data.get("data") if isinstance(data, dict) else None
        entry = next(
            (e for e in entries or [] if isinstance(e, dict) and e.get("id") == self.model),
            None,
        )
        if entry is None:
            return {}
        listed = {f"listing.{k}": entry[k] for k in LISTED_FIELDS if isinstance(entry.get(k), str | int)}
        created = entry.get("created")
        if isinstance(created, int | float) and abs(time.time() - created) < VOLATILE_CREATED_S:
            listed.pop("listing.created", None)
        return listed

    def _unreachable(self) -> UnreachableError:
        gone = "; ".join(f"{r.where}: {r.last_failure}" for r in self._replicas if r.down)
        return UnreachableError(
            f"{gone or ', '.join(redact_url(u) for u in self.urls)} failed {DOWN_AFTER} requests in a row "
            f"without answering for {QUIET_S:g} s"
        )

    # -- request -------------------------------------------------------------------------------

    def request(self, query: Query) -> dict[str, Any]:
        """The chat-completions arguments: the text first, then every image in presentation order."""
        return self._arguments(query, [self._data_url(image).decode("ascii") for image in query.images])

    def _arguments(self, query: Query, urls: Sequence[str]) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": query.text}]
        for url in urls:
            content.append({"type": "image_url", "image_url": {"url": url, "detail": self.detail}})
        args: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": query.decoding.temperature,
            "max_tokens": query.decoding.max_tokens,
        }
        if query.decoding.seed is not None:
            args["seed"] = query.decoding.seed
        if query.options:
            args["logprobs"] = True
            args["top_logprobs"] = TOP_LOGPROBS
        return args

    def body(self, query: Query) -> bytes:
        """``json.dumps(self.request(query))`` as ASCII bytes, made without serialising the images.

        The images are ~99% of a body (~400 KB for three 384x384 PNGs): base64 and JSON over
        them cost about 2 ms a request, more than the rest of the client's work on it. Their
        data URLs are made once per image and spliced into the JSON of everything else, at the
        places a mark held; a data URL holds no character JSON escapes, so the bytes are exactly
        what ``json.dumps`` gives.
        """
        urls = [self._data_url(image) for image in query.images]
        pieces = (
            json.dumps(self._arguments(query, [self._mark] * len(urls)))
            .encode("ascii")
            .split(self._mark.encode("ascii"))
        )
        if len(pieces) != len(urls) + 1:  # the prompt itself holds the mark: never in practice
            return json.dumps(self.request(query)).encode("ascii")
        spliced = [pieces[0]]
        for url, piece in zip(urls, pieces[1:], strict=True):
            spliced += (url, piece)
        return b"".join(spliced)

    def _data_url(self, image: QueryImage) -> bytes:
        key = (image.stimulus.path, image.encoding)
        url = self._urls.get(key)
        if url is None:
            png = self._store.png(image.stimulus.path, image.encoding)
            url = self._urls[key] = b"data:image/png;base64," + base64.b64encode(png)
        return url

    def _ready(self, query: Query) -> bool:
        """Whether every image of the query has its data URL made: the body is then a join of
        bytes, cheaper than a hop to a thread."""
        return all((image.stimulus.path, image.encoding) in self._urls for image in query.images)

    async def answer(self, query: Query) -> Answer:
        if not query.options:
            return await self._send(query)
        if not self._logprobs_known:
            loop = asyncio.get_running_loop()
            first = self._first_options.setdefault(loop, asyncio.Lock())
            async with first:
                if not self._logprobs_known:
                    answer = await self._send(query)
                    self._logprobs_known = True
                    return answer
        if self._logprobs_refused is not None:
            # The first levels query found out (this one may have waited for it): never sent.
            raise NotSent(Answer(None, error=NO_PROBABILITIES, detail=self._logprobs_refused))
        return await self._send(query)

    async def _send(self, query: Query) -> Answer:
        # Reading or encoding an image the first time it is used (about 12 ms to encode 384x384)
        # is work for a thread, so hundreds of requests in flight keep moving meanwhile; once
        # its data URLs are made, a body is a join of bytes, cheaper than the hop.
        body = self.body(query) if self._ready(query) else await asyncio.to_thread(self.body, query)
        replica = self._pick()
        start = time.perf_counter()
        status, headers, raw = await self._exchange(replica, "POST", replica.endpoint, body)
        latency = time.perf_counter() - start
        if not 200 <= status < 300:
            said = _server_message(raw)
            if query.options and status == 400 and "logprob" in said.lower():
                return self._refuse_logprobs(self._scrub(f"HTTP 400 from {replica.where}: {said}"))
            raise self._status_error(status, headers, raw, replica.where)
        data = self._parsed(raw, replica.where)
        answer = self._read(data, replica.where, latency)
        if not query.options or not answer.ok:
            return answer
        alternatives = _first_token_alternatives(data)
        if alternatives is None:
            return self._refuse_logprobs(f"{replica.where} answered without logprobs")
        return replace(answer, probabilities=merge(alternatives, query.options))

    def _refuse_logprobs(self, detail: str) -> Answer:
        """Remember that the server gives no logprobs, saying so once; the query fails with it."""
        if self._logprobs_refused is None:
            self._logprobs_refused = (
                f"the server gives no logprobs ({detail}), so {self.spec} has no levels system"
            )
            self._notices.append(f"{self.spec}: {self._logprobs_refused}; its levels cells are skipped")
        return Answer(None, error=NO_PROBABILITIES, detail=self._logprobs_refused)

    async def _exchange(
        self, replica: _Replica, method: str, url: str, body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange with an endpoint, counted towards taking it out of rotation."""
        where = replica.where
        replica.outstanding += 1
        try:
            async with replica.session.request(
                method,
                url,
                data=body,
                headers=replica.headers,
                proxy=replica.proxy,
                allow_redirects=False,
            ) as response:
                raw = await _read_bounded(response, where)
                status, headers = response.status, response.headers
        except TimeoutError:
            raise self._lost(
                replica, TransientModelError("timeout", f"no answer from {where} within {self.timeout_s:g} s")
            ) from None
        except aiohttp.ClientConnectorCertificateError as err:
            # Every request would meet the same certificate: stop at once, saying what to do.
            raise PermanentModelError(
                "tls",
                self._scrub(
                    f"{where}: the server's certificate is not trusted ({err.certificate_error}); if a "
                    "private CA or a proxy signs it, point SSL_CERT_FILE at that CA's certificate"
                ),
            ) from None
        except (aiohttp.ClientError, OSError) as err:
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise self._lost(
                replica, TransientModelError("connection", self._scrub(f"{where}: {reason}"))
            ) from None
        finally:
            replica.outstanding -= 1
        if status >= 500:
            self._lost(replica, TransientModelError("server_error", f"HTTP {status} from {where}"))
        else:
            replica.answered()
        return status, headers, raw

    def _lost(self, replica: _Replica, err: TransientModelError) -> TransientModelError:
        """Count a failure against the endpoint, saying once when it leaves the rotation."""
        if replica.failed(err.detail):
            live = [r.where for r in self._replicas if not r.down]
            rest = f"sending to {', '.join(live)}" if live else "no endpoint left"
            self._notices.append(
                f"{self.spec}: {replica.where} failed {replica.failures_in_a_row} requests in a row "
                f"({err.detail}); stopped sending to it, {rest}"
            )
        return err

    @staticmethod
    def _parsed(raw: bytes, where: str) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise TransientModelError("malformed", f"{where} sent a body that is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise TransientModelError("malformed", f"{where} sent JSON that is not an object")
        return data

    def _read(self, data: dict[str, Any], where: str, latency: float) -> Answer:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TransientModelError("empty", f"{where} sent an answer without choices")
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        usage_in = data.get("usage")
        usage_in = usage_in if isinstance(usage_in, dict) else {}
        usage = Usage(_count(usage_in.get("prompt_tokens")), _count(usage_in.get("completion_tokens")))
        cost = self.prices.cost(self.model, usage)
        finish = choice.get("finish_reason")
        refusal = message.get("refusal")
        text = _text(message.get("content"))
        empty = text is None or not text.strip()
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
        if text is None or empty:
            raise TransientModelError("empty", f"{where} sent an empty answer")
        return Answer(text, usage=usage, latency_s=latency, cost_usd=cost)

    def _status_error(self, status: int, headers: Mapping[str, str], raw: bytes, where: str) -> Exception:
        said = self._scrub(f"HTTP {status} from {where}: {_server_message(raw)}")
        if status == 429:
            return TransientModelError("rate_limited", said, retry_after=parse_retry_after(headers))
        if status >= 500 or status in (408, 409, 425):
            return TransientModelError("server_error", said)
        if status in (401, 403):
            return PermanentModelError("auth", f"{said}; check OPENAI_API_KEY and its access to {self.model}")
        if status == 404:
            return PermanentModelError(
                "model_not_found", f"{said}; check the model name {self.model!r} and the base URL"
            )
        if 300 <= status < 400:
            target = redact_url(headers.get("location", "")) or "elsewhere"
            return PermanentModelError(
                "bad_request", f"{said}; the server redirects to {target}: use that as the base URL"
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
        replicas = [r for r in self._open() if not r.down]
        if not replicas:
            raise self._unreachable()
        turn = next(self._turn)
        n = len(replicas)
        return min(
            (replicas[(turn + i) % n] for i in range(n)),
            key=lambda r: r.outstanding,
        )

    def _open(self) -> list[_Replica]:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop() is not loop:
            self._abandon()
            self._replicas = [self._replica(url) for url in self.urls]
            self._loop = weakref.ref(loop)
            self._keeper = loop.create_task(_close_when_cancelled(self._replicas))
        return self._replicas

    def _replica(self, url: str) -> _Replica:
        # A user:password in the URL travels as the Basic auth the URL would have given, and the
        # URL is kept without it: messages and logs name the endpoint, and must not carry the
        # password.
        parts = urlsplit(url)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"iqa-eval/{__version__}",
        }
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        else:
            headers["Authorization"] = f"Bearer {self._key}"
        for variable, header in (
            ("OPENAI_ORG_ID", "OpenAI-Organization"),
            ("OPENAI_PROJECT_ID", "OpenAI-Project"),
        ):
            if os.environ.get(variable, "").strip():
                headers[header] = os.environ[variable].strip()
        # A context of the client's own, made now, so SSL_CERT_FILE / SSL_CERT_DIR as set when the
        # client is built are honoured (aiohttp's default context is made once, at its import).
        tls: ssl.SSLContext | bool = ssl.create_default_context() if parts.scheme == "https" else True
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=tls),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        )
        where = redact_url(url)
        base = where.rstrip("/")
        return _Replica(where, base, base + "/chat/completions", headers, session, _proxy_for(url))

    def _abandon(self) -> None:
        """Let go of pools of a loop that was closed with its tasks still pending (so they could
        not close with it); their connections went with that loop."""
        for replica in self._replicas:
            if not replica.session.closed:
                replica.session.detach()
        self._replicas = []

    async def aclose(self) -> None:
        replicas, self._replicas, self._loop = self._replicas, [], None
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
        for replica in replicas:
            await replica.session.close()


async def _close_when_cancelled(replicas: list[_Replica]) -> None:
    """Wait until cancelled, then close the replicas' pools.

    A loop winding down (``asyncio.run`` returning, ``Engine.close``) cancels every task still
    pending and lets them finish: this one then closes the pools in the loop they belong to, so
    a caller that never calls ``aclose`` leaves no connection behind.
    """
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        for replica in replicas:
            await replica.session.close()


async def _read_bounded(response: aiohttp.ClientResponse, where: str) -> bytes:
    body = bytearray()
    declared = response.content_length
    if declared is None or declared <= MAX_BODY_BYTES:
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                break
    if len(body) > MAX_BODY_BYTES or (declared is not None and declared > MAX_BODY_BYTES):
        raise TransientModelError("malformed", f"{where} sent a body of more than {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None (no proxy, or ``NO_PROXY`` says so)."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _image_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    fit = min(1.0, 2048 / max(width, height))
    short = min(1.0, 768 / (min(width, height) * fit))
    tiles = math.ceil(width * fit * short / 512) * math.ceil(height * fit * short / 512)
    return 85 + 170 * tiles


def _count(value: object) -> int:
    """A token count from the answer, or 0 for anything that is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(int(value), 0)


def _text(content: object) -> str | None:
    """The answer's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def _first_token_alternatives(data: dict[str, Any]) -> list[tuple[str, float]] | None:
    """The first non-blank answer token's alternatives as (token, probability), from
    ``choices[0].logprobs.content`` (OpenAI, vLLM, SGLang) of an answer :meth:`_read` accepted;
    None when the answer has none."""
    choice = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    for entry in content:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            continue
        if not entry["token"].strip():
            continue  # a leading space or line break: the answer word is the next token
        listed = entry.get("top_logprobs")
        pairs = [
            (str(alt["token"]), math.exp(float(alt["logprob"])))
            for alt in (listed if isinstance(listed, list) else [])
            if isinstance(alt, dict) and isinstance(alt.get("token"), str) and _finite(alt.get("logprob"))
        ]
        if entry["token"] not in {t for t, _ in pairs} and _finite(entry.get("logprob")):
            pairs.append((entry["token"], math.exp(float(entry["logprob"]))))
        return pairs
    return []  # logprobs, but no answer word at all: a failure of this answer, not of the server


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value <= 0
    )


def _server_message(raw: bytes) -> str:
    text = raw[:_ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
    try:
        body = json.loads(raw)
    except ValueError:
        return text or "no message"
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        return str(inner["message"])
    if isinstance(inner, str) and inner.strip():
        return inner.strip()
    return text or "no message"
