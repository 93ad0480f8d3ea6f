"""Throughput of the engine and the OpenAI client against the fake server at 100 ms latency.

Run as `python bench/bench_engine.py` from anywhere; it needs no installation beyond the venv.

The ideal at concurrency c is ``c / latency`` requests per second: every slot always busy, no
time lost between answers. The fake server runs in its own process so that its work does not
share the engine's interpreter lock; both processes' CPU use is printed next to each rate, so a
shortfall can be pinned on the client or the server; the client's CPU per request sets the rate
one process could reach at any concurrency (``1000 / ms`` per core). The warm-cache pass times what a
re-run costs: dedupe, keys, one cache read per 500 keys, no request.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from iqa_eval.execution.cache import ResponseCache  # noqa: E402
from iqa_eval.execution.engine import Engine  # noqa: E402
from iqa_eval.images import ImageStore  # noqa: E402
from iqa_eval.models.base import ModelOptions  # noqa: E402
from iqa_eval.models.openai_api import OpenAIModel  # noqa: E402
from iqa_eval.prompts import get_template, render  # noqa: E402
from iqa_eval.types import Answer, Query, QueryImage  # noqa: E402

LATENCY_S = 0.1
GROUPS = 100  # references
PER_GROUP = 21  # distorted images per reference: C(21, 2) = 210 pairs per group
RUNS = ((1, 50), (8, 400), (32, 2000), (64, 2000))  # (concurrency, queries)
WARM_QUERIES = 10_000
SIDE = 32


def make_stimuli(directory: Path, store: ImageStore) -> list[tuple[str, list[str]]]:
    """Small distinct PNGs: each group a reference and noisy versions of it."""
    rng = np.random.default_rng(0)
    groups = []
    for g in range(GROUPS):
        reference = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        ref_path = directory / f"g{g}_ref.png"
        Image.fromarray(reference).save(ref_path)
        images = []
        for k in range(PER_GROUP):
            noisy = np.clip(reference.astype(int) + rng.integers(-k - 1, k + 2, reference.shape), 0, 255)
            path = directory / f"g{g}_{k}.png"
            Image.fromarray(noisy.astype(np.uint8)).save(path)
            images.append(str(path))
        groups.append((str(ref_path), images))
    return groups


def fr_ds_queries(groups: list[tuple[str, list[str]]], store: ImageStore, n: int) -> list[Query]:
    """``n`` unique FR DS queries (reference, first, second), spread over the groups."""
    template = get_template("fr", "ds", "standard")
    text = render(template)
    pairs = [(a, b) for a in range(PER_GROUP) for b in range(a + 1, PER_GROUP)]
    out = []
    for i in range(n):
        ref, images = groups[i % GROUPS]
        a, b = pairs[i // GROUPS]
        stimuli = (
            QueryImage("reference", store.stimulus(ref)),
            QueryImage("image", store.stimulus(images[a])),
            QueryImage("image", store.stimulus(images[b])),
        )
        out.append(Query("fr", "ds", "standard", template.id, template.hash, text, stimuli))
    assert len({q.key for q in out}) == n
    return out


def cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_openai.py"), "--latency", str(LATENCY_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    os.environ.pop("OPENAI_API_KEY", None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = ImageStore()
            groups = make_stimuli(Path(tmp), store)
            queries = fr_ds_queries(groups, store, WARM_QUERIES)
            client = OpenAIModel("openai:bench", store, ModelOptions(base_urls=(url,)))
            print(f"fake server {url}, {LATENCY_S * 1000:.0f} ms latency, FR DS queries of 3 {SIDE}px PNGs")
            print(f"{'conc':>5} {'queries':>7} {'req/s':>8} {'ideal':>7} {'of ideal':>8} {'x seq':>6} "
                  f"{'engine cpu':>10} {'ms cpu/req':>10} {'server cpu':>10}")  # fmt: skip
            sequential = 0.0
            for concurrency, n in RUNS:
                engine = Engine(None, concurrency, progress=False)
                cpu0, server0, start = cpu_seconds(), cpu_seconds(server.pid), time.perf_counter()
                answers = engine.run(client, queries[:n])
                wall = time.perf_counter() - start
                cpu1, server1 = cpu_seconds(), cpu_seconds(server.pid)
                engine.close([client])
                assert len(answers) == n and all(a.ok for a in answers.values()), engine.stats.failures
                rate = n / wall
                ideal = concurrency / LATENCY_S
                sequential = sequential or rate
                engine_cpu, server_cpu = (cpu1 - cpu0) / wall, (server1 - server0) / wall
                per_request_ms = (cpu1 - cpu0) * 1000 / n
                print(
                    f"{concurrency:>5} {n:>7} {rate:>8.1f} {ideal:>7.0f} {rate / ideal:>8.2f} "
                    f"{rate / sequential:>6.1f} {engine_cpu:>9.0%} {per_request_ms:>10.2f} {server_cpu:>9.0%}"
                )
            used = {im.stimulus.path for q in queries[: max(n for _, n in RUNS)] for im in q.images}
            print(
                f"PNG encodes: {store.encode_count} for {len(used)} unique images in "
                f"{max(n for _, n in RUNS)} queries ({store.encode_count / len(used):.2f} per unique image)"
            )

            cache = ResponseCache(Path(tmp) / "cache")
            for q in queries:
                cache.put(client.fingerprint, q.key, Answer("Score: 1"))
            fresh = fr_ds_queries(groups, store, WARM_QUERIES)  # keys not yet computed: part of the cost
            engine = Engine(cache, 64, progress=False)
            start = time.perf_counter()
            answers = engine.run(client, fresh)
            wall = time.perf_counter() - start
            engine.close([client])
            assert engine.stats.cached == WARM_QUERIES and engine.stats.dispatched == 0
            print(
                f"warm cache: {WARM_QUERIES} queries in {wall * 1000:.0f} ms, "
                f"{wall * 1000 / WARM_QUERIES:.3f} ms per cached query"
            )
            cache.close()
    finally:
        server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main()
