"""Local vision-language models from Hugging Face checkpoints (spec ``hf:<directory or hub id>``).

The model sees what an API model sees: one user turn of the study's text followed by the images
in presentation order, rendered by the checkpoint's own chat template and processor, so the
comparison with API models is about the models and not about how each was prompted. Decoding
follows the suite's ``Decoding`` only (greedy at temperature 0), never the checkpoint's
generation defaults, which would quietly add repetition penalties or top-p to "greedy" answers.

torch and transformers are imported when a client is built, not when this module is imported:
the rest of the suite runs without the ``hf`` extra.

Besides answering in text, a client exposes the next-token probabilities of the five quality
levels after "The quality of the image is" (Q-Align style), a score only local models can give.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iqa_eval.images import ImageStore
from iqa_eval.models.base import (
    Capabilities,
    ModelClient,
    ModelOptions,
    ModelSpecError,
    PermanentModelError,
)
from iqa_eval.types import Answer, Query, Usage

__all__ = [
    "FAMILY_MAX_IMAGES",
    "LEVELS",
    "LEVEL_PREFIX",
    "LEVEL_WEIGHTS",
    "HFModel",
    "LevelTokenError",
    "directory_identity",
    "level_token_ids",
    "score_from_levels",
]

VERSION = "1"
"""Part of every ``hf:`` fingerprint: bump it whenever prompt assembly or decoding here changes."""

LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")
LEVEL_WEIGHTS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
LEVEL_PREFIX = "The quality of the image is"

FAMILY_MAX_IMAGES: dict[str, int] = {
    "blip": 1,
    "blip-2": 1,
    "instructblip": 1,
    "kosmos-2": 1,
    "fuyu": 1,
    "florence2": 1,
}
"""Images per prompt for families (by ``model_type``) that take a single image by construction.

Their vision features enter through one fixed slot per prompt, so a multi-image cell could only
error. Every other family accepts any number of images and how well it uses them is what the
DS and MS cells measure; a family known to break past some count is given a limit through the
``max_images`` argument instead.
"""

CONTENT_HASH_LIMIT = 64 * 2**20
"""Files up to this size enter a local fingerprint by content; larger ones by size and mtime.

