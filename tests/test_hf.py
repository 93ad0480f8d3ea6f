"""Local ``hf:`` models, on tiny random checkpoints saved and loaded back as a user's would be."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("transformers")

import tiny_vlms
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForImageTextToText, Blip2Config, PreTrainedTokenizerFast

from iqa_eval.evaluation.cells import Planner
from iqa_eval.evaluation.config import RunConfig
from iqa_eval.evaluation.suite import Suite
from iqa_eval.images import ImageStore
from iqa_eval.models import hf
from iqa_eval.models.base import ModelOptions, PermanentModelError
from iqa_eval.models.hf import HFModel, directory_identity, identity, option_token_ids, score_from_levels
from iqa_eval.models.registry import ModelSpecError
from iqa_eval.protocols.ds import DS
from iqa_eval.protocols.ms import MS
from iqa_eval.protocols.ss import SS
from iqa_eval.types import CellSpec, Decoding, Query

FAMILIES = sorted(tiny_vlms.BUILDERS)
MAX_TOKENS = 8
PARSERS = {"ss": SS.parse, "ds": DS.parse, "ms": MS.parse}
PARSE_FAILURES = {"no_score", "refusal", "too_long", "unparseable", "wrong_count", "out_of_range"}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family's checkpoint directory, built once per test process."""
    # Models this small gain nothing from intra-op threads, and two xdist workers on two cores
    # would fight over them: one thread per process runs them several times faster.
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-vlms")
    return {name: build(root / name) for name, build in tiny_vlms.BUILDERS.items()}


@pytest.fixture(scope="session")
def store() -> ImageStore:
    return ImageStore()


@pytest.fixture(scope="session")
def queries(builtin) -> dict[str, list[Query]]:
    """Real planned queries of the suite: SS NR (1 image), DS NR (2), MS FR (5)."""
    planner = Planner(decoding=Decoding(max_tokens=MAX_TOKENS))
    out = {}
    for name, setting, protocol, strategy in [
        ("ss", "nr", "ss", "standard"),
        ("ss_cot", "nr", "ss", "cot"),
        ("ds", "nr", "ds", "standard"),
        ("ms", "fr", "ms", "standard"),
    ]:
        plan = planner.plan(
            CellSpec("m", "builtin", setting, "structure", protocol, strategy, "uniform"), builtin
        )
        out[name] = [pq.query for pq in plan.queries[:4]]
    return out


def client(path: Path, store: ImageStore, **kwargs) -> HFModel:
    return HFModel(f"hf:{path}", store, **kwargs)


def answer_all(model: HFModel, qs: list[Query], together: bool):
    async def run():
        if together:
            return await asyncio.gather(*(model.answer(q) for q in qs))
        return [await model.answer(q) for q in qs]

    return asyncio.run(run())


def record_generate(model: HFModel) -> list[dict]:
    """The inputs of every generate() call the loaded model makes from now on."""
    model.load()
    calls: list[dict] = []
    inner = model.model.generate

    def generate(**kwargs):
        calls.append(kwargs)
        return inner(**kwargs)

    model.model.generate = generate
    return calls


# -- answering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_answers_each_protocol_and_nonsense_becomes_failures(family, tiny, store, queries):
    model = client(tiny[family], store)
    for protocol, setting in [("ss", "nr"), ("ds", "nr"), ("ms", "fr")]:
        qs = queries[protocol][:2]
        for q, answer in zip(qs, answer_all(model, qs, together=True), strict=True):
            assert answer.ok and isinstance(answer.text, str)
            assert 0 < answer.usage.completion_tokens <= MAX_TOKENS
            assert answer.usage.prompt_tokens > len(q.text) // 8
            judgement = PARSERS[protocol](answer.text, setting)
            assert not judgement.ok and judgement.failure, (protocol, answer.text)


def test_prompt_is_the_text_then_one_placeholder_per_image(tiny, store, queries):
    model = client(tiny["qwen2_vl"], store)
    q = queries["ms"][0]
    prompt = model.prompt(q)
    assert prompt.index(q.text) < prompt.index("<|vision_start|>")
    assert prompt.count("<|image_pad|>") == len(q.images) == 5
    assert prompt.endswith("<|im_start|>assistant\n")


