"""The OpenAI client: request shape, error mapping and secrets (a scripted local server), the
request checked against the OpenAI SDK's own types, prices, and the real plugin end to end
against the fake server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
import socket
import ssl
from pathlib import Path
from typing import NamedTuple

import httpx2
import numpy as np
import openai
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import RawTestServer
from fake_openai import REFUSAL, constant, prompt_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion
from PIL import Image
from yarl import URL

from iqa_eval.images import ImageStore
from iqa_eval.models import openai_api
from iqa_eval.models.base import ModelOptions, PermanentModelError, TransientModelError
from iqa_eval.models.openai_api import LOCAL_KEY, OpenAIModel, parse_retry_after
from iqa_eval.models.pricing import DEFAULT_TABLE, Price, PricesError, PriceTable, cost
from iqa_eval.models.registry import ModelSpecError, make_client
from iqa_eval.plugin import EXIT_UNMEASURED
from iqa_eval.types import Decoding, Query, QueryImage, Usage

KEY = "sk-proj-secretKEY0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def images(tmp_path):
    """Three distinct 24x20 RGB files: a reference and two judged images."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def fr_ds_query(store, paths, decoding=None):
    roles = ("reference", "image", "image")
    images = tuple(QueryImage(role, store.stimulus(p)) for role, p in zip(roles, paths, strict=True))
    decoding = decoding or Decoding()
    return Query("fr", "ds", "standard", "fr-ds-standard@1", "h", "Which is closer?", images, decoding)


def completion_body(text="Score: 1", refusal=None, usage=(1000, 10), choices=True, finish="stop"):
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
                "finish_reason": finish,
            }
        ]
        if choices
        else [],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def completion(**fields):
    return web.json_response(completion_body(**fields))


def raw(status=200, body=b"", content_type="application/json", headers=None):
    return web.Response(status=status, body=body, content_type=content_type, headers=headers)


class Seen(NamedTuple):
    url: URL
    target: str
    """The request line's target: a path, or the whole URL when sent to a proxy."""
    headers: dict[str, str]
    content: bytes


class Recorder:
    """A scripted server's handler: replies with ``reply()`` and keeps every request."""

    def __init__(self, reply):
        self.reply = reply
        self.requests: list[Seen] = []

    async def __call__(self, request):
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Seen(request.url, request.raw_path, headers, await request.read()))
        reply = self.reply()
        return await reply if asyncio.iscoroutine(reply) else reply

    def body(self, index=-1):
        return json.loads(self.requests[index].content)


def closed_port():
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ask(
    store, recorder, query, spec="openai:gpt-4o", url="http://127.0.0.1:{port}/v1", replicas=1, **options
):
    """Answer ``query`` with a client whose base URLs are ``replicas`` scripted servers."""

    async def go():
        servers = [RawTestServer(recorder, host="127.0.0.1", port=0) for _ in range(replicas)]
        for server in servers:
            await server.start_server()
        urls = tuple(url.format(port=server.port) for server in servers)
        client = OpenAIModel(spec, store, ModelOptions(base_urls=urls, **options))
        try:
            if isinstance(query, list):
                return await asyncio.gather(*(client.answer(q) for q in query))
            return await client.answer(query)
        finally:
            await client.aclose()
            for server in servers:
                await server.close()

    return asyncio.run(go())


def answer_once(client, query):
    async def go():
        try:
            return await client.answer(query)
        finally:
            await client.aclose()

    return asyncio.run(go())


# -- request shape -----------------------------------------------------------------------------


def test_request_sends_text_then_lossless_pngs_in_order_with_detail_and_decoding(images):
    store = ImageStore()
    recorder = Recorder(completion)
    query = fr_ds_query(store, images, Decoding(temperature=0.0, max_tokens=64, seed=5))
    answer = ask(store, recorder, query, image_detail="low")
    assert answer.text == "Score: 1" and answer.usage == Usage(1000, 10)
    (request,) = recorder.requests
    assert request.url.path == "/v1/chat/completions"
    assert request.headers["content-type"] == "application/json"
    # Sent in pieces, received as the one body json.dumps gives, with its length declared.
    options = ModelOptions(base_urls=("http://127.0.0.1:9/v1",), image_detail="low")
    whole = OpenAIModel("openai:gpt-4o", store, options).body(query)
    assert request.content == whole and request.headers["content-length"] == str(len(whole))
    body = recorder.body()
    assert body["model"] == "gpt-4o" and body["temperature"] == 0.0
    assert body["max_tokens"] == 64 and body["seed"] == 5
    (message,) = body["messages"]
    assert message["role"] == "user"
    assert message["content"][0] == {"type": "text", "text": "Which is closer?"}
    sent = message["content"][1:]
    assert [part["type"] for part in sent] == ["image_url"] * 3
    assert {part["image_url"]["detail"] for part in sent} == {"low"}
    for part, path in zip(sent, images, strict=True):
        prefix, _, data = part["image_url"]["url"].partition(",")
        assert prefix == "data:image/png;base64"
        png = base64.b64decode(data)
        assert png == store.png(path)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), store.pixels(path))
        assert png == Path(path).read_bytes()  # a plain RGB PNG travels as its own file
    assert store.encode_count == 0


