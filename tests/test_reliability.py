"""Reliability of a real run: a kill, a Ctrl-C, two workers on one cache and a permanent API
error lose nothing that was answered, and never need a query asked twice.

Transient faults (429 with and without retry-after, 500/502/503, timeouts, dropped connections,
malformed JSON, empty choices) are test_faults.py's; their mapping is test_openai_api.py's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
from dataclasses import replace

import numpy as np
import pytest
from fake_openai import Held, constant
from PIL import Image
from suite_runs import (
    SYSTEMS,
    answered,
    assert_no_traceback,
    finish,
    fresh_cache,
    report,
    start_suite,
    stop,
    wait_until,
)

from iqa_eval.execution.cache import ResponseCache
from iqa_eval.images import ImageStore
from iqa_eval.models.base import ModelOptions
from iqa_eval.models.openai_api import OpenAIModel
from iqa_eval.plugin import EXIT_UNMEASURED
from iqa_eval.types import Query, QueryImage

TWO_CELLS = ("-m", "fr_structure and ss and not icl and not levels")  # 160 queries
CONCURRENCY = 4


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def check_cache(cache) -> int:
    with contextlib.closing(ResponseCache(cache)) as db:
        assert db.integrity_ok()
        return db.count()


def test_a_run_killed_mid_dispatch_resumes_where_it_stopped(
    suite_dir, builtin, fake_openai, accurate_responder, tmp_path
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    args = (f"--iqa-cache={cache}", "--iqa-model", "openai:resumable", "--iqa-concurrency", str(CONCURRENCY))
    clean = fake_openai(responder=accurate_responder)
    # --iqa-no-cache: the uninterrupted run to compare with leaves the cache empty.
    result = suite_dir.runpytest(*SYSTEMS, *args, *TWO_CELLS, "--iqa-no-cache", "--iqa-base-url", clean.url)
    result.assert_outcomes(passed=2)
    expected = report(suite_dir.path)["cells"]
    everything = set(clean.asked)
    assert len(everything) == 160

    held = Held(accurate_responder, answer_first=50)
    doomed = fake_openai(responder=held)
    proc = start_suite(suite_dir.path, *args, *TWO_CELLS, "--iqa-base-url", doomed.url)
    try:
        wait_until(lambda: answered(cache) == 50, proc, "50 cached answers")
        finish(proc, signal.SIGKILL)
    finally:
        stop(proc)
        held.released.set()
        doomed.stop()
    assert proc.returncode == -signal.SIGKILL
    first = set(doomed.asked)
    assert check_cache(cache) == 50  # every answer received before the kill is there, intact
    in_flight = len(first) - 50
    assert in_flight <= CONCURRENCY

    resumed = fake_openai(responder=accurate_responder)
    result = suite_dir.runpytest(*SYSTEMS, *args, *TWO_CELLS, "--iqa-base-url", resumed.url)
    result.assert_outcomes(passed=2)
    second = resumed.asked
    # Only the unanswered queries are sent, each once; the only ones asked in both runs are
    # those in flight when the first was killed.
    assert set(second.values()) == {1} and len(second) == 160 - 50
    assert first | set(second) == everything
    assert len(first & set(second)) == in_flight
    assert report(suite_dir.path)["cells"] == expected
    assert check_cache(cache) == 160


def test_ctrl_c_during_dispatch_stops_cleanly_and_writes_a_partial_report(
    suite_dir, builtin, fake_openai, tmp_path
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    complete = fake_openai(responder=constant("Score: 50"))
    suite_dir.runpytest(
        *SYSTEMS, f"--iqa-cache={cache}", "--iqa-model=openai:before", f"--iqa-base-url={complete.url}",
        "-m", "fr_color and ss and standard",
    )  # fmt: skip
    reports = suite_dir.path / "reports"
    last_complete = (reports / "iqa-report.json").read_bytes()
    history = (reports / "history.jsonl").read_bytes()
    held = Held(constant("Score: 50"), answer_first=30)
    server = fake_openai(responder=held)
    proc = start_suite(
        suite_dir.path,
        f"--iqa-cache={cache}",
        "--iqa-model=openai:interrupted",
        f"--iqa-base-url={server.url}",
        f"--iqa-concurrency={CONCURRENCY}",
        *TWO_CELLS,
    )
    try:
        wait_until(lambda: answered(cache) == 80 + 30, proc, "30 more cached answers")
        out, err = finish(proc, signal.SIGINT)
    finally:
        stop(proc)
        held.released.set()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out + err
    assert "KeyboardInterrupt" in out
    assert_no_traceback(out + err)
    assert check_cache(cache) == 30 + 80
    # The last complete report stays; the cut-off run is written beside it, and adds no empty run
    # to the history.
    assert (reports / "iqa-report.json").read_bytes() == last_complete
    assert (reports / "history.jsonl").read_bytes() == history
    data = json.loads((reports / "iqa-report.partial.json").read_text(encoding="utf-8"))
    run = data["run"]
    assert run["partial"] is True and data["cells"] == []
    # The usage counts the run that was cut off; its requests in flight were neither failures of
    # the server nor retried.
    usage = run["usage"]
    assert usage["queries"] == 160 and usage["completion_tokens"] > 0
    assert usage["failed"] == 0 and usage["retries"] == 0
    assert "partial run" in (reports / "iqa-report.partial.html").read_text(encoding="utf-8")


def test_two_workers_share_one_cache_without_locks_losses_or_duplicates(
    suite_dir, builtin, fake_openai, tmp_path
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    server = fake_openai(responder=constant("Score: 50"), latency_s=0.01)
    result = suite_dir.runpytest(
        "test_protocols",
        "-p",
        "no:randomly",
        f"--iqa-cache={cache}",
        "--iqa-model=openai:shared",
        f"--iqa-base-url={server.url}",
        "-n",
        "2",
        "-v",
        "-m",
        "(fr_color or nr_color) and ss and standard",  # with the metamorphic cells: re-encoded images
    )
    output = result.stdout.str() + result.stderr.str()
    assert sum(result.parseoutcomes().get(k, 0) for k in ("passed", "failed", "xfailed")) == 4, output
    # Both workers evaluated cells (and so sent requests) at the same time.
    assert "[gw0]" in output and "[gw1]" in output
    assert "database is locked" not in output and "error" not in report(suite_dir.path)["run"]["outcomes"]
    # One row per distinct query answered (a query is its request body), however many times
    # and by whichever worker it was asked.
    assert check_cache(cache) == len(server.asked)


def test_an_unknown_model_stops_the_run_at_once_with_one_clear_message(suite_dir, shared_cache, fake_openai):
    server = fake_openai(models=("gpt-4o",))
    result = suite_dir.runpytest(
        *SYSTEMS,
        f"--iqa-cache={shared_cache}",
        "--iqa-model=openai:gpt-5-nope",
        f"--iqa-base-url={server.url}",
        f"--iqa-concurrency={CONCURRENCY}",
        *TWO_CELLS,
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == EXIT_UNMEASURED
    assert output.count("iqa-eval: openai:gpt-5-nope: model_not_found: HTTP 404") == 1
    assert "check the model name 'gpt-5-nope' and the base URL" in output
    assert_no_traceback(output)
    assert server.probes == 1 and server.requests == 0  # establishing the identity met the 404


def test_a_re_encoded_image_travels_as_its_own_bytes(tmp_path):
    """A query's cache key names its transport encoding, so the request must carry that encoding
    too: otherwise two keys share one request, and the SS metamorphic relation (the same pixels
    sent as another lossless file) compares an answer with itself."""
    path = tmp_path / "im.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    store = ImageStore()
    client = OpenAIModel("openai:m", store, ModelOptions(base_urls=("http://127.0.0.1:9/v1",)))
    image = QueryImage("image", store.stimulus(str(path)))
    urls = []
    for encoding in ("png", "png9"):
        query = Query("nr", "ss", "standard", "t", "h", "Rate it.", (replace(image, encoding=encoding),))
        (part,) = client.request(query)["messages"][0]["content"][1:]
        urls.append(part["image_url"]["url"])
        assert base64.b64decode(urls[-1].partition(",")[2]) == store.png(str(path), encoding)
    assert urls[0] != urls[1]
