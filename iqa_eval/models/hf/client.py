"""Local vision-language models from Hugging Face checkpoints (spec ``hf:<directory or hub id>``).

The model sees what an API model sees: one user turn of the study's text followed by the images
in presentation order, rendered by the checkpoint's own chat template and processor, so the
comparison with API models is about the models and not about how each was prompted. Decoding
follows the suite's ``Decoding`` only (greedy at temperature 0), never the checkpoint's
generation defaults, which would quietly add repetition penalties or top-p to "greedy" answers.

torch and transformers are imported when a client is built, not when this module is imported:
the rest of the suite runs without the ``hf`` extra.

A query with options (the ``levels`` strategy) is answered not in text but with the probability
of each answer word at the answer position, every spelling of a word merged, out of the whole
next-token distribution: what the API client reads from ``top_logprobs``, here exact.
``level_probabilities`` reads the five levels after "The quality of the image is" (Q-Align) for a
query of any strategy.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iqa_eval.images import ImageStore
from iqa_eval.models.base import (
    Capabilities,
    ModelClient,
    ModelOptions,
    ModelSpecError,
    PermanentModelError,
)
from iqa_eval.models.hf.batching import Kind, MicroBatcher, generate_group
from iqa_eval.models.hf.identity import resolve
from iqa_eval.models.hf.levels import LEVEL_PREFIX, LEVELS, LevelTokenError, option_token_ids
from iqa_eval.types import Answer, Query, Usage

VERSION = "1"
"""Part of every ``hf:`` fingerprint: bump it whenever prompt assembly or decoding here changes."""


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
        self._source, self._revision, identity, label = resolve(name)
        config = self._load_config()
        limit = max_images if max_images is not None else FAMILY_MAX_IMAGES.get(config.model_type)
        self.capabilities = Capabilities(max_images=limit, probabilities=True)
        digest = hashlib.sha256(
            json.dumps([VERSION, identity, options.dtype, self._device.type]).encode()
        ).hexdigest()
        self.fingerprint = f"hf:{label}@{digest[:16]}"
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._batcher = MicroBatcher(self._run, batch_size, batch_window_s)

    # -- public ---------------------------------------------------------------------------------

    async def answer(self, query: Query) -> Answer:
        if query.options:
            start = time.perf_counter()
            group = ("options", query.options, len(query.images))
            probabilities: tuple[tuple[str, float], ...] = await self._batcher.submit("options", query, group)
            # Nothing is generated: the answer is the distribution itself, and its text empty.
            return Answer("", latency_s=time.perf_counter() - start, probabilities=probabilities)
        result: _Generated = await self._batcher.submit("generate", query, generate_group(query))
        return Answer(
            result.text,
            usage=Usage(result.prompt_tokens, result.completion_tokens),
            latency_s=result.latency_s,
        )

    async def level_probabilities(self, query: Query) -> tuple[float, ...]:
        """P(level word | prompt + "The quality of the image is"), renormalised over LEVELS.

        The order is LEVELS (excellent … bad); feed it to score_from_levels for a 0–100 score.
        """
        found: tuple[tuple[str, float], ...] = await self._batcher.submit(
            "levels", query, ("levels", len(query.images))
        )
        mass = math.fsum(p for _, p in found)
        return tuple(p / mass for _, p in found)

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
                if kind == "levels":
                    return self._probabilities(loaded, queries, LEVELS, LEVEL_PREFIX)
                return self._probabilities(loaded, queries, queries[0].options, "")
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

    def _probabilities(
        self, loaded: _Loaded, queries: Sequence[Query], words: tuple[str, ...], prefix: str
    ) -> list[tuple[tuple[str, float], ...]]:
        """Each word's probability as the next token, every spelling summed, out of the whole
        vocabulary (so what falls on no word stays visible)."""
        torch = self._torch
        ids = loaded.option_ids.get(words)
        if ids is None:
            ids = loaded.option_ids[words] = option_token_ids(loaded.processor.tokenizer, words)
        inputs = self._inputs(loaded, queries, assistant_prefix=prefix)
        extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
        with torch.inference_mode():
            logits = loaded.model(**inputs, **extra).logits[:, -1, :]
        probs = torch.softmax(logits.float(), dim=-1)
        sums = torch.stack([probs[:, list(group)].sum(dim=-1) for group in ids], dim=-1).tolist()
        return [tuple(zip(words, (float(p) for p in row), strict=True)) for row in sums]


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


@dataclass
class _Loaded:
    model: Any
    processor: Any
    eos_ids: frozenset[int]
    keeps_last_logits: bool
    option_ids: dict[tuple[str, ...], tuple[tuple[int, ...], ...]] = field(default_factory=dict)


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
