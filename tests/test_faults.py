"""Reliability against real HTTP: injected transient faults must not change a single number."""

from __future__ import annotations

import json

import pytest
from fake_openai import TRANSIENT_FAULTS


def run(pytester, shared_cache, *args):
    return pytester.runpytest(
        "test_protocols/test_systems.py", f"--iqa-cache={shared_cache}", "-p", "no:randomly", *args
    )


def report(pytester):
    return json.loads((pytester.path / "reports" / "iqa-report.json").read_text())


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_thirty_percent_transient_faults_leave_every_result_unchanged(
    suite_dir, shared_cache, fake_openai, accurate_responder
):
    # --iqa-no-cache: both runs must really ask, or the faulty one would only read the clean one's answers.
    # Two cells, 160 queries: enough for every kind of fault to occur (checked below).
    args = (
        "--iqa-model",
        "openai:accurate",
        "--iqa-no-cache",
        "-m",
        "fr_structure and ss and not icl and not levels",
    )
    clean = fake_openai(responder=accurate_responder)
    run(suite_dir, shared_cache, *args, "--iqa-base-url", clean.url).assert_outcomes(passed=2)
    expected = report(suite_dir)["cells"]
    assert clean.requests == 160 and not clean.fault_counts

    stormy = fake_openai(
        responder=accurate_responder,
        fault_rate=0.3,
        faults=TRANSIENT_FAULTS,
        max_faults_per_request=2,
        stall_s=2.0,
        seed=3,
    )
    result = run(suite_dir, shared_cache, *args, "--iqa-base-url", stormy.url, "--iqa-timeout", "0.5")
    result.assert_outcomes(passed=2)
    assert report(suite_dir)["cells"] == expected  # metrics, predictions, failures, examples: all of it
    # Faults are drawn from the request bodies and the seed; if a change of the prompts or the data
    # leaves a kind out, pick another seed.
    assert set(stormy.fault_counts) == set(TRANSIENT_FAULTS), stormy.fault_counts
    assert sum(stormy.fault_counts.values()) >= 0.3 * 160
    # Each fault cost one more request; a request that really outlived the 0.5 s timeout adds one.
    assert stormy.requests >= 160 + sum(stormy.fault_counts.values())