def test_the_request_is_the_one_the_openai_sdk_sends(images):
    """The OpenAI SDK is the reference for the wire format: given the same arguments through
    ``chat.completions.create``, it must send the very body this client sends."""
    store = ImageStore()
    client = OpenAIModel("openai:gpt-4o", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",)))
    sent = []

    def capture(request):
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=completion_body())

    async def through_the_sdk(query):
        transport = httpx2.MockTransport(capture)
        http = openai.DefaultAsyncHttpxClient(transport=transport)
        async with openai.AsyncOpenAI(api_key="k", base_url="http://sdk/v1", http_client=http) as sdk:
            await sdk.chat.completions.create(**client.request(query))

    for decoding in (Decoding(), Decoding(temperature=0.7, max_tokens=7, seed=3)):
        query = fr_ds_query(store, images, decoding)
        asyncio.run(through_the_sdk(query))
        assert sent[-1] == json.loads(client.body(query))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(),
    encodings=st.lists(st.sampled_from(["png", "png9"]), min_size=0, max_size=3),
    temperature=st.floats(0, 2),
    max_tokens=st.integers(1, 4096),
    seed=st.none() | st.integers(0, 2**31),
    detail=st.sampled_from(["auto", "low", "high"]),
    options=st.sampled_from([(), ("bad", "poor", "fair", "good", "excellent")]),
)
def test_the_body_is_json_dumps_of_the_request_whatever_the_prompt(
    images, text, encodings, temperature, max_tokens, seed, detail, options
):
    """The body splices each image's data URL, made once, into the JSON of the rest: it must be
    the very bytes ``json.dumps`` gives for the request, on first use and on every reuse, even
    for a prompt that holds the mark an image stands in by."""
    store = ImageStore()
    client = OpenAIModel(
        "openai:gpt-4o", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",), image_detail=detail)
    )
    roles = ("reference", "image", "image")
    chosen = tuple(
        QueryImage(roles[i], store.stimulus(images[i]), encoding) for i, encoding in enumerate(encodings)
    )
    for prompt in (text, f"{text}{client._mark}{text}"):
        query = Query(
            "fr", "ds", "standard", "t@1", "h", prompt, chosen, Decoding(temperature, max_tokens, seed)
        )
        first = client.body(query)
        assert first == json.dumps(client.request(query)).encode("ascii")
        assert client.body(query) == first
        assert OpenAIModel("openai:gpt-4o", ImageStore(), ModelOptions(
            base_urls=("http://127.0.0.1:9/v1",), image_detail=detail)).body(query) == first  # fmt: skip


