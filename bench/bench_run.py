"""A whole pytest run against an API model: collection, plan, dispatch, parse, report.

Run: python bench/bench_run.py [--select EXPR] [--latency S] [--concurrency N ...]

The fake OpenAI-compatible server runs in its own process (tests/fake_openai.py) and answers
each query in its template's format ``--latency`` seconds after the request arrived (its own
parsing falls inside that time, as a real server's does). It still parses every body as
JSON, hashes it and matches the prompt against the suite's templates, but draws its answer from
a CRC-32 rather than a SHA-256 of the request serialised again (1.3 ms a request, on the same two
cores as the client): what a real server spends parsing is not the suite's. The client does all
the work of a real run. Each row gives the CPU seconds of the run (its process) and of the
server, and the load average, since wall time on a shared machine is only as good as its load.

For each concurrency: a cold run (every query asked; the built-in dataset is generated
beforehand, as it is once per machine), then a warm run of the same selection (every answer
cached). The model-bound part of a run is ``requests x latency /
concurrency`` (the ideal); the benchmark prints ``ideal / (cold - warm)``: the share of the
request phase that the model's latency explains. Then ``-n 2`` against ``-n 0`` (cold, the
same selection, and a selection of two scopes): time and requests sent, which must be equal.
Last, a cold run under cProfile shows where the time that is not the model's goes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SELECT = "fr_structure and not icl"
XDIST_SELECT = "structure and not icl"
"""FR and NR: two scopes (model, dataset, setting), so ``-n 2`` has a scope for each worker; the
default selection is one scope (stage 2 of FR structure needs every FR stage-1 cell), where the
second worker can only add its start."""


def serve(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fake_openai.py"),
            "--latency",
            str(latency),
            "--answers",
            "well-formed",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def pytest_args(select: str, url: str, concurrency: int, cache: Path, reports: Path) -> list[str]:
    return [
        "-q", "-p", "no:cacheprovider", "-m", select,
        "--iqa-model", "openai:bench", "--iqa-base-url", url, "--iqa-concurrency", str(concurrency),
        f"--iqa-cache={cache}", f"--iqa-report-dir={reports}",
    ]  # fmt: skip


def cpu_of(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, where /proc tells (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timed:
    """Wall and CPU seconds of one pytest run, the server's CPU meanwhile, and the load."""

    def __init__(self, server: subprocess.Popen[str], args: list[str]) -> None:
        before, served = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of(server.pid)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, check=False)
        self.wall = time.perf_counter() - start
        after, served_after = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of(server.pid)
        self.cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        self.server = None if served is None or served_after is None else served_after - served
        self.load = os.getloadavg()[0]

    def cpu_text(self) -> str:
        server = "?" if self.server is None else f"{self.server:.1f}"
        return f"{self.cpu:.1f}/{server}"


def sent(reports: Path) -> int:
    usage = json.loads((reports / "iqa-report.json").read_text())["run"]["usage"] or {}
    return int(usage.get("requests", 0))


def fresh(base: Path, name: str, dataset: Path) -> tuple[Path, Path]:
    """A cache holding only the built-in dataset, and an empty report directory."""
    cache, reports = base / f"cache-{name}", base / f"reports-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(reports, ignore_errors=True)
    shutil.copytree(dataset, cache / dataset.relative_to(dataset.parents[1]))
    return cache, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--select", default=DEFAULT_SELECT, help=f"marker expression (default {DEFAULT_SELECT!r})"
    )
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--xdist-select",
        nargs="*",
        default=[XDIST_SELECT],
        help="further selections for -n 2 against -n 0 (default: one spanning two scopes, "
        f"{XDIST_SELECT!r}: a worker per scope)",
    )
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from iqa_eval.datasets.builtin import BuiltinDataset

    server, url = serve(options.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            builtin = BuiltinDataset(base / "generated")
            builtin.items("fr", "structure")  # generated once, copied into every cold cache
            dataset = builtin.root
            print(f"selection -m {options.select!r}, fake server at {options.latency * 1000:.0f} ms")
            print(
                f"{'conc':>5} {'requests':>8} {'cold s':>7} {'warm s':>7} {'ideal s':>7} {'efficiency':>10}"
                f"  {'CPU s cold':>10} {'CPU s warm':>10} {'load':>9}"
            )
            for concurrency in options.concurrency:
                cache, reports = fresh(base, f"c{concurrency}", dataset)
                args = pytest_args(options.select, url, concurrency, cache, reports)
                cold = Timed(server, args)
                n = sent(reports)
                warm = Timed(server, args)
                ideal = n * options.latency / concurrency
                efficiency = ideal / (cold.wall - warm.wall)
                print(f"{concurrency:>5} {n:>8} {cold.wall:>7.1f} {warm.wall:>7.1f} {ideal:>7.1f} "
                      f"{efficiency:>10.2f}  {cold.cpu_text():>10} {warm.cpu_text():>10} "
                      f"{cold.load:>4.1f}/{warm.load:<4.1f}")  # fmt: skip
            print("(CPU s: the run's process and children / the server's; load: the 1-minute load average)")

            concurrency = options.concurrency[0]
            for select in (options.select, *options.xdist_select):
                results = {}
                for label, extra in (("-n 0", []), ("-n 2", ["-n", "2"])):
                    cache, reports = fresh(base, label.replace(" ", ""), dataset)
                    timed = Timed(server, pytest_args(select, url, concurrency, cache, reports) + extra)
                    results[label] = (timed, sent(reports))
                (t0, n0), (t2, n2) = results["-n 0"], results["-n 2"]
                print(f"-m {select!r}: -n 2 against -n 0 at {concurrency}, cold: {t2.wall:.1f} s vs "
                      f"{t0.wall:.1f} s ({t0.wall / t2.wall:.2f}x), "
                      f"CPU {t2.cpu_text()} vs {t0.cpu_text()} s, "
                      f"load {t2.load:.1f}/{t0.load:.1f}, requests {n2} vs {n0}"
                      f"{'' if n2 == n0 else '  <- NOT EQUAL'}")  # fmt: skip

            if not options.no_profile:
                cache, reports = fresh(base, "profile", dataset)
                profile = base / "run.prof"
                args = pytest_args(options.select, url, concurrency, cache, reports)
                subprocess.run(
                    [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "pytest", *args],
                    cwd=ROOT,
                    capture_output=True,
                    check=False,
                )
                out = io.StringIO()
                stats = pstats.Stats(str(profile), stream=out)
                stats.sort_stats("cumulative").print_stats(r"iqa_eval|aiohttp|PIL|json", 25)
                print(f"\ncold run under cProfile at {concurrency} (cumulative; the profiler slows it down):")
                print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
