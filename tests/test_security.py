"""Security of a real run: model text cannot act in the HTML report or break the JSON one, and
no secret (the API key, a password in the base URL, an Authorization header) reaches a report,
the history, the cache, a log, the junit file or the terminal, in any usual encoding.

Dataset paths that climb out of their root are test_datasets_bad_data.py's; the scrubbing of
server messages is test_openai_api.py's; these tests run the whole suite.
"""

from __future__ import annotations

import base64
import hashlib
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from suite_runs import SYSTEMS, assert_no_traceback, fresh_cache
from test_report_schema import validate_report

# -- model text in the reports ---------------------------------------------------------------

HOSTILE = (
    "<script>alert('xss')</script>"
    '"><img src=x onerror="alert(1)">'
    "' onmouseover='alert(2)' x='"
    "</pre></textarea><textarea>"
    '<a href="javascript:alert(3)">click</a> javascript:alert(4) '
    "<!-- <![CDATA[ ]]> -->"
    "\x00\x01\x07\x1b[31m\x7f\x85\u2028\u2029"
    "half a character: \ud800 and \udfff, "
    '{"cells": []}\\"'
)
SAFE = HOSTILE.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd")
"""What the reports must show: the same text, but lone surrogates (which no UTF-8 file can
hold) replaced."""


def hostile(request):
    """Half the answers (by their content: any order of arrival gives the same run) are valid
    and so shown among the answers, the others fail and are shown in the failure ledger too."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()
    return HOSTILE if digest[0] % 2 else HOSTILE + "\nScore: 50"


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.closed: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.opened.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.closed.append(tag)


def strict_json(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    data = json.loads(text, parse_constant=refuse)
    strings = [data]
    while strings:  # every string, key or value, must be encodable as UTF-8
        node = strings.pop()
        if isinstance(node, dict):
            strings.extend(node.keys())
            strings.extend(node.values())
        elif isinstance(node, list):
            strings.extend(node)
        elif isinstance(node, str):
            node.encode("utf-8")
    return data


def test_hostile_model_text_is_inert_in_html_and_cannot_break_json(
    suite_dir, shared_cache, fake_openai, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = fake_openai(responder=hostile)
    result = suite_dir.runpytest(
        *SYSTEMS,
        f"--iqa-cache={shared_cache}",
        "--iqa-model=openai:hostile",
        f"--iqa-base-url={server.url}",
        "--junitxml=junit.xml",
        "-m",
        "fr_color and ss and standard",
    )
    result.assert_outcomes(failed=1)  # half the answers have no score: coverage
    assert_no_traceback(result.stdout.str() + result.stderr.str())
    reports = suite_dir.path / "reports"

    data = strict_json((reports / "iqa-report.json").read_bytes().decode("utf-8"))
    assert isinstance(data, dict)
    validate_report(data)
    (cell,) = data["cells"]
    assert {e["text"] for e in cell["examples"]} == {SAFE, SAFE + "\nScore: 50"}
    for line in (reports / "history.jsonl").read_bytes().decode("utf-8").splitlines():
        strict_json(line)

    page = (reports / "iqa-report.html").read_bytes().decode("utf-8")
    elements = Elements()
    elements.feed(page)
    tags = [tag for tag, _ in elements.opened]
    assert not {"script", "textarea", "iframe", "object", "embed"} & set(tags)
    assert tags.count("img") == 1  # the cell's scatter plot
    for tag, attrs in elements.opened:
        for name, value in attrs:
            assert not name.startswith("on") and not (value or "").lstrip().lower().startswith("javascript:")
            assert tag != "a" or name != "href" or (value or "").startswith("#")  # links within the page
    assert tags.count("pre") == elements.closed.count("pre")  # no answer closed its <pre> early
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in page
    ET.parse(suite_dir.path / "junit.xml")  # the records travel in junit properties too


# -- secrets ---------------------------------------------------------------------------------

KEY = "sk-proj-SENTINEL+key/9876=zz"
USER, PASSWORD = "alice", "pa:ss@w0rd/SENTINEL"
RIGHT_KEY = "sk-the-right-one-0000"


def forms(secret: str) -> set[bytes]:
    """The secret as it could be written: raw, URL- and JSON-escaped, and base64 (as in a Basic
    Authorization header) at each alignment, keeping only the characters the secret decides."""
    raw = secret.encode()
    found = {
        raw,
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        json.dumps(secret)[1:-1].encode(),
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            found.add(encode(b"\0" * shift + raw)[4 if shift else 0 : -4])
    return found


SECRETS = {secret: forms(secret) for secret in (KEY, PASSWORD)}


def leaks(data: bytes) -> list[str]:
    return [secret for secret, encoded in SECRETS.items() if any(e in data for e in encoded)]


@pytest.mark.parametrize("case", ["accepted", "rejected", "password in the URL"])
def test_no_secret_reaches_any_file_or_the_terminal(suite_dir, builtin, fake_openai, monkeypatch, case):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    server = fake_openai(api_key=RIGHT_KEY if case == "rejected" else KEY if case == "accepted" else None)
    url = server.url
    if case == "password in the URL":
        url = url.replace("://", f"://{USER}:{quote(PASSWORD, safe='')}@")
    cache = fresh_cache(builtin, suite_dir.path / "cache")
    result = suite_dir.runpytest(
        *SYSTEMS,
        f"--iqa-cache={cache}",
        "--iqa-model=openai:gpt-4o",
        f"--iqa-base-url={url}",
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        "--log-file=run.log",
        "--log-file-level=DEBUG",
        "--log-level=DEBUG",
        "-rA",
        "-m",
        "fr_color and ss and standard",
    )
    output = result.stdout.str() + result.stderr.str()
    # The secrets were really in play.
    sent = server.last_headers["authorization"]
    if case == "password in the URL":  # the URL's credentials travel as Basic auth, as before
        assert sent == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    else:
        assert sent == f"Bearer {KEY}"
    if case == "rejected":
        assert "Incorrect API key provided: ***" in output and server.fault_counts["auth"] >= 1
    else:
        assert server.requests == 80 and (suite_dir.path / "reports" / "iqa-report.json").is_file()
    assert (suite_dir.path / "run.log").stat().st_size > 0

    assert leaks(output.encode("utf-8", "replace")) == []
    written: list[Path] = [p for p in suite_dir.path.rglob("*") if p.is_file()]
    assert {"run.log", "junit.xml", "responses.sqlite3"} <= {p.name for p in written}
    for path in written:
        assert leaks(path.read_bytes()) == [], path
    assert_no_traceback(output)