def test_each_image_is_read_and_made_a_data_url_once_however_many_queries_use_it(images, monkeypatch):
    store = ImageStore()
    client = OpenAIModel("openai:gpt-4o", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",)))
    made = []
    real = base64.b64encode
    monkeypatch.setattr(openai_api.base64, "b64encode", lambda data: made.append(data) or real(data))
    queries = [fr_ds_query(store, images, Decoding(max_tokens=n)) for n in (5, 6, 7)]
    bodies = [client.body(q) for q in queries]
    assert len(made) == 3 and made == [store.png(p) for p in images]
    assert [json.loads(b)["max_tokens"] for b in bodies] == [5, 6, 7]


def test_answers_are_read_as_the_openai_sdk_reads_them(images):
    store = ImageStore()
    for fields in ({}, {"text": "Description: fine. Score: 72", "usage": (17, 4), "finish": "length"}):
        body = completion_body(**fields)
        sdk = ChatCompletion.model_validate(body)
        answer = ask(store, Recorder(lambda body=body: web.json_response(body)), fr_ds_query(store, images))
        assert answer.text == sdk.choices[0].message.content
        assert answer.usage == Usage(sdk.usage.prompt_tokens, sdk.usage.completion_tokens)


def test_seed_is_left_out_when_not_set(images):
    store = ImageStore()
    recorder = Recorder(completion)
    ask(store, recorder, fr_ds_query(store, images))
    assert "seed" not in recorder.body()


def test_an_unknown_model_costs_nothing_and_says_its_price_is_unknown(images):
    store = ImageStore()
    answer = ask(store, Recorder(completion), fr_ds_query(store, images), spec="openai:my-local-vlm")
    assert answer.ok and answer.cost_usd == 0.0
    client = OpenAIModel("openai:my-local-vlm", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",)))
    assert "prices unknown for 'my-local-vlm'" in client.price_note


def test_cost_follows_the_price_table(images):
    store = ImageStore()
    answer = ask(store, Recorder(lambda: completion(usage=(1_000_000, 100_000))), fr_ds_query(store, images))
    assert answer.cost_usd == pytest.approx(2.50 + 1.00)
    assert (
        OpenAIModel("openai:gpt-4o", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",))).price_note
        is None
    )


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ([{"type": "text", "text": "Score: "}, {"type": "text", "text": "40"}], "Score: 40"),
        ("Score: 40", "Score: 40"),
    ],
)
def test_content_given_as_parts_is_joined(images, content, text):
    store = ImageStore()
    body = completion_body()
    body["choices"][0]["message"]["content"] = content
    assert ask(store, Recorder(lambda: web.json_response(body)), fr_ds_query(store, images)).text == text


@pytest.mark.parametrize(
    "usage", [{"prompt_tokens": "many", "completion_tokens": None}, "lots", None, [1, 2]]
)
def test_odd_usage_fields_count_as_no_tokens_not_as_a_crash(images, usage):
    store = ImageStore()
    body = completion_body()
    body["usage"] = usage
    answer = ask(store, Recorder(lambda: web.json_response(body)), fr_ds_query(store, images))
    assert answer.text == "Score: 1" and answer.usage == Usage(0, 0)


# -- error mapping -----------------------------------------------------------------------------


def error(status, headers=None, message="nope"):
    return lambda: web.json_response({"error": {"message": message}}, status=status, headers=headers)


@pytest.mark.parametrize(
    ("reply", "kind", "reason", "retry_after"),
    [
        (error(429, {"retry-after": "7"}), TransientModelError, "rate_limited", 7.0),
        (error(429, {"retry-after-ms": "250", "retry-after": "9"}), TransientModelError, "rate_limited",
         0.25),
        (error(429), TransientModelError, "rate_limited", None),
        (error(500), TransientModelError, "server_error", None),
        (error(502), TransientModelError, "server_error", None),
        (error(503), TransientModelError, "server_error", None),
        (error(401), PermanentModelError, "auth", None),
        (error(403), PermanentModelError, "auth", None),
        (error(404), PermanentModelError, "model_not_found", None),
        (error(400), PermanentModelError, "bad_request", None),
        (error(422), PermanentModelError, "bad_request", None),
        (lambda: raw(body=b'{"choices": ['), TransientModelError, "malformed", None),
        (lambda: raw(body=b"<html>oops</html>", content_type="text/html"), TransientModelError, "malformed",
         None),
        (lambda: raw(body=b'["Score: 1"]'), TransientModelError, "malformed", None),
        (lambda: raw(body=b"\xff\xfe not utf-8"), TransientModelError, "malformed", None),
        (lambda: completion(choices=False), TransientModelError, "empty", None),
        (lambda: completion(text=""), TransientModelError, "empty", None),
        (lambda: completion(text=None), TransientModelError, "empty", None),
    ],
)  # fmt: skip
def test_errors_map_to_transient_or_permanent(images, reply, kind, reason, retry_after):
    store = ImageStore()
    recorder = Recorder(reply)
    with pytest.raises(kind) as caught:
        ask(store, recorder, fr_ds_query(store, images))
    assert caught.value.reason == reason
    if kind is TransientModelError:
        assert caught.value.retry_after == retry_after
    assert len(recorder.requests) == 1  # no retries of its own: the engine's policy rules


def test_an_error_body_that_is_not_json_is_quoted_as_text(images):
    store = ImageStore()
    with pytest.raises(TransientModelError, match=r"HTTP 502 from .*: upstream went away"):
        ask(
            store, Recorder(lambda: raw(502, b"upstream went away", "text/plain")), fr_ds_query(store, images)
        )


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_size_limit_is_not_read_into_memory(images, monkeypatch, chunked):
    monkeypatch.setattr(openai_api, "MAX_BODY_BYTES", 4096)
    huge = json.dumps(completion_body(text="Score: 1 " + "x" * 100_000)).encode()

    async def stream(request):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if chunked:
            response.enable_chunked_encoding()  # no Content-Length: the limit must be counted
        else:
            response.content_length = len(huge)
        await response.prepare(request)
        await response.write(huge)
        return response

    store = ImageStore()

    async def go():
        server = RawTestServer(stream, host="127.0.0.1", port=0)
        await server.start_server()
        client = OpenAIModel("openai:gpt-4o", store, ModelOptions(base_urls=(str(server.make_url("/v1")),)))
        try:
            return await client.answer(fr_ds_query(store, images))
        finally:
            await client.aclose()
            await server.close()

    with pytest.raises(TransientModelError, match="more than 4096 bytes") as caught:
        asyncio.run(go())
    assert caught.value.reason == "malformed"
    assert ask(store, Recorder(completion), fr_ds_query(store, images)).text == "Score: 1"  # small ones pass


def test_a_redirect_is_not_followed_but_named(images):
    """A POST that meets a redirect (http:// to https://, a moved path) is a wrong base URL: the
    message says where the server points instead of following it with another method."""
    store = ImageStore()
    moved = lambda: raw(301, b"", headers={"Location": "https://user:pw@api.example.com/v1/chat/completions"})  # noqa: E731
    recorder = Recorder(moved)
    with pytest.raises(PermanentModelError) as caught:
        ask(store, recorder, fr_ds_query(store, images))
    assert caught.value.reason == "bad_request" and len(recorder.requests) == 1
    assert "redirects to https://api.example.com/v1/chat/completions" in str(caught.value)
    assert "pw@" not in str(caught.value)


def test_a_slow_server_is_a_timeout(images):
    async def stall():
        await asyncio.sleep(2)
        return completion()

    store = ImageStore()
    with pytest.raises(TransientModelError) as caught:
        ask(store, Recorder(stall), fr_ds_query(store, images), timeout_s=0.1)
    assert caught.value.reason == "timeout" and "within 0.1 s" in str(caught.value)


def test_a_server_that_is_not_there_is_a_connection_failure(images):
    store = ImageStore()
    client = OpenAIModel(
        "openai:gpt-4o", store, ModelOptions(base_urls=(f"http://127.0.0.1:{closed_port()}/v1",))
    )

    with pytest.raises(TransientModelError) as caught:
        answer_once(client, fr_ds_query(store, images))
    assert caught.value.reason == "connection" and "127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "reason", "detail"),
    [
        (lambda: completion(text=None, refusal=REFUSAL), "refusal", REFUSAL),
        (lambda: completion(text=None, finish="content_filter"), "refusal", "content filter"),
        (lambda: completion(text="", finish="length"), "truncated", "raise --iqa-max-tokens"),
    ],
)
def test_refusals_and_cut_off_answers_are_failure_answers_not_retried(images, reply, reason, detail):
    store = ImageStore()
    recorder = Recorder(reply)
    answer = ask(store, recorder, fr_ds_query(store, images))
    assert answer.text is None and answer.error == reason and detail in answer.detail
    assert answer.cost_usd > 0  # billed all the same
    assert len(recorder.requests) == 1


