"""Tiny random vision-language models, built from configs and saved like a downloaded checkpoint.

No weights can be downloaded in CI, yet ``hf:`` clients must be tested on the path a user takes:
a directory written by ``save_pretrained`` and read back by the Auto classes. Each builder here
writes such a directory for one architecture family. The models are random, so they answer
nonsense quickly (about 100k parameters); chat templates imitate the real checkpoints'
so that prompt assembly, special tokens and image placeholders go through the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoProcessor,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)

from iqa_eval.prompts import get_template
from iqa_eval.types import PROTOCOLS, SETTINGS, STRATEGIES

LEVEL_WORDS = ("excellent", "good", "fair", "poor", "bad")

# The level words and the logit-scoring prefix, repeated so that BPE merges them into whole-word
# tokens: with a byte-level alphabet alone all five level words would start with the same space
# token and logit scoring would (rightly) refuse the tokenizer. The suite's own prompt texts are
# added so that a prompt takes ~150 tokens instead of ~450 characters: the models run faster.
CORPUS = [
    "Rate the quality of this image. Score: 0 1 2 3 4 5 6 7 8 9 10 100",
    "The quality of the image is excellent. The quality of the image is good.",
    "The quality of the image is fair. The quality of the image is poor. The quality of the image is bad.",
    " excellent good fair poor bad" * 4,
    "USER: ASSISTANT: User: Assistant: system user assistant",
    *(
        get_template(setting, protocol, strategy).text
        for setting in SETTINGS
        for protocol in PROTOCOLS
        for strategy in STRATEGIES
        if strategy != "levels"  # the study's texts only: the corpus (and so the models) stay as they were
    ),
]

SMALL_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def build_tokenizer(
    specials: Sequence[str] = ("<image>",),
    extra_special_tokens: dict[str, str] | None = None,
    vocab_size: int = 1000,
    add_bos: bool = True,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on CORPUS, with the family's special tokens.

    ``add_bos`` imitates Llama-based checkpoints, whose tokenizer prepends BOS by itself.
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    if add_bos:
        # Like Llama's tokenizer: BOS in front of every encoded text unless told otherwise.
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens=extra_special_tokens or {},
    )


def _token_ids(tok: PreTrainedTokenizerFast) -> dict[str, Any]:
    return {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def _save(path: Path, model: torch.nn.Module, processor: Any) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


# As llava-hf/llava-1.5-7b-hf renders it: images first, then the text, then "ASSISTANT:".
LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ c['text'] + ' ' }}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def build_llava(path: Path) -> Path:
    tok = build_tokenizer(("<image>",), {"image_token": "<image>"})
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE,
        num_additional_image_tokens=1,
    )
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=32,
        ),
        text_config=LlamaConfig(vocab_size=len(tok), num_key_value_heads=2, **SMALL_TEXT, **_token_ids(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    return _save(path, LlavaForConditionalGeneration(config), processor)


# As Qwen/Qwen2-VL-2B-Instruct renders it, each image wrapped in vision start/end tokens.
QWEN2_VL_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN2_VL_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")


class NoVideoQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without the video processor, which cannot be built without torchvision.

    The saved files name this class, so it is registered with AutoProcessor below: loading then
    goes through AutoProcessor.from_pretrained as a user's checkpoint does, and only the choice of
    processor class differs from a checkpoint saved with torchvision installed.
    """

    @classmethod
    def get_attributes(cls) -> list[str]:
        return [name for name in super().get_attributes() if name != "video_processor"]


AutoProcessor.register(Qwen2VLConfig, NoVideoQwen2VLProcessor, exist_ok=True)


def build_qwen2_vl(path: Path) -> Path:
    tok = build_tokenizer(QWEN2_VL_SPECIALS, {"image_token": "<|image_pad|>"}, add_bos=False)
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=32 * 32
    )
    processor = NoVideoQwen2VLProcessor(
        image_processor=image_processor, tokenizer=tok, video_processor=None, chat_template=QWEN2_VL_TEMPLATE
    )
    torch.manual_seed(0)
    ids = tok.convert_tokens_to_ids
    config = Qwen2VLConfig(
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 8,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        text_config={
            "vocab_size": len(tok),
            "num_key_value_heads": 2,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            **SMALL_TEXT,
            **_token_ids(tok),
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=tok.unk_token_id,
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    return _save(path, Qwen2VLForConditionalGeneration(config), processor)


# As HuggingFaceM4/Idefics3-8B-Llama3 renders it: BOS from the template, so the processor must not
# add a second one.
IDEFICS3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% elif c['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_SPECIALS = (
    "<image>",
    "<fake_token_around_image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)


def build_idefics3(path: Path) -> Path:
    tok = build_tokenizer(IDEFICS3_SPECIALS, {"image_token": "<image>"})
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True
    )
    # 32-pixel tiles of 8-pixel patches, pixel-shuffled by 2: 16 / 4 = 4 tokens per tile.
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=4, chat_template=IDEFICS3_TEMPLATE
    )
    torch.manual_seed(0)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=LlamaConfig(vocab_size=len(tok), num_key_value_heads=2, **SMALL_TEXT, **_token_ids(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    return _save(path, Idefics3ForConditionalGeneration(config), processor)


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "llava": build_llava,
    "qwen2_vl": build_qwen2_vl,
    "idefics3": build_idefics3,
}
