"""What the plugin prints: the account of the up-front execution, each notice of the engine once
(identity changes, endpoints down, a cap that stopped sending), and the closing sections (notices
not yet said, one line per cell, the reports written, an exit status for unmeasured cells)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from iqa_eval.report.summary import summary_lines


class Terminal:
    """The run's lines on pytest's terminal, remembering which notices were said."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.said: set[str] = set()

    def write_line(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    def say_notices(self, notices: Iterable[str]) -> None:
        """Each notice printed the first time it is known."""
        for notice in notices:
            if notice not in self.said:
                self.said.add(notice)
                self.write_line(f"iqa-eval: {notice}")

    def summary(
        self,
        terminalreporter: Any,
        *,
        notices: Sequence[str],
        records: Sequence[Mapping[str, Any]],
        paths: Sequence[Path],
        write_seconds: float,
        unmeasured: tuple[int, int] | None,
    ) -> None:
        """The closing sections; ``unmeasured`` is (cells, exit status) when only unmeasured cells
        failed."""
        unsaid = [n for n in notices if n not in self.said]  # each said once
        if unsaid:
            terminalreporter.write_sep("-", "iqa-eval notices")
            for notice in unsaid:
                terminalreporter.write_line(f"iqa-eval: {notice}")
        terminalreporter.write_sep("-", "iqa-eval cells")
        for line in summary_lines(list(records)):
            terminalreporter.write_line(line)
        terminalreporter.write_sep("-", f"iqa-eval reports (written in {write_seconds:.1f}s)")
        for path in paths:
            terminalreporter.write_line(str(path))
        if unmeasured is not None:
            cells, status = unmeasured
            terminalreporter.write_line(
                f"iqa-eval: {cells} cell(s) could not be measured and no gate failed: "
                f"exit status {status} (infrastructure, not capability)"
            )