def test_the_key_never_reaches_an_error_message(images, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = ImageStore()
    echo = f"Incorrect API key provided: {KEY}. Sent: Authorization: Bearer {KEY}; also sk-other-leaked-key99"
    recorder = Recorder(error(401, message=echo))
    with pytest.raises(PermanentModelError) as caught:
        ask(store, recorder, fr_ds_query(store, images))
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"
    text = str(caught.value)
    assert caught.value.reason == "auth" and "Incorrect API key provided" in text
    for secret in (KEY, KEY[8:], "sk-other-leaked-key99"):
        assert secret not in text


def test_a_password_in_the_base_url_travels_as_basic_auth_and_never_in_a_message(images):
    store = ImageStore()
    recorder = Recorder(error(401, message="who are you?"))
    with pytest.raises(PermanentModelError) as caught:
        ask(store, recorder, fr_ds_query(store, images), url="http://user:hunter2@127.0.0.1:{port}/v1")
    assert (
        recorder.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"user:hunter2").decode()
    )
    assert "127.0.0.1" in str(caught.value) and "hunter2" not in str(caught.value)
    client = OpenAIModel(
        "openai:m", store, ModelOptions(base_urls=(f"http://user:hunter2@127.0.0.1:{closed_port()}/v1",))
    )

    with pytest.raises(TransientModelError) as caught:
        answer_once(client, fr_ds_query(store, images))
    assert "127.0.0.1" in str(caught.value) and "hunter2" not in str(caught.value)


