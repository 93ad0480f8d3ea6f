"""A whole pytest run against an API model: collection, plan, dispatch, parse, report.

Run: python bench/bench_run.py [--select EXPR] [--latency S] [--concurrency N ...]

The fake OpenAI-compatible server runs in its own process (tests/fake_openai.py), answers each
query in its template's format after ``--latency`` seconds, and costs next to nothing, so the
figures measure the suite. For each concurrency: a cold run (every query asked; the built-in
dataset is generated beforehand, as it is once per machine), then a warm run of the same
selection (every answer cached). The model-bound part of a run is ``requests x latency /
concurrency`` (the ideal); the benchmark prints ``ideal / (cold - warm)``: the share of the
request phase that the model's latency explains. Then ``-n 2`` against ``-n 0`` (cold, the
same selection): time and requests sent, which must be equal. Last, a cold run under cProfile
shows where the time that is not the model's goes.
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SELECT = "fr_structure and not icl"


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


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - start


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
            )
            for concurrency in options.concurrency:
                cache, reports = fresh(base, f"c{concurrency}", dataset)
                args = pytest_args(options.select, url, concurrency, cache, reports)
                cold = run(args)
                n = sent(reports)
                warm = run(args)
                ideal = n * options.latency / concurrency
                efficiency = ideal / (cold - warm)
                print(f"{concurrency:>5} {n:>8} {cold:>7.1f} {warm:>7.1f} {ideal:>7.1f} {efficiency:>10.2f}")

            concurrency = options.concurrency[0]
            results = {}
            for label, extra in (("-n 0", []), ("-n 2", ["-n", "2"])):
                cache, reports = fresh(base, label.replace(" ", ""), dataset)
                elapsed = run(pytest_args(options.select, url, concurrency, cache, reports) + extra)
                results[label] = (elapsed, sent(reports))
            (t0, n0), (t2, n2) = results["-n 0"], results["-n 2"]
            print(f"-n 2 against -n 0 at {concurrency}: {t2:.1f} s vs {t0:.1f} s ({t0 / t2:.2f}x), "
                  f"requests {n2} vs {n0}{'' if n2 == n0 else '  <- NOT EQUAL'}")  # fmt: skip

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
