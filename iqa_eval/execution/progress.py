"""How the request phase shows its progress: a live bar on a terminal, plain lines elsewhere.

A CI log is not a terminal: a bar there is either nothing (tqdm turns itself off) or a stream of
carriage returns. Lines every ``every_s`` seconds, and one when the phase ends, show a job that
is minutes into its requests that it is moving, how fast, how much failed and what it spent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tqdm import tqdm

EVERY_S = 10.0


@dataclass(frozen=True)
class Tick:
    """Where one model's dispatch stands."""

    spec: str
    done: int
    total: int
    failed: int
    spent_usd: float
    budget_usd: float | None

    def describe(self, elapsed_s: float) -> str:
        rate = self.done / elapsed_s if elapsed_s > 0 else 0.0
        line = f"{self.spec}: {self.done}/{self.total} asked, {self.failed} failed, {rate:.1f} q/s"
        if self.spent_usd > 0 or self.budget_usd is not None:
            line += f", ${self.spent_usd:.4f} spent"
            if self.budget_usd is not None:
                line += f" of ${self.budget_usd:.2f}"
        return line


class Meter(Protocol):
    """One model's dispatch as it goes: ``update`` after each answer, ``close`` at the end."""

    def update(self, tick: Tick) -> None: ...

    def close(self) -> None: ...


class Bar:
    """tqdm's live bar, for a terminal."""

    def __init__(self, spec: str, total: int) -> None:
        self._bar = tqdm(total=total, desc=spec, unit="q", leave=False, dynamic_ncols=True)

    def update(self, tick: Tick) -> None:
        self._bar.update(tick.done - self._bar.n)
        postfix = f"failed={tick.failed}"
        if tick.spent_usd > 0 or tick.budget_usd is not None:
            postfix += f" spend=${tick.spent_usd:.4f}"
            if tick.budget_usd is not None:
                postfix += f"/${tick.budget_usd:.2f}"
        self._bar.set_postfix_str(postfix, refresh=False)

    def close(self) -> None:
        self._bar.close()


class Lines:
    """A plain line through ``write`` every ``every_s`` seconds, and one at the end."""

    def __init__(
        self,
        write: Callable[[str], None],
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write, self._every, self._clock = write, every_s, clock
        self._start = self._last = clock()
        self._tick: Tick | None = None

    def update(self, tick: Tick) -> None:
        self._tick = tick
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._write(tick.describe(now - self._start))

    def close(self) -> None:
        if self._tick is not None:
            self._write(self._tick.describe(self._clock() - self._start) + " (done)")


class Silent:
    def update(self, tick: Tick) -> None:
        pass

    def close(self) -> None:
        pass


def say_line(line: str) -> None:
    """A line of the request phase on standard error, where pytest leaves it on screen (and in
    the log) while it runs; bars and lines alike go there."""
    print(f"iqa-eval: {line}", file=sys.stderr, flush=True)


def meter(spec: str, total: int, shown: bool) -> Meter:
    """A bar when standard error is a terminal, lines when it is not, nothing when not shown."""
    if not shown:
        return Silent()
    if sys.stderr.isatty():
        return Bar(spec, total)
    return Lines(say_line)