def test_organization_and_project_headers_come_from_the_environment(images, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-abc")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_xyz")
    store = ImageStore()
    recorder = Recorder(completion)
    ask(store, recorder, fr_ds_query(store, images))
    headers = recorder.requests[0].headers
    assert headers["openai-organization"] == "org-abc" and headers["openai-project"] == "proj_xyz"
    assert headers["user-agent"].startswith("iqa-eval/")


def test_requests_go_through_the_proxy_the_environment_names(images, monkeypatch):
    """The scripted server plays the proxy: a proxied request names the whole target URL."""
    store = ImageStore()
    target = f"http://127.0.0.1:{closed_port()}/v1"

    async def go(no_proxy):
        proxy = Recorder(completion)
        server = RawTestServer(proxy, host="127.0.0.1", port=0)
        await server.start_server()
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("NO_PROXY", no_proxy)
        client = OpenAIModel("openai:gpt-4o", store, ModelOptions(base_urls=(target,)))
        try:
            return await client.answer(fr_ds_query(store, images)), proxy
        finally:
            await client.aclose()
            await server.close()

    answer, proxy = asyncio.run(go(no_proxy="example.org"))
    assert answer.text == "Score: 1" and proxy.requests[0].target == f"{target}/chat/completions"
    with pytest.raises(TransientModelError, match="connection"):  # bypassed: straight to the closed port
        asyncio.run(go(no_proxy="127.0.0.1"))


