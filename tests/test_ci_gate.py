"""The deployment gate as CI runs it: a kept cache, a committed baseline, and a model that changes.

Each test is one scenario a model team meets, run as pytest runs the suite against the fake
OpenAI-compatible server: the model replaced behind its name, a server that discloses nothing,
an endpoint that is down, a baseline that does not fit the selection, and ``-n 2``.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from fake_openai import constant
from suite_runs import SYSTEMS, assert_no_traceback, fresh_cache

from iqa_eval.cli import main as cli
from iqa_eval.plugin import EXIT_UNMEASURED

ONE_CELL = ("-m", "fr_structure and ss and standard")  # 80 queries


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def run(pytester, cache, *args):
    return pytester.runpytest(*SYSTEMS, f"--iqa-cache={cache}", *args)


def report(pytester, name="iqa-report.json"):
    return json.loads((pytester.path / "reports" / name).read_text(encoding="utf-8"))


def bless(pytester) -> str:
    target = pytester.path / "baseline.json"
    assert (
        cli(["baseline", "bless", str(pytester.path / "reports" / "iqa-report.json"), "--to", str(target)])
        == 0
    )
    return f"--iqa-baseline={target}"


def test_a_model_replaced_behind_its_name_is_asked_again_and_its_regression_fails_the_run(
    suite_dir, builtin, fake_openai, accurate_responder, reversed_responder, tmp_path
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    good = fake_openai(responder=accurate_responder, system_fingerprint="fp_good")
    args = ("--iqa-model", "openai:mymodel", *ONE_CELL)
    run(suite_dir, cache, *args, "--iqa-base-url", good.url).assert_outcomes(passed=1)
    assert good.requests == 80
    baseline = bless(suite_dir)

    # Same name, same kind of endpoint, same cache: only what the server says of itself changed.
    worse = fake_openai(responder=reversed_responder, system_fingerprint="fp_worse")
    result = run(suite_dir, cache, *args, "--iqa-base-url", worse.url, baseline)
    assert worse.requests == 80  # asked again, not replayed from the cache
    output = result.stdout.str()
    assert output.count("served identity changed") == 1
    assert "system_fingerprint=fp_good" in output and "system_fingerprint=fp_worse" in output
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (cell,) = report(suite_dir)["cells"]
    assert cell["baseline"]["regressed"] and cell["metrics"]["srcc"]["value"] < -0.9
    assert cell["identity"]["served"]["system_fingerprint"] == "fp_worse"
    run_info = report(suite_dir)["run"]
    (change,) = run_info["identity_changes"]
    assert change["model"] == "openai:mymodel" and change["cached_answers_not_used"] == 80
    assert run_info["models"][0]["identity"]["key"] == cell["identity"]["key"]

    # The old answers were kept: the good model, back again, is served from the cache.
    back = fake_openai(responder=accurate_responder, system_fingerprint="fp_good")
    run(suite_dir, cache, *args, "--iqa-base-url", back.url, baseline).assert_outcomes(passed=1)
    assert back.requests == 0


def test_a_server_that_discloses_nothing_is_told_apart_by_a_pinned_revision(
    suite_dir, builtin, fake_openai, tmp_path
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    server = fake_openai(responder=constant("Score: 50"), listing=False)
    run(suite_dir, cache, "--iqa-model", "openai:quiet@v1", "--iqa-base-url", server.url, *ONE_CELL)
    run(suite_dir, cache, "--iqa-model", "openai:quiet@v1", "--iqa-base-url", server.url, *ONE_CELL)
    assert server.requests == 80  # the same revision: served from the cache
    run(suite_dir, cache, "--iqa-model", "openai:quiet@v2", "--iqa-base-url", server.url, *ONE_CELL)
    assert server.requests == 160  # a new revision: asked again
    assert server.last_request["model"] == "quiet"  # the revision is ours, not the server's
    (cell,) = report(suite_dir)["cells"]
    assert cell["identity"]["fingerprint"] == "openai:quiet@v2"


def test_a_dead_endpoint_stops_within_seconds_with_the_unmeasured_status(suite_dir, builtin, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://user:hunter2@127.0.0.1:{sock.getsockname()[1]}/v1"
    cache = fresh_cache(builtin, tmp_path / "cache")
    start = time.monotonic()
    result = run(
        suite_dir,
        cache,
        "--iqa-model",
        "openai:gone",
        "--iqa-base-url",
        url,
        "-m",
        "fr_structure and ss and not levels",
    )
    elapsed = time.monotonic() - start
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == EXIT_UNMEASURED
    assert_no_traceback(output)
    assert output.count("iqa-eval: openai:gone: unreachable:") == 1 and "hunter2" not in output
    assert "exit status 75 (infrastructure, not capability)" in output
    cells = report(suite_dir)["cells"]
    assert {c["outcome"] for c in cells} == {"error"} and len(cells) == 3
    assert all(
        c["n_failed"] == {"unreachable": 80} and "could not be measured" in c["message"] for c in cells
    )
    # The identity retries' delays add up to under 3 s; a loose bound keeps a loaded machine green
    # while failing the old behaviour (every query's backoff: minutes).
    assert elapsed < 60


def test_a_gate_miss_beside_an_unmeasured_cell_is_still_a_plain_failure(
    suite_dir, builtin, fake_openai, reversed_responder, tmp_path
):
    """Exit status 75 means nothing failed a gate: a real miss anywhere keeps status 1."""
    cache = fresh_cache(builtin, tmp_path / "cache")
    reversed_server = fake_openai(responder=reversed_responder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    (suite_dir.path / "conftest.py").write_text(
        "from iqa_eval.models.base import ModelOptions\n"
        "from iqa_eval.models.openai_api import OpenAIModel\n"
        "def pytest_iqa_make_model(spec, store):\n"
        f"    url = {{'openai:dead': {dead!r}, 'openai:reversed': {reversed_server.url!r}}}.get(spec)\n"
        "    return OpenAIModel(spec, store, ModelOptions(base_urls=(url,))) if url else None\n"
    )
    result = run(suite_dir, cache, "--iqa-model", "openai:dead", "--iqa-model", "openai:reversed", *ONE_CELL)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = {c["model"]: c["outcome"] for c in report(suite_dir)["cells"]}
    assert outcomes == {"openai:dead": "error", "openai:reversed": "failed"}


def test_a_baseline_sharing_none_of_the_selected_cells_is_a_usage_error(suite_dir, builtin, tmp_path):
    cache = fresh_cache(builtin, tmp_path / "cache")
    run(suite_dir, cache, "--iqa-model", "expert:psnr", "-m", "fr_color and ss and standard").assert_outcomes(
        passed=1
    )
    baseline = bless(suite_dir)
    for extra in ((), ("-n", "2")):
        result = run(suite_dir, cache, "--iqa-model", "expert:psnr", *ONE_CELL, baseline, *extra)
        output = result.stdout.str() + result.stderr.str()
        assert result.ret == pytest.ExitCode.USAGE_ERROR, output
        assert "shares none of the 1 selected cells" in output
        assert_no_traceback(output)


def test_a_selected_cell_missing_from_the_baseline_says_so_everywhere(suite_dir, builtin, tmp_path):
    cache = fresh_cache(builtin, tmp_path / "cache")
    run(suite_dir, cache, "--iqa-model", "expert:psnr", *ONE_CELL).assert_outcomes(passed=1)
    baseline = bless(suite_dir)
    both = ("-m", "(fr_structure or fr_color) and ss and standard")
    result = run(suite_dir, cache, "--iqa-model", "expert:psnr", *both, baseline)
    result.assert_outcomes(passed=2)
    assert "passed (no baseline)" in result.stdout.str() and "1 without baseline" in result.stdout.str()
    cells = {c["attribute"]: c for c in report(suite_dir)["cells"]}
    assert cells["color"]["baseline"]["status"] == "no baseline"
    assert cells["structure"]["baseline"]["status"] == "compared"
    html = (suite_dir.path / "reports" / "iqa-report.html").read_text(encoding="utf-8")
    assert "No baseline: the baseline has no such cell" in html


def test_two_workers_send_exactly_the_requests_one_process_sends(suite_dir, builtin, fake_openai, tmp_path):
    """A stage-2 cell needs every stage-1 cell of its setting; on another worker than theirs it
    asked them again (26% more requests against an API model)."""
    selection = (
        "-m",
        "fr_color and not metamorphic",
        "--iqa-model",
        "openai:counted",
        "--iqa-concurrency",
        "32",
    )
    counts = []
    for workers in ((), ("-n", "2")):
        server = fake_openai(responder=constant("Score: 50"))
        cache = fresh_cache(builtin, tmp_path / f"cache{len(counts)}")
        pytest_args = ("test_protocols", "test_attributes", "-p", "no:randomly", f"--iqa-cache={cache}")
        suite_dir.runpytest(*pytest_args, *selection, "--iqa-base-url", server.url, *workers)
        counts.append((server.requests, server.probes, len(server.asked)))
    (one_process, two_workers) = counts
    assert one_process[0] > 5000 and one_process[2] == one_process[0]  # every query asked once
    assert two_workers == one_process


def test_a_worker_sends_its_whole_scope_at_once(suite_dir, builtin, fake_openai, tmp_path):
    """Cell by cell, each cell's last wave of requests leaves the model idle; a worker knows all
    the cells of a scope at its first one, and dispatches them together."""
    log = tmp_path / "dispatches"
    log.mkdir()
    (suite_dir.path / "conftest.py").write_text(
        "import os\n"
        "from iqa_eval.execution import engine\n"
        "_run = engine.Engine.run\n"
        "def run(self, client, queries):\n"
        "    worker = os.environ.get('PYTEST_XDIST_WORKER', 'main')\n"
        f"    with open(os.path.join({str(log)!r}, worker), 'a') as f:\n"
        "        f.write(f'{len(queries)}\\n')\n"
        "    return _run(self, client, queries)\n"
        "engine.Engine.run = run\n"
    )
    server = fake_openai(responder=constant("Score: 50"))
    cache = fresh_cache(builtin, tmp_path / "cache")
    selection = ("-m", "(fr_structure or nr_structure) and ss and not icl and not levels and not metamorphic")
    result = run(
        suite_dir, cache, "--iqa-model", "openai:m", "--iqa-base-url", server.url, *selection, "-n", "2"
    )
    result.assert_outcomes(failed=4)  # a constant score ranks nothing
    dispatches = {path.name: [int(n) for n in path.read_text().split()] for path in log.iterdir()}
    assert sorted(dispatches) == ["gw0", "gw1"]  # one scope (setting) per worker
    for sizes in dispatches.values():
        assert sizes[0] == 2 * 80 and all(n == 0 for n in sizes[1:])  # both cells of the scope at once
    assert server.requests == 4 * 80
