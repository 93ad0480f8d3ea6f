"""The OpenAI client: request shape, error mapping and secrets (mock transport), the real SDK
against the fake server, prices, and the real plugin end to end against the fake server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re

import httpx2
import numpy as np
import openai
import pytest
from fake_openai import REFUSAL, constant, prompt_text
from PIL import Image

from iqa_eval.images import ImageStore
from iqa_eval.models.base import ModelOptions, PermanentModelError, TransientModelError
from iqa_eval.models.openai_api import LOCAL_KEY, OpenAIModel, parse_retry_after
from iqa_eval.models.registry import ModelSpecError, make_client
from iqa_eval.pricing import DEFAULT_TABLE, Price, PricesError, PriceTable, cost
from iqa_eval.types import Decoding, Query, QueryImage, Usage

KEY = "sk-proj-secretKEY0123456789abcdef"
LOCAL = "http://127.0.0.1:9/v1"
JSON = {"content-type": "application/json"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


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


def completion(text="Score: 1", refusal=None, usage=(1000, 10), choices=True, finish="stop"):
    body = {
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
    return httpx2.Response(200, json=body)


class Recorder:
    """A mock transport handler: replies with ``reply(request)`` and keeps every request."""

    def __init__(self, reply):
        self.reply = reply
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return self.reply(request)

    def body(self, index=-1):
        return json.loads(self.requests[index].content)


def model(store, handler, spec="openai:gpt-4o", urls=(LOCAL,), **options):
    return OpenAIModel(
        spec, store, ModelOptions(base_urls=urls, **options), transport=httpx2.MockTransport(handler)
    )


def ask(client, query):
    async def go():
        try:
            return await client.answer(query)
        finally:
            await client.aclose()

    return asyncio.run(go())


# -- request shape -----------------------------------------------------------------------------


def test_request_sends_text_then_lossless_pngs_in_order_with_detail_and_decoding(images):
    store = ImageStore()
    recorder = Recorder(lambda r: completion())
    query = fr_ds_query(store, images, Decoding(temperature=0.0, max_tokens=64, seed=5))
    answer = ask(model(store, recorder, image_detail="low"), query)
    assert answer.text == "Score: 1" and answer.usage == Usage(1000, 10)
    (request,) = recorder.requests
    assert str(request.url) == f"{LOCAL}/chat/completions"
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
    assert store.encode_count == 3


def test_seed_is_left_out_when_not_set(images):
    store = ImageStore()
    recorder = Recorder(lambda r: completion())
    ask(model(store, recorder), fr_ds_query(store, images))
    assert "seed" not in recorder.body()


def test_an_unknown_model_costs_nothing_and_says_its_price_is_unknown(images):
    store = ImageStore()
    client = model(store, Recorder(lambda r: completion()), spec="openai:my-local-vlm")
    answer = ask(client, fr_ds_query(store, images))
    assert answer.ok and answer.cost_usd == 0.0
    assert "prices unknown for 'my-local-vlm'" in client.price_note


def test_cost_follows_the_price_table(images):
    store = ImageStore()
    answer = ask(
        model(store, Recorder(lambda r: completion(usage=(1_000_000, 100_000)))), fr_ds_query(store, images)
    )
    assert answer.cost_usd == pytest.approx(2.50 + 1.00)
    assert model(store, Recorder(completion)).price_note is None


# -- error mapping -----------------------------------------------------------------------------


def error(status, headers=None, message="nope"):
    return lambda request: httpx2.Response(status, headers=headers, json={"error": {"message": message}})


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
        (lambda r: httpx2.Response(200, content=b'{"choices": [', headers=JSON), TransientModelError,
         "malformed", None),
        (lambda r: httpx2.Response(200, content=b"<html>oops</html>", headers={"content-type": "text/html"}),
         TransientModelError, "malformed", None),
        (lambda r: completion(choices=False), TransientModelError, "empty", None),
        (lambda r: completion(text=""), TransientModelError, "empty", None),
        (lambda r: completion(text=None), TransientModelError, "empty", None),
    ],
)  # fmt: skip
def test_errors_map_to_transient_or_permanent(images, reply, kind, reason, retry_after):
    store = ImageStore()
    recorder = Recorder(reply)
    with pytest.raises(kind) as caught:
        ask(model(store, recorder), fr_ds_query(store, images))
    assert caught.value.reason == reason
    if kind is TransientModelError:
        assert caught.value.retry_after == retry_after
    assert len(recorder.requests) == 1  # the SDK's own retries are off: the engine's policy rules


@pytest.mark.parametrize(
    ("exception", "reason"),
    [(httpx2.ReadTimeout("slow"), "timeout"), (httpx2.ConnectError("refused"), "connection")],
)
def test_transport_failures_are_transient(images, exception, reason):
    store = ImageStore()

    def fail(request):
        raise exception

    with pytest.raises(TransientModelError) as caught:
        ask(model(store, fail), fr_ds_query(store, images))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("reply", "reason", "detail"),
    [
        (completion(text=None, refusal=REFUSAL), "refusal", REFUSAL),
        (completion(text=None, finish="content_filter"), "refusal", "content filter"),
        (completion(text="", finish="length"), "truncated", "raise --iqa-max-tokens"),
    ],
)
def test_refusals_and_cut_off_answers_are_failure_answers_not_retried(images, reply, reason, detail):
    store = ImageStore()
    recorder = Recorder(lambda r: reply)
    answer = ask(model(store, recorder), fr_ds_query(store, images))
    assert answer.text is None and answer.error == reason and detail in answer.detail
    assert answer.cost_usd > 0  # billed all the same
    assert len(recorder.requests) == 1


def test_the_key_never_reaches_an_error_message(images, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = ImageStore()
    echo = f"Incorrect API key provided: {KEY}. Sent: Authorization: Bearer {KEY}; also sk-other-leaked-key99"
    recorder = Recorder(error(401, message=echo))
    with pytest.raises(PermanentModelError) as caught:
        ask(model(store, recorder, urls=("https://api.example.com/v1",)), fr_ds_query(store, images))
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"
    text = str(caught.value)
    assert caught.value.reason == "auth" and "Incorrect API key provided" in text
    for secret in (KEY, KEY[8:], "sk-other-leaked-key99"):
        assert secret not in text


def test_a_password_in_the_base_url_never_reaches_an_error_message(images):
    store = ImageStore()

    def refuse(request):
        raise httpx2.ConnectError(f"cannot reach {request.url}")

    with pytest.raises(TransientModelError) as caught:
        ask(model(store, refuse, urls=("http://user:hunter2@127.0.0.1:9/v1",)), fr_ds_query(store, images))
    assert "127.0.0.1:9" in str(caught.value) and "hunter2" not in str(caught.value)


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
    recorder = Recorder(lambda r: completion())
    ask(model(store, recorder, urls=("http://localhost:8000/v1",)), fr_ds_query(store, images))
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
    recorder = Recorder(lambda r: completion())
    client = model(store, recorder, urls=("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"))
    assert client.fingerprint == "openai:gpt-4o" and client.cacheable

    async def go():
        await asyncio.gather(*(client.answer(fr_ds_query(store, images)) for _ in range(6)))
        for _ in range(4):
            await client.answer(fr_ds_query(store, images))
        await client.aclose()

    asyncio.run(go())
    ports = [r.url.port for r in recorder.requests]
    # Least-outstanding balancing: which replica a request meets depends on what is still in
    # flight when it starts, so under load the split may differ by a request or two.
    assert len(ports) == 10 and abs(ports.count(1) - ports.count(2)) <= 2


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


# -- the real SDK against the fake server ------------------------------------------------------


def test_against_the_fake_server(images, fake_openai):
    server = fake_openai(responder=constant("Score: 1"), models=("gpt-4o",))
    store = ImageStore()
    answer = ask(model_for(server, store), fr_ds_query(store, images))
    assert answer.text == "Score: 1" and answer.usage.prompt_tokens > 3 * 85
    assert [p["type"] for p in server.last_request["messages"][0]["content"]] == ["text"] + ["image_url"] * 3
    with pytest.raises(PermanentModelError, match="`gpt-5-nope` does not exist") as caught:
        ask(model_for(server, store, "openai:gpt-5-nope"), fr_ds_query(store, images))
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


FR_STRUCTURE_SS = ("-m", "fr_structure and ss")
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
    assert result.ret != 0
    assert output.count("iqa-eval stopped: openai:gpt-4o: auth: HTTP 401") == 1
    assert "Incorrect API key provided: ***" in output
    assert "Traceback" not in output and KEY not in output and KEY[8:] not in output
    assert 1 <= server.requests <= 4  # what was in flight when the first 401 came back
    assert not (suite_dir.path / "reports" / "iqa-report.json").exists() or KEY not in cells(suite_dir)


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
    assert cell["outcome"] == "failed" and "coverage" in cell["message"]


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
    ],
)
def test_bad_budget_prices_and_replay_options_are_one_clear_error(suite_dir, shared_cache, args, message):
    (suite_dir.path / "prices.toml").write_text('[models."x"]\ninput = 1\n')
    result = run(suite_dir, shared_cache, *args, *STANDARD)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0 and message in output
    assert "Traceback" not in output