def test_https_trusts_what_ssl_cert_file_names_and_stops_at_once_on_an_untrusted_certificate(
    images, monkeypatch, tmp_path
):
    """A private CA (a company proxy, an internal vLLM) is trusted through SSL_CERT_FILE; without
    it, every request would meet the same certificate, so the run stops at the first with a
    message that says what to do, instead of retrying each query."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    store = ImageStore()
    recorder = Recorder(completion)

    async def go():
        server = RawTestServer(recorder, host="127.0.0.1", port=0)
        await server.start_server(ssl=server_tls)
        url = f"https://127.0.0.1:{server.port}/v1"
        client = OpenAIModel("openai:gpt-4o", store, ModelOptions(base_urls=(url,)))
        try:
            return await client.answer(fr_ds_query(store, images))
        finally:
            await client.aclose()
            await server.close()

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(PermanentModelError) as caught:
        asyncio.run(go())
    assert caught.value.reason == "tls" and "SSL_CERT_FILE" in str(caught.value)
    assert "certificate" in str(caught.value) and not recorder.requests

    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert asyncio.run(go()).text == "Score: 1"
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("retry_headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "20"}, 0.02),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: now
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(retry_headers, seconds):
    assert parse_retry_after(retry_headers) == seconds


# -- construction: keys, URLs, replicas --------------------------------------------------------


def test_a_remote_server_without_a_key_is_a_clear_error():
    with pytest.raises(ModelSpecError, match="set OPENAI_API_KEY"):
        make_client("openai:gpt-4o", ImageStore())


def test_a_local_server_needs_no_key(images):
    store = ImageStore()
    recorder = Recorder(completion)
    ask(store, recorder, fr_ds_query(store, images), url="http://localhost:{port}/v1")
    assert recorder.requests[0].headers["authorization"] == f"Bearer {LOCAL_KEY}"


def test_base_url_comes_from_options_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert OpenAIModel("openai:m", ImageStore()).urls == ("https://api.openai.com/v1",)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")
    assert OpenAIModel("openai:m", ImageStore()).urls == ("http://127.0.0.1:1234/v1",)
    options = ModelOptions(base_urls=("http://a:1/v1", "http://b:2/v1"))
    assert OpenAIModel("openai:m", ImageStore(), options).urls == ("http://a:1/v1", "http://b:2/v1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [("openai:", "use openai:<model>"), ("openai:m", "is not an http(s) URL")],
)
def test_bad_specs_and_urls_are_clear_errors(spec, message):
    with pytest.raises(ModelSpecError, match=re.escape(message)):
        make_client(spec, ImageStore(), ModelOptions(base_urls=("ftp://x/v1",)))


def test_replicas_share_the_load_and_one_fingerprint(images):
    store = ImageStore()
    client = OpenAIModel(
        "openai:gpt-4o", store, ModelOptions(base_urls=("http://127.0.0.1:1/v1", "http://[::1]:2/v1"))
    )
    assert client.fingerprint == "openai:gpt-4o" and client.cacheable

    async def slow():
        await asyncio.sleep(0.05)
        return completion()

    recorder = Recorder(slow)
    ask(store, recorder, [fr_ds_query(store, images)] * 10, replicas=2)
    ports = [r.url.port for r in recorder.requests]
    # Least-outstanding balancing: which replica a request meets depends on what is still in
    # flight when it starts, so under load the split may differ by a request or two.
    assert len(ports) == 10 and abs(ports.count(ports[0]) - ports.count(ports[-1])) <= 2


def test_unknown_spec_lists_every_form():
    with pytest.raises(ModelSpecError) as caught:
        make_client("gpt-9", ImageStore())
    for form in ("expert", "expert:<metric>", "openai:<model>", "hf:<local directory", "replay:<file>"):
        assert form in str(caught.value)
    with pytest.raises(ModelSpecError, match="use hf:<local directory or hub id>"):
        make_client("hf:", ImageStore())  # registered: the adapter itself explains its form


# -- prices ------------------------------------------------------------------------------------


def test_prices_cover_dated_snapshots_and_a_file_overrides_them(tmp_path):
    assert cost("gpt-4o-mini-2024-07-18", Usage(1_000_000, 0)) == pytest.approx(0.15)
    assert DEFAULT_TABLE.lookup("gpt-4o-2024-08-06") == DEFAULT_TABLE.lookup("gpt-4o")
    assert cost("llava-1.6", Usage(10**6, 10**6)) == 0.0
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."llava-1.6"]\ninput = 1\noutput = 2.5\n[models."gpt-4o"]\ninput = 0\noutput = 0\n'
    )
    table = PriceTable.load(path)
    assert table.lookup("llava-1.6") == Price(1.0, 2.5) and table.note("llava-1.6") is None
    assert table.cost("gpt-4o", Usage(10**6, 10**6)) == 0.0
    assert table.lookup("gpt-4.1") == DEFAULT_TABLE.lookup("gpt-4.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.x\n", "not valid TOML"),
        ('[models."x"]\ninput = 1\n', "needs exactly the keys input and output"),
        ('[models."x"]\ninput = -1\noutput = 1\n', "input = -1 is not a non-negative number"),
        ('[models."x"]\ninput = "cheap"\noutput = 1\n', "input = 'cheap' is not a non-negative number"),
        ('[prices."x"]\ninput = 1\noutput = 1\n', "unknown key(s) ['prices']"),
    ],
)
def test_a_bad_price_file_names_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PricesError) as caught:
        PriceTable.load(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


# -- the client and the SDK against the fake server --------------------------------------------


def test_against_the_fake_server(images, fake_openai):
    server = fake_openai(responder=constant("Score: 1"), models=("gpt-4o",))
    store = ImageStore()
    answer = answer_once(model_for(server, store), fr_ds_query(store, images))
    assert answer.text == "Score: 1" and answer.usage.prompt_tokens > 3 * 85
    assert [p["type"] for p in server.last_request["messages"][0]["content"]] == ["text"] + ["image_url"] * 3
    with pytest.raises(PermanentModelError, match="`gpt-5-nope` does not exist") as caught:
        answer_once(model_for(server, store, "openai:gpt-5-nope"), fr_ds_query(store, images))
    assert caught.value.reason == "model_not_found"

    async def listed():
        async with openai.AsyncOpenAI(base_url=server.url, api_key=LOCAL_KEY, max_retries=0) as sdk:
            return [m.id async for m in sdk.models.list()]

    assert asyncio.run(listed()) == ["gpt-4o"]


def test_one_client_serves_one_event_loop_after_another(images, fake_openai):
    server = fake_openai(responder=constant("Score: 1"))
    store = ImageStore()
    client = model_for(server, store)
    first = asyncio.run(client.answer(fr_ds_query(store, images)))
    second = asyncio.run(client.answer(fr_ds_query(store, images)))  # the first loop is closed by now
    assert first.text == second.text == "Score: 1" and server.requests == 2


def model_for(server, store, spec="openai:gpt-4o", **options):
    return OpenAIModel(spec, store, ModelOptions(base_urls=(server.url,), **options))


# -- the real plugin against the fake server ---------------------------------------------------


def run(pytester, shared_cache, *args):
    """The stage-1 systems of the suite only, so tests others add to it do not change the counts."""
    return pytester.runpytest(
        "test_protocols/test_systems.py", f"--iqa-cache={shared_cache}", "-p", "no:randomly", *args
    )


def cells(pytester):
    return json.loads((pytester.path / "reports" / "iqa-report.json").read_text())["cells"]


FR_STRUCTURE_SS = ("-m", "fr_structure and ss and not levels")
STANDARD = ("-m", "fr_structure and ss and standard")  # one cell of 80 queries, where one is enough


def test_an_accurate_model_passes_and_a_rerun_sends_nothing(
    suite_dir, shared_cache, fake_openai, accurate_responder
):
    server = fake_openai(responder=accurate_responder)
    args = ("--iqa-model", "openai:accurate", "--iqa-base-url", server.url, *FR_STRUCTURE_SS)
    run(suite_dir, shared_cache, *args).assert_outcomes(passed=3)
    first = cells(suite_dir)
    assert server.requests == sum(c["n_queries"] for c in first) == 3 * 80
    for cell in first:
        assert cell["model"] == "openai:accurate" and cell["n_failed"] == {} and cell["coverage"] == 1.0
        assert cell["metrics"]["srcc"]["value"] > 0.9
    run(suite_dir, shared_cache, *args).assert_outcomes(passed=3)
    assert server.requests == 3 * 80  # every answer came from the cache
    assert cells(suite_dir) == first


def test_a_reversed_model_fails_its_gates(suite_dir, shared_cache, fake_openai, reversed_responder):
    server = fake_openai(responder=reversed_responder)
    result = run(suite_dir, shared_cache, "--iqa-model", "openai:reversed", "--iqa-base-url", server.url,
                 *STANDARD)  # fmt: skip
    result.assert_outcomes(failed=1)
    assert all(c["outcome"] == "failed" and c["metrics"]["srcc"]["value"] < -0.9 for c in cells(suite_dir))


def test_a_nonsense_model_gets_failed_cells_with_zero_coverage(suite_dir, shared_cache, fake_openai):
    server = fake_openai(responder=constant("I like turtles"))
    result = run(suite_dir, shared_cache, "--iqa-model", "openai:turtles", "--iqa-base-url", server.url,
                 *STANDARD)  # fmt: skip
    result.assert_outcomes(failed=1)
    assert "Traceback" not in result.stdout.str()
    for cell in cells(suite_dir):
        assert cell["outcome"] == "failed" and cell["coverage"] == 0.0
        assert cell["n_failed"] == {"no_score": 80} and cell["metrics"]["srcc"]["value"] is None


def test_a_wrong_key_stops_the_run_with_one_clear_message(suite_dir, shared_cache, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fake_openai(api_key="sk-the-right-one-0000")
    result = run(suite_dir, shared_cache, "--iqa-model", "openai:gpt-4o", "--iqa-base-url", server.url,
                 "--iqa-concurrency", "4", *FR_STRUCTURE_SS)  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    # Not measured is not a capability verdict: its own exit status, every cell an error.
    assert result.ret == EXIT_UNMEASURED
    assert output.count("iqa-eval: openai:gpt-4o: auth: HTTP 401") == 1
    assert "Incorrect API key provided: ***" in output
    assert "Traceback" not in output and KEY not in output and KEY[8:] not in output
    assert server.probes == 1 and server.requests == 0  # the identity probe met the 401 first
    assert {c["outcome"] for c in cells(suite_dir)} == {"error"}
    assert KEY not in (suite_dir.path / "reports" / "iqa-report.json").read_text()


def test_a_budget_stops_sending_and_the_run_still_finishes(suite_dir, shared_cache, fake_openai):
    server = fake_openai(responder=constant("Score: 50"))
    (suite_dir.path / "prices.toml").write_text('[models."pricey"]\ninput = 100\noutput = 0\n')
    result = run(suite_dir, shared_cache, "--iqa-model", "openai:pricey", "--iqa-base-url", server.url,
                 "--iqa-prices", "prices.toml", "--iqa-budget-usd", "0.5", "--iqa-concurrency", "2",
                 *STANDARD)  # fmt: skip
    result.assert_outcomes(failed=1)
    (cell,) = cells(suite_dir)
    # Every query of the cell has the same prompt and two images, hence the same price.
    price = (len(prompt_text(server.last_request)) // 4 + 2 * 85) * 100 / 1e6
    affordable = math.ceil(0.5 / price)
    assert 5 < affordable < 80
    # Sending stops once the spend reaches the budget; the one other request in flight still lands.
    assert affordable <= server.requests <= affordable + 1
    assert cell["n_failed"] == {"budget": 80 - server.requests}
    # A cell left short by the budget could not be measured: an error, not a failed gate.
    assert cell["outcome"] == "error" and "could not be measured" in cell["message"]
    assert result.ret == EXIT_UNMEASURED
    output = result.stdout.str()
    assert output.count("iqa-eval: the budget of $0.5000 stopped sending") == 1
    usage = json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())["run"]["usage"]
    assert usage["sent"] == server.requests and usage["budget_exhausted"]


def test_under_xdist_the_budget_holds_for_the_whole_run_and_usage_counts_every_worker(
    suite_dir, shared_cache, fake_openai
):
    """Each worker has an engine of its own, so each gets a share of the budget: two workers
    with the whole budget each could spend twice it. The report adds up both workers' usage."""
    server = fake_openai(responder=constant("Score: 50"))
    prices = '[models."split"]\ninput = 100\noutput = 0\n[models."split2"]\ninput = 100\noutput = 0\n'
    (suite_dir.path / "prices.toml").write_text(prices)
    # Two models: two scopes, so each worker gets one (all cells of one setting share a worker).
    two_cells = ("-m", "ss and standard and fr_structure", "-k", "not metamorphic")
    result = run(suite_dir, shared_cache, "--iqa-model", "openai:split", "--iqa-model", "openai:split2",
                 "--iqa-base-url", server.url, "--iqa-prices", "prices.toml", "--iqa-budget-usd", "0.5",
                 "--iqa-concurrency", "2", "-n", "2", *two_cells)  # fmt: skip
    result.assert_outcomes(failed=2)
    assert result.ret == EXIT_UNMEASURED and server.probes == 2  # the controller asked, once per model
    price = (len(prompt_text(server.last_request)) // 4 + 2 * 85) * 100 / 1e6
    per_worker = math.ceil(0.25 / price)
    assert 5 < per_worker < 40
    # Each worker stops at its half of the budget; one more of its requests may be in flight.
    assert 2 * per_worker <= server.requests <= 2 * per_worker + 2
    assert server.requests * price < 0.5 + 4 * price  # the whole run: the budget, plus what was in flight
    usage = json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())["run"]["usage"]
    assert usage["sent"] == server.requests and usage["budget_usd"] == 0.5 and usage["budget_exhausted"]
    assert usage["failures"] == {"budget": 160 - server.requests}
    assert usage["cost_usd"] == pytest.approx(server.requests * price, rel=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--iqa-prices", "prices.toml"),
            'prices.toml: [models."x"] needs exactly the keys input and output',
        ),
        (("--iqa-prices", "nowhere.toml"), "nowhere.toml: price file not found"),
        (("--iqa-budget-usd", "-1"), "budget_usd must be a non-negative number of USD, got -1.0"),
        (("--iqa-budget-usd", "lots"), "--iqa-budget-usd: budget_usd = 'lots' is not a valid float"),
        (("--iqa-model", "replay:nowhere.jsonl"), "nowhere.jsonl: replay file not found"),
        (
            (
                "--iqa-model",
                "openai:selfhosted",
                "--iqa-base-url",
                "http://127.0.0.1:9/v1",
                "--iqa-budget-usd",
                "1",
            ),
            "--iqa-budget-usd cannot hold for a model without a known price: openai:selfhosted: "
            "prices unknown for 'selfhosted'",
        ),
        (("--iqa-max-requests", "-3"), "max_requests must be a non-negative number of requests, got -3"),
    ],
)
def test_bad_budget_prices_and_replay_options_are_one_clear_error(suite_dir, shared_cache, args, message):
    (suite_dir.path / "prices.toml").write_text('[models."x"]\ninput = 1\n')
    result = run(suite_dir, shared_cache, *args, *STANDARD)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0 and message in output
    assert "Traceback" not in output


def test_the_cost_estimate_counts_openais_image_tiles_and_every_answer_at_max_tokens(tmp_path):
    store = ImageStore()
    path = tmp_path / "big.png"
    Image.new("RGB", (1024, 1024), (9, 9, 9)).save(path)
    image = QueryImage("image", store.stimulus(str(path)))
    query = Query("nr", "ss", "standard", "t", "h", "x" * 400, (image,), Decoding(max_tokens=100))
    prices = PriceTable({"m": Price(1.0, 2.0)})
    high = OpenAIModel("openai:m", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",)), prices)
    # OpenAI's documented example: a 1024 x 1024 image at high detail is 765 tokens.
    assert high.estimate_cost([query]) == pytest.approx(((100 + 765) * 1.0 + 100 * 2.0) / 1e6)
    low = OpenAIModel(
        "openai:m", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",), image_detail="low"), prices
    )
    assert low.estimate_cost([query, query]) == pytest.approx(2 * ((100 + 85) + 200) / 1e6)
    unpriced = OpenAIModel("openai:other", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",)), prices)
    assert unpriced.estimate_cost([query]) is None