Configs, tokenizers and small weights are then identified exactly, while multi-GB shards are not
read in full on every run; rewriting a shard changes its mtime, so the fingerprint still moves.
"""

Kind = Literal["generate", "levels"]


class HFModel(ModelClient):
    """A local checkpoint answering through ``generate``, with queries batched as they arrive.

    The config is read at construction (capabilities, fingerprint); weights load on the first
    query, so a run answered entirely from the cache never loads them. ``max_images`` overrides
    the family's limit from FAMILY_MAX_IMAGES. Up to ``batch_size`` queries that arrive within
    ``batch_window_s`` of each other share one forward pass.
    """

    def __init__(
        self,
        spec: str,
        store: ImageStore | None = None,
        options: ModelOptions | None = None,
        *,
        max_images: int | None = None,
        batch_size: int = 8,
        batch_window_s: float = 0.005,
    ) -> None:
        kind, _, name = spec.partition(":")
        if kind != "hf" or not name:
            raise ModelSpecError("use hf:<local directory or hub id>")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        options = options or ModelOptions()
        self.spec = spec
        self.cacheable = True
        self._store = store if store is not None else ImageStore()
        self._torch, self._transformers = _import_hf()
        self._device = _device(self._torch, options.device)
        self._dtype = _dtype(self._torch, options.dtype)
        self._source, self._revision, identity, label = _resolve(name)
        config = self._load_config()
        limit = max_images if max_images is not None else FAMILY_MAX_IMAGES.get(config.model_type)
        self.capabilities = Capabilities(max_images=limit)
        digest = hashlib.sha256(
            json.dumps([VERSION, identity, options.dtype, self._device.type]).encode()
        ).hexdigest()
        self.fingerprint = f"hf:{label}@{digest[:16]}"
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._batcher = _MicroBatcher(self._run, batch_size, batch_window_s)

    # -- public ---------------------------------------------------------------------------------

    async def answer(self, query: Query) -> Answer:
        result: _Generated = await self._batcher.submit("generate", query, _generate_group(query))
        return Answer(
            result.text,
            usage=Usage(result.prompt_tokens, result.completion_tokens),
            latency_s=result.latency_s,
        )

    async def level_probabilities(self, query: Query) -> tuple[float, ...]:
        """P(level word | prompt + "The quality of the image is"), renormalised over LEVELS.

        The order is LEVELS (excellent … bad); feed it to score_from_levels for a 0–100 score.
        """
        probs: tuple[float, ...] = await self._batcher.submit("levels", query, ("levels", len(query.images)))
        return probs

    def prompt(self, query: Query, assistant_prefix: str = "") -> str:
        """The prompt text the model receives for ``query``, before image placeholders expand.

        For reading what a model was actually asked; loads the model if needed.
        """
        self.load()
        return _render(self.processor, query, assistant_prefix)

    def load(self) -> None:
        """Load processor and weights now rather than on the first query (once per client)."""
        with self._lock:
            self._ensure_loaded()

    @property
    def model(self) -> Any:
        """The loaded torch model (after ``load()`` or a first query)."""
        return self._require_loaded().model

    @property
    def processor(self) -> Any:
        """The loaded processor (after ``load()`` or a first query)."""
        return self._require_loaded().processor

    # -- loading --------------------------------------------------------------------------------

    def _load_config(self) -> Any:
        try:
            return self._transformers.AutoConfig.from_pretrained(self._source, revision=self._revision)
        except (OSError, ValueError) as err:
            raise ModelSpecError(f"cannot read the config of {self._source}: {err}") from None

    def _require_loaded(self) -> _Loaded:
        if self._loaded is None:
            raise RuntimeError(f"{self.spec} is not loaded yet: call load() or ask it a query first")
        return self._loaded

    def _ensure_loaded(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        tf = self._transformers
        try:
            processor = tf.AutoProcessor.from_pretrained(self._source, revision=self._revision)
            model = tf.AutoModelForImageTextToText.from_pretrained(
                self._source, revision=self._revision, dtype=self._dtype
            )
        except Exception as err:
            raise PermanentModelError("model_load", f"{type(err).__name__}: {err}") from err
        model = model.to(self._device).eval()
        tokenizer = processor.tokenizer
        # Batches are padded on the left so that every row's next token follows its own prompt.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            # Batching needs a pad token; padded positions are masked, so EOS serves as well as any.
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        # generate() fills every unset decoding option from the checkpoint's generation config
        # (a repetition penalty, n-gram blocking ...); keeping only its token ids there makes
        # greedy mean argmax, as the suite's Decoding says.
        model.generation_config = tf.GenerationConfig(
            bos_token_id=model.generation_config.bos_token_id,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
        )
        self._loaded = _Loaded(
            model=model,
            processor=processor,
            eos_ids=frozenset([eos] if isinstance(eos, int) else eos or ()),
            keeps_last_logits="logits_to_keep" in inspect.signature(model.forward).parameters,
        )
        return self._loaded

    # -- the worker thread ----------------------------------------------------------------------

    def _run(self, kind: Kind, queries: Sequence[Query]) -> list[Any]:
        with self._lock:
            loaded = self._ensure_loaded()
            try:
                if kind == "generate":
                    return self._generate(loaded, queries)
                return self._levels(loaded, queries)
            except LevelTokenError as err:
                raise PermanentModelError("logit_scoring", str(err)) from err
            except Exception as err:
                # A local model that raises is broken or misconfigured for these inputs, and the
                # next query would raise the same: one clear stop beats a report full of failures.
                raise PermanentModelError("model_error", f"{type(err).__name__}: {err}") from err

    def _inputs(self, loaded: _Loaded, queries: Sequence[Query], assistant_prefix: str = "") -> Any:
        from PIL import Image

        processor = loaded.processor
        texts = [_render(processor, query, assistant_prefix) for query in queries]
        images = [[Image.fromarray(self._store.pixels(im.stimulus.path)) for im in q.images] for q in queries]
        # As the processor's own apply_chat_template does: a template that writes BOS itself
        # must not get a second one from the tokenizer.
        bos = processor.tokenizer.bos_token
        inputs = processor(
            text=texts,
            images=images if any(images) else None,
            padding=True,
            return_tensors="pt",
            add_special_tokens=not (bos and texts[0].startswith(bos)),
        )
        return inputs.to(self._device).to(loaded.model.dtype)

    def _generate(self, loaded: _Loaded, queries: Sequence[Query]) -> list[_Generated]:
        torch, tf = self._torch, self._transformers
        start = time.perf_counter()
        inputs = self._inputs(loaded, queries)
        decoding = queries[0].decoding
        tokenizer = loaded.processor.tokenizer
        config = tf.GenerationConfig(max_new_tokens=decoding.max_tokens, do_sample=False, num_beams=1)
        processors = None
        if decoding.temperature > 0:
            seeds = [
                q.decoding.seed if q.decoding.seed is not None else secrets.randbits(63) for q in queries
            ]
            processors = tf.LogitsProcessorList([_SeededSampling(torch, decoding.temperature, seeds)])
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, generation_config=config, logits_processor=processors)
        latency = time.perf_counter() - start
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        results = []
        new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
        for row, prompt_tokens in zip(new_tokens, prompt_lengths, strict=True):
            # A row that finished early is padded to the batch's length: count up to its own EOS.
            end = next((i + 1 for i, token in enumerate(row) if token in loaded.eos_ids), len(row))
            text = tokenizer.decode(row[:end], skip_special_tokens=True)
            results.append(_Generated(text, int(prompt_tokens), end, latency))
        return results

    def _levels(self, loaded: _Loaded, queries: Sequence[Query]) -> list[tuple[float, ...]]:
        torch = self._torch
        if loaded.level_ids is None:
            loaded.level_ids = level_token_ids(loaded.processor.tokenizer)
        inputs = self._inputs(loaded, queries, assistant_prefix=LEVEL_PREFIX)
        extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
        with torch.inference_mode():
            logits = loaded.model(**inputs, **extra).logits[:, -1, :]
        chosen = logits[:, list(loaded.level_ids)].float()
        return [tuple(float(p) for p in row) for row in torch.softmax(chosen, dim=-1).tolist()]


# -- logit scoring ------------------------------------------------------------------------------


class LevelTokenError(ValueError):
    """A tokenizer whose level words cannot be told apart by their first token."""


def level_token_ids(
    tokenizer: Any, prefix: str = LEVEL_PREFIX, words: Sequence[str] = LEVELS
) -> tuple[int, ...]:
    """The first token of each level word as the tokenizer encodes it right after ``prefix``.

    Encoding in context rather than the bare word matters: SentencePiece tokenizers encode a
    lone " good" as a space token followed by "good", which would make every level look alike.
    """
    base = tokenizer.encode(prefix, add_special_tokens=False)
    ids: list[int] = []
    for word in words:
        full = tokenizer.encode(f"{prefix} {word}", add_special_tokens=False)
        if len(full) <= len(base) or full[: len(base)] != base:
            raise LevelTokenError(
                f"the tokenizer merges {word!r} into the end of {prefix!r}, so no next token names it"
            )
        ids.append(int(full[len(base)]))
    for i, token in enumerate(ids):
        if token in ids[:i]:
            other = words[ids.index(token)]
            raise LevelTokenError(
                f"level words {other!r} and {words[i]!r} share their first token "
                f"{tokenizer.convert_ids_to_tokens(token)!r} (id {token}); their probabilities "
                f"cannot be told apart, so this model cannot be scored from logits"
            )
    return tuple(ids)


def score_from_levels(probs: Sequence[float]) -> float:
    """Q-Align's score: 100 × Σ p_i w_i with weights 1, .75, .5, .25, 0 for excellent … bad."""
    if len(probs) != len(LEVEL_WEIGHTS):
        raise ValueError(f"need {len(LEVEL_WEIGHTS)} level probabilities (excellent … bad), got {len(probs)}")
    return 100.0 * math.fsum(p * w for p, w in zip(probs, LEVEL_WEIGHTS, strict=True))