def test_images_reach_the_model_in_presentation_order(tiny, store, queries):
    model = client(tiny["llava"], store)
    calls = record_generate(model)
    q = queries["ms"][0]
    assert [im.role for im in q.images] == ["reference"] + ["image"] * 4
    answer_all(model, [q], together=True)
    images = [Image.fromarray(store.pixels(im.stimulus.path)) for im in q.images]
    expected = model.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    assert torch.equal(calls[0]["pixel_values"], expected)
    assert len({im.stimulus.sha256 for im in q.images}) == 5


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_prompts_start_with_one_bos_whoever_writes_it(family, tiny, store, queries):
    # LLaVA's template leaves BOS to the tokenizer; Idefics3's writes it itself.
    model = client(tiny[family], store)
    calls = record_generate(model)
    answer_all(model, queries["ss"][:1], together=True)
    bos = model.processor.tokenizer.bos_token_id
    (ids,) = calls[0]["input_ids"].tolist()
    assert ids[0] == bos and ids.count(bos) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_greedy_answers_equal_one_at_a_time(family, tiny, store, queries):
    model = client(tiny[family], store)
    calls = record_generate(model)
    # Different prompt lengths force left padding; the DS queries form a second group.
    qs = [queries["ss"][0], queries["ss_cot"][0], queries["ss"][1], queries["ds"][0], queries["ds"][1]]
    together = answer_all(model, qs, together=True)
    assert sorted(len(call["input_ids"]) for call in calls) == [2, 3]
    calls.clear()
    alone = answer_all(model, qs, together=False)
    assert [len(call["input_ids"]) for call in calls] == [1] * len(qs)
    assert [a.text for a in together] == [a.text for a in alone]
    assert [a.usage for a in together] == [a.usage for a in alone]
    assert len({a.usage.prompt_tokens for a in alone[:3]}) > 1


def test_seeded_sampling_repeats_and_the_seed_matters(tiny, store, queries):
    model = client(tiny["llava"], store)
    base = queries["ss"][0]

    def sampled(seed):
        decoding = Decoding(temperature=1.0, max_tokens=MAX_TOKENS, seed=seed)
        return dataclasses.replace(base, decoding=decoding)

    first, again, other = answer_all(model, [sampled(7), sampled(7), sampled(8)], together=True)
    assert first.text == again.text != other.text


def test_the_checkpoints_generation_defaults_do_not_change_greedy_answers(tiny, store, queries, tmp_path):
    path = shutil.copytree(tiny["llava"], tmp_path / "penalised")
    config = json.loads((path / "generation_config.json").read_text())
    config.update(repetition_penalty=5.0, no_repeat_ngram_size=1, do_sample=True, top_k=2)
    (path / "generation_config.json").write_text(json.dumps(config))
    qs = queries["ss"][:2]
    plain = answer_all(client(tiny["llava"], store), qs, True)
    assert [a.text for a in answer_all(client(path, store), qs, True)] == [a.text for a in plain]


def test_two_loads_answer_alike_with_one_fingerprint(tiny, store, queries):
    a, b = client(tiny["llava"], store), client(tiny["llava"], store)
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("hf:llava@")
    qs = queries["ds"][:2]
    assert [x.text for x in answer_all(a, qs, True)] == [x.text for x in answer_all(b, qs, True)]


def test_fingerprint_follows_weights_and_dtype(tmp_path, store):
    path = tiny_vlms.build_llava(tmp_path / "m")
    before = client(path, store).fingerprint
    assert client(path, store, options=ModelOptions(dtype="bfloat16")).fingerprint != before
    model = AutoModelForImageTextToText.from_pretrained(path)
    with torch.no_grad():
        next(model.parameters())[0].add_(1.0)
    model.save_pretrained(path)
    assert client(path, store).fingerprint != before


def test_large_files_count_by_size_and_mtime(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x" * 100)
    monkeypatch.setattr(identity, "CONTENT_HASH_LIMIT", 10)
    before = directory_identity(tmp_path)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert directory_identity(tmp_path) != before


def test_a_hub_id_is_pinned_to_its_cached_commit(tiny, store, queries, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--tiny--llava"
    fingerprints = []
    for commit in ("a" * 40, "b" * 40):
        shutil.copytree(tiny["llava"], repo / "snapshots" / commit)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        model = HFModel("hf:tiny/llava", store)
        fingerprints.append(model.fingerprint)
    assert fingerprints[0].startswith("hf:tiny/llava@") and fingerprints[0] != fingerprints[1]
    (answer,) = answer_all(model, queries["ss"][:1], together=True)
    assert answer.ok


# -- capabilities and errors -----------------------------------------------------------------------


def test_max_images_from_family_or_argument(tiny, store, tmp_path):
    assert client(tiny["llava"], store).capabilities.max_images is None
    assert client(tiny["llava"], store, max_images=4).capabilities.max_images == 4
    Blip2Config().save_pretrained(tmp_path)
    assert client(tmp_path, store).capabilities.max_images == 1


def test_weights_that_cannot_load_stop_the_run(store, queries, tmp_path):
    Blip2Config().save_pretrained(tmp_path)
    model = client(tmp_path, store)
    with pytest.raises(PermanentModelError) as err:
        answer_all(model, queries["ss"][:1], together=True)
    assert err.value.reason == "model_load"


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("hf:", None, "use hf:<local directory or hub id>"),
        ("hf:./no/such/dir", None, "is not a directory"),
        (
            "hf:nobody/nothing",
            None,
            "nobody/nothing is not a local directory, and neither in the Hugging Face cache",
        ),
        ("hf:{llava}", ModelOptions(dtype="float99"), "bad dtype 'float99'"),
    ],
)
def test_bad_specs_are_spec_errors(tiny, store, spec, options, message):
    with pytest.raises(ModelSpecError, match=message.replace("(", r"\(")):
        HFModel(spec.format(llava=tiny["llava"]), store, options)


