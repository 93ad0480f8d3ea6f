"""The request phase's progress where CI reads it: plain lines, not a bar, on a non-terminal."""

from __future__ import annotations

from suite_runs import SYSTEMS, fresh_cache

from iqa_eval.execution.progress import Lines, Tick


def test_lines_come_every_interval_and_once_at_the_end():
    now = [0.0]
    written: list[str] = []
    lines = Lines(written.append, every_s=10.0, clock=lambda: now[0])
    for done, at in ((1, 2.0), (2, 9.9), (3, 10.0), (4, 15.0), (5, 20.5)):
        now[0] = at
        lines.update(Tick("openai:m", done, 8, 1, 0.25, 1.0))
    lines.close()
    assert written == [
        "openai:m: 3/8 asked, 1 failed, 0.3 q/s, $0.2500 spent of $1.00",
        "openai:m: 5/8 asked, 1 failed, 0.2 q/s, $0.2500 spent of $1.00",
        "openai:m: 5/8 asked, 1 failed, 0.2 q/s, $0.2500 spent of $1.00 (done)",
    ]


def test_a_run_whose_output_is_not_a_terminal_prints_plain_progress_lines(
    suite_dir, builtin, tmp_path, fake_openai, accurate_responder
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    server = fake_openai(responder=accurate_responder)
    args = (*SYSTEMS, f"--iqa-cache={cache}", "--iqa-model", "openai:m", "--iqa-base-url", server.url)
    result = suite_dir.runpytest_subprocess(*args, "-m", "fr_structure and ss and standard")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "\r" not in output  # no bar redrawn in a log
    assert "iqa-eval: openai:m: 80 unique queries, 0 cached, 80 to ask" in output
    assert "iqa-eval: openai:m: 80/80 asked, 0 failed, " in output and " (done)" in output