# -- identity -----------------------------------------------------------------------------------


def directory_identity(path: str | os.PathLike[str]) -> str:
    """A digest of a checkpoint directory: what from_pretrained can read from it.

    Only top-level files count (from_pretrained reads no subfolders). See CONTENT_HASH_LIMIT
    for which files are hashed by content.
    """
    digest = hashlib.sha256()
    for entry in sorted(Path(path).iterdir()):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        stat = entry.stat()
        if stat.st_size <= CONTENT_HASH_LIMIT:
            mark = hashlib.sha256(entry.read_bytes()).hexdigest()
        else:
            mark = f"{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(f"{entry.name}\0{mark}\n".encode())
    return digest.hexdigest()


def _resolve(name: str) -> tuple[str, str | None, str, str]:
    """Where to load from, the revision to pin, the checkpoint's identity, and a readable label.

    A hub checkpoint is identified by the commit of its cached snapshot, and loading is pinned
    to that commit so that weights fetched later belong to the config read now.
    """
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local), None, directory_identity(local), local.resolve().name
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelSpecError(f"{name} is not a directory")
    from huggingface_hub import hf_hub_download

    try:
        # Online this resolves the branch to its current commit; offline it returns the cached one.
        cached = hf_hub_download(name, "config.json")
    except Exception as err:
        raise ModelSpecError(
            f"{name} is not a local directory, and neither in the Hugging Face cache nor "
            f"downloadable ({type(err).__name__}: {err})"
        ) from None
    commit = Path(cached).parent.name
    return name, commit, commit, name