def test_without_torch_the_error_says_what_to_install(monkeypatch, store):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelSpecError, match=r"install iqa-eval\[hf\]"):
        HFModel("hf:anything", store)


def test_importing_the_module_does_not_import_torch():
    code = "import sys, iqa_eval.models.hf; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- logit scoring ------------------------------------------------------------------------------


def word_tokenizer(vocab: dict[str, int]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def test_level_token_ids_are_read_from_the_tokenizer():
    words = ["<unk>", "The", "quality", "of", "the", "image", "is"]
    levels = {"bad": 17, "excellent": 9, "poor": 8, "good": 12, "fair": 30, "Good": 31}
    vocab = {w: i for i, w in enumerate(words)} | levels
    assert option_token_ids(word_tokenizer(vocab)) == ((9,), (12, 31), (30,), (8,), (17,))


def test_every_spelling_of_a_level_gives_a_token_to_merge():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"{w}\n {w}\n{w.capitalize()}\n {w.capitalize()}" for w in hf.LEVELS] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    good = {fast.convert_ids_to_tokens(t) for t in option_token_ids(fast)[1]}
    assert {"good", "Ġgood", "Good", "ĠGood"} <= good
    assert all(t.lstrip("Ġ").lower().startswith("goo") for t in good)


def test_a_tokenizer_that_cannot_spell_a_level_is_refused():
    # A byte-level tokenizer without merges spells every word from single bytes: "g" starts too
    # much to stand for "good".
    tok = Tokenizer(
        models.BPE(vocab={c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}, merges=[])
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    with pytest.raises(
        hf.LevelTokenError, match="no token of this tokenizer spells the start of 'excellent'"
    ):
        option_token_ids(PreTrainedTokenizerFast(tokenizer_object=tok))


@pytest.mark.parametrize("family", FAMILIES)
def test_level_probabilities_are_a_distribution_over_the_five_words(family, tiny, store, queries):
    model = client(tiny[family], store)

    async def run():
        return await asyncio.gather(*(model.level_probabilities(q) for q in queries["ss"][:2]))

    for probs in asyncio.run(run()):
        assert len(probs) == 5 and all(0 < p < 1 for p in probs)
        assert sum(probs) == pytest.approx(1.0, abs=1e-6)
    assert "The quality of the image is" in model.prompt(queries["ss"][0], hf.LEVEL_PREFIX)


def test_level_probabilities_read_the_next_token_of_each_word(tiny, store, queries):
    model = client(tiny["llava"], store)
    model.load()
    good = model.processor.tokenizer.convert_tokens_to_ids("Ġgood")
    head = model.model.get_output_embeddings()

    def boost_good_after_the_prefix(module, args, output):
        output[:, -1, good] += 40.0
        return output

    head.register_forward_hook(boost_good_after_the_prefix)
    probs = asyncio.run(model.level_probabilities(queries["ss"][0]))
    assert probs[1] > 0.999
    assert score_from_levels(probs) == pytest.approx(75.0, abs=0.1)


@pytest.fixture(scope="session")
def level_queries(builtin) -> dict[str, list[Query]]:
    planner = Planner()
    return {
        protocol: [
            pq.query
            for pq in planner.plan(
                CellSpec("m", "builtin", "nr", "structure", protocol, "levels", "uniform"), builtin
            ).queries[:4]
        ]
        for protocol in ("ss", "ds")
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_levels_queries_are_answered_with_probabilities_from_the_logits(family, tiny, store, level_queries):
    model = client(tiny[family], store)
    assert model.capabilities.probabilities
    for protocol, words in (("ss", hf.LEVELS), ("ds", ("1", "0"))):
        for answer in answer_all(model, level_queries[protocol][:2], together=True):
            assert answer.ok and answer.text == "" and answer.probabilities is not None
            assert [w for w, _ in answer.probabilities] == list(words)
            # Out of the whole vocabulary: a random model puts most of its mass elsewhere.
            assert all(0 < p < 1 for _, p in answer.probabilities)
            assert sum(p for _, p in answer.probabilities) < 1


def test_the_probability_of_a_word_is_the_sum_over_its_spellings(tiny, store, level_queries):
    model = client(tiny["llava"], store)
    model.load()
    tokenizer = model.processor.tokenizer
    one = [tokenizer.convert_tokens_to_ids(t) for t in ("1", "Ġ1")]
    assert len(set(one)) == 2 and tokenizer.unk_token_id not in one
    head = model.model.get_output_embeddings()

    def boost_both_spellings_of_1(module, args, output):
        output[:, -1, one] += 40.0
        return output

    head.register_forward_hook(boost_both_spellings_of_1)
    (answer,) = answer_all(model, level_queries["ds"][:1], together=False)
    probabilities = dict(answer.probabilities)
    assert probabilities["1"] > 0.999 and probabilities["0"] < 1e-6


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_probabilities_equal_one_at_a_time(family, tiny, store, level_queries):
    model = client(tiny[family], store, batch_size=4)
    qs = level_queries["ss"] + level_queries["ds"]
    together = answer_all(model, qs, together=True)
    alone = answer_all(model, qs, together=False)
    for a, b in zip(together, alone, strict=True):
        assert [w for w, _ in a.probabilities] == [w for w, _ in b.probabilities]
        assert [p for _, p in a.probabilities] == pytest.approx(
            [p for _, p in b.probabilities], rel=1e-4, abs=1e-7
        )


def test_a_random_model_has_no_levels_mass_and_its_levels_cell_fails_with_that_reason(
    tiny, shared_cache, tmp_path
):
    config = RunConfig(root=tmp_path, cache_dir=shared_cache, models=("tiny",), use_cache=False)
    suite = Suite(config, lambda spec, store: HFModel(f"hf:{tiny['llava']}", store))
    spec = CellSpec("tiny", "builtin", "nr", "structure", "ss", "levels", "uniform")
    assert spec in suite.stage1_specs()
    try:
        result = suite.result(spec)
    finally:
        suite.close()
    assert result.n_failed == {"low_level_mass": result.n_queries} and result.coverage == 0.0
    assert result.n_compliant is None and result.examples[0].probabilities is not None


def test_score_from_levels_weights_excellent_to_bad():
    assert score_from_levels((0.1, 0.2, 0.3, 0.25, 0.15)) == pytest.approx(46.25)
    assert score_from_levels((1, 0, 0, 0, 0)) == 100.0 and score_from_levels((0, 0, 0, 0, 1)) == 0.0
    with pytest.raises(ValueError, match="need 5 level probabilities"):
        score_from_levels((0.5, 0.5))


# -- the suite, end to end ------------------------------------------------------------------------


def test_the_suite_runs_a_tiny_model_and_fails_its_cells_on_coverage(suite_dir, shared_cache, tiny):
    suite_dir.makeconftest(
        f"""
from iqa_eval.models.hf import HFModel

def pytest_iqa_make_model(spec, store):
    if spec == "tiny-llava":
        return HFModel("hf:{tiny["llava"]}", store)
    if spec == "tiny-llava-single":
        return HFModel("hf:{tiny["llava"]}", store, max_images=1)
"""
    )
    result = suite_dir.runpytest(
        "test_protocols/test_systems.py",
        f"--iqa-cache={shared_cache}",
        "--iqa-no-cache",
        "-p",
        "no:randomly",
        "--iqa-model=tiny-llava",
        "--iqa-model=tiny-llava-single",
        f"--iqa-max-tokens={MAX_TOKENS}",
        "-m",
        "(fr_color and ss and standard) or (nr_structure and ds and standard)",
    )
    cells = json.loads((suite_dir.path / "reports" / "iqa-report.json").read_text())["cells"]
    ran = [c for c in cells if c["model"] == "tiny-llava"]
    single = [c for c in cells if c["model"] == "tiny-llava-single"]
    outcomes = result.parseoutcomes()
    assert outcomes.pop("failed") == len(ran) and outcomes.pop("skipped") == len(single), outcomes
    # An in-process pytester run may warn that the already imported plugin cannot be rewritten.
    assert set(outcomes) <= {"deselected", "warnings"}, outcomes
    result.stdout.fnmatch_lines(["*coverage too low*coverage 0.0% of *"])
    assert {c["id"] for c in ran} == {
        "tiny-llava/builtin/fr_color/ss/standard/uniform",
        "tiny-llava/builtin/nr_structure/ds/standard/uniform",
    }
    for cell in ran:
        assert cell["outcome"] == "failed" and cell["coverage"] == 0.0
        assert cell["n_queries"] > 0 and sum(cell["n_failed"].values()) == cell["n_queries"]
        assert set(cell["n_failed"]) <= PARSE_FAILURES, cell["n_failed"]
    # Both cells show the model two images (FR: reference and image; DS: a pair).
    assert len(single) == 2
    for cell in single:
        assert cell["outcome"] == "skipped" and "takes at most 1 images per query" in cell["message"]
