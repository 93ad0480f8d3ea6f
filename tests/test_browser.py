"""The HTML report in a real browser: it renders, logs no console error, and runs no model text.

Needs Chromium (Debian: ``apt-get install chromium``); skipped with the reason when it is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from test_report_schema import make_cell, make_report

from iqa_eval.report.html import write_html

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (install it: apt-get install -y chromium)"
)
PAYLOAD = "<script>document.title='PWNED'</script><img src=x onerror=\"document.title='PWNED'\">"


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless, offline, with a throwaway profile; console messages go to stderr."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
        "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str, page: Path) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line and page.as_uri() in line]


def _report_page(tmp_path: Path) -> Path:
    image = tmp_path / "stimulus.png"
    Image.new("RGB", (256, 256), (200, 120, 40)).save(image)
    predictions = [
        {"item": f"g0/{k}", "truth": float(k), "predicted": float(3 - k), "group": "g0", "image": str(image)}
        for k in range(4)
    ]
    examples = [
        {"query": "q1", "items": ["g0/1"], "text": PAYLOAD, "failure": "unparseable"},
        {"query": "q2", "items": ["g0/2"], "text": f"Description: {PAYLOAD}\nScore: 40", "failure": None},
    ]
    failing = make_cell(
        outcome="failed",
        predictions=predictions,
        examples=examples,
        n_failed={"unparseable": 1},
        coverage=0.9,
    )
    gap = make_cell(setting="nr", outcome="failed", gate={**make_cell()["gate"], "known_gap": "hue"})
    # A user's own test whose model answered with markup, and the cell it evaluated.
    test_id = "tests/test_mine.py::test_sharp[m]"
    own = {**make_cell(setting="nr", strategy="cot"), "test": test_id}
    own["id"] = f"{test_id}::{own['id']}"
    judgement = {
        "kind": "score", "model": "m", "setting": "nr", "images": [{"path": str(image), "sha256": "0" * 64}],
        "reference": None, "query": "q3", "values": None, "value": None, "failure": "unparseable",
        "detail": PAYLOAD, "answer": PAYLOAD, "cached": False,
    }  # fmt: skip
    test = {
        "test": test_id,
        "outcome": "failed",
        "message": PAYLOAD,
        "judgements": [judgement],
        "cells": [own["id"]],
    }
    report = make_report([make_cell(strategy="cot"), failing, gap, own])
    page = tmp_path / "iqa-report.html"
    write_html(page, {**report, "tests": [test]})
    return page


def test_a_script_in_a_page_would_show_in_the_dumped_dom(tmp_path):
    """The control: --dump-dom does reflect what a script does, so its absence below means something."""
    page = tmp_path / "control.html"
    page.write_text("<!doctype html><title>orig</title><script>document.title='PWNED'</script>")
    assert "<title>PWNED</title>" in _chromium(tmp_path, page, "--dump-dom").stdout


def test_the_report_renders_without_console_errors_and_model_text_never_runs(tmp_path):
    page = _report_page(tmp_path)
    result = _chromium(tmp_path, page, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "<title>iqa-eval report</title>" in dom and "PWNED</title>" not in dom
    assert not re.search(r"<script|<img src=\"?x", dom, re.IGNORECASE)
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom  # shown as text
    assert "Your tests" in dom and "tests/test_mine.py::test_sharp[m]" in dom
    assert _console(result.stderr, page) == []


def test_the_screenshot_shows_a_page(tmp_path):
    page = _report_page(tmp_path)
    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        extrema = image.convert("RGB").getextrema()
    assert any(high - low > 100 for low, high in extrema)  # not one flat colour