# -- plumbing -----------------------------------------------------------------------------------


def _import_hf() -> tuple[Any, Any]:
    try:
        return importlib.import_module("torch"), importlib.import_module("transformers")
    except ImportError as err:
        raise ModelSpecError(
            f"hf: models need torch and transformers ({err}); install iqa-eval[hf]"
        ) from None


def _device(torch: Any, name: str) -> Any:
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ModelSpecError(f"bad device {name!r}: {err}") from None


def _dtype(torch: Any, name: str) -> Any:
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ModelSpecError(f"bad dtype {name!r}; use e.g. float32, bfloat16 or auto")
    return dtype


def _render(processor: Any, query: Query, assistant_prefix: str) -> str:
    """The study's single user turn: the text first, then one image entry per image in order."""
    content: list[dict[str, str]] = [{"type": "text", "text": query.text}]
    content.extend({"type": "image"} for _ in query.images)
    prompt: str = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True
    )
    if assistant_prefix:
        prompt += assistant_prefix if prompt[-1:].isspace() else " " + assistant_prefix
    return prompt


def _generate_group(query: Query) -> Hashable:
    """Queries that may share one generate call.

    Decoding must agree, and so must the image count: equal-length image lists are the one
    layout every family's processor batches, while ragged ones are handled differently by each.
    """
    return ("generate", query.decoding.temperature, query.decoding.max_tokens, len(query.images))


@dataclass
class _Loaded:
    model: Any
    processor: Any
    eos_ids: frozenset[int]
    keeps_last_logits: bool
    level_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class _Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


class _SeededSampling:
    """Temperature sampling with one seeded generator per row, as a logits processor.

    generate() samples from the global RNG, so a seeded query's answer would depend on whatever
    ran before it and on which queries it was batched with. Drawing here instead, each row from
    its own generator, and leaving only the drawn token finite makes greedy selection take it.
    """

    def __init__(self, torch: Any, temperature: float, seeds: Sequence[int]) -> None:
        self._torch = torch
        self._temperature = temperature
        self._generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self._torch
        probs = torch.softmax(scores.float().cpu() / self._temperature, dim=-1)
        picks = torch.stack(
            [torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self._generators, strict=True)]
        )
        chosen = torch.full_like(scores, -math.inf)
        return chosen.scatter_(1, picks.to(scores.device), 0.0)


@dataclass
class _Pending:
    kind: Kind
    query: Query
    group: Hashable
    future: asyncio.Future[Any]


@dataclass
class _LoopQueue:
    pending: list[_Pending] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class _MicroBatcher:
    """Turns concurrent calls on one event loop into batched calls in a worker thread.

    The engine runs each batch of queries in its own ``asyncio.run``, so the queue belongs to
    the running loop and lives only while it has work. The first caller starts a drain that
    waits ``window_s`` for the others, then runs up to ``batch_size`` requests of the oldest
    request's group at a time; requests arriving meanwhile join the next batch.
    """

    def __init__(
        self, run: Callable[[Kind, Sequence[Query]], list[Any]], batch_size: int, window_s: float
    ) -> None:
        self._run = run
        self._batch_size = batch_size
        self._window_s = window_s
        self._queues: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}

    async def submit(self, kind: Kind, query: Query, group: Hashable) -> Any:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
            queue.task = loop.create_task(self._drain(loop, queue))
        future: asyncio.Future[Any] = loop.create_future()
        queue.pending.append(_Pending(kind, query, group, future))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        try:
            await asyncio.sleep(self._window_s)
            while queue.pending:
                batch = self._take(queue.pending)
                if not batch:
                    continue
                try:
                    results = await asyncio.to_thread(self._run, batch[0].kind, [p.query for p in batch])
                except Exception as err:
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(err)
                    continue
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
        finally:
            del self._queues[loop]

    def _take(self, pending: list[_Pending]) -> list[_Pending]:
        # Callers cancelled while waiting (the engine stops on a permanent error) are dropped.
        pending[:] = [p for p in pending if not p.future.done()]
        if not pending:
            return []
        group = pending[0].group
        batch = [p for p in pending if p.group == group][: self._batch_size]
        taken = {id(p) for p in batch}
        pending[:] = [p for p in pending if id(p) not in taken]
        return batch
