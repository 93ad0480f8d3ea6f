"""A local model through the ``hf:`` client: micro-batched queries against one at a time.

Run: python bench/bench_hf.py [--model PATH] [--device cuda] [--dtype bfloat16] [--queries N]

Without ``--model`` it builds a tiny random LLaVA offline (tests/tiny_vlms.py: the path a user's
``save_pretrained`` checkpoint takes, at ~100k parameters) and runs on the CPU; with ``--model``
it loads a real checkpoint (a local directory, or a hub id when the hub is reachable), which is
what the figure means on a GPU machine. The queries are the suite's own: the built-in dataset's
NR single-stimulus standard queries (one image each, the study's prompt), answered by the engine
at the suite's default concurrency. The baseline is the same client with ``batch_size=1``, in
the same process and run: the ratio is micro-batching's gain on this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from iqa_eval.datasets.builtin import BuiltinDataset  # noqa: E402
from iqa_eval.evaluation.cells import Planner  # noqa: E402
from iqa_eval.execution.engine import Engine  # noqa: E402
from iqa_eval.images import ImageStore  # noqa: E402
from iqa_eval.models.base import ModelOptions  # noqa: E402
from iqa_eval.models.hf import HFModel  # noqa: E402
from iqa_eval.types import CellSpec, Decoding, Query  # noqa: E402


def queries(cache: Path, n: int, max_tokens: int) -> list[Query]:
    builtin = BuiltinDataset(cache)
    planner = Planner(seed=0, decoding=Decoding(max_tokens=max_tokens), paper=False)
    out: list[Query] = []
    for attribute in ("structure", "color", "geometry", "texture"):
        spec = CellSpec("bench", "builtin", "nr", attribute, "ss", "standard", "uniform")
        out += [pq.query for pq in planner.plan(spec, builtin).queries]
    return out[:n]


def timed(model: HFModel, batch: list[Query], concurrency: int) -> tuple[float, int]:
    engine = Engine(None, concurrency, progress=False)
    start = time.perf_counter()
    answers = engine.run(model, batch)
    elapsed = time.perf_counter() - start
    engine.close([model])
    return elapsed, sum(a.ok for a in answers.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="checkpoint directory or hub id (default: a tiny LLaVA built offline)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--max-tokens", type=int, default=16, help="tokens per answer (the suite asks for 512)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        if options.model:
            path = options.model
        else:
            import tiny_vlms

            path = str(tiny_vlms.build_llava(base / "tiny-llava"))
        batch = queries(base / "cache", options.queries, options.max_tokens)
        store = ImageStore()
        settings = ModelOptions(device=options.device, dtype=options.dtype)
        one = HFModel(f"hf:{path}", store, settings, batch_size=1)
        many = HFModel(f"hf:{path}", store, settings, batch_size=options.batch_size)
        for model in (one, many):  # load and warm up outside the timing
            model.load()
            timed(model, batch[:2], 2)
        t1, ok1 = timed(one, batch, options.concurrency)
        tb, okb = timed(many, batch, options.concurrency)
        label = options.model or "tiny random LLaVA (built offline)"
        print(f"{label} on {options.device} ({options.dtype}), {len(batch)} NR SS queries, "
              f"max {options.max_tokens} new tokens, concurrency {options.concurrency}")  # fmt: skip
        print(f"one at a time      {t1:7.2f} s  {len(batch) / t1:6.1f} q/s  ({ok1} answered)")
        rate = len(batch) / tb
        print(f"batches of {options.batch_size:<3}     {tb:7.2f} s  {rate:6.1f} q/s  ({okb} answered)")
        print(f"micro-batching: {t1 / tb:.2f}x one at a time")


if __name__ == "__main__":
    main()
