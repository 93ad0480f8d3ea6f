"""Prompt templates for every prompting system, in the structure of Wu et al. (ECCV 2024).

Each prompt names the quality aspects to judge, fixes an answer format that starts with
``Score:``, and ends by asking the model not to refuse. The wording is our own. A template is
assembled from one task sentence per (setting, protocol), one answer format per protocol and one
wrapper per strategy, so the eighteen texts stay consistent with each other; the snapshots in
``fixtures/prompts/`` pin every rendered result, so any edit shows up as a diff. The ``levels``
strategy (SS and DS only) asks for a one-token answer instead, whose probabilities are read.

Bump ``TEMPLATE_VERSION`` whenever a text changes: the version and the text both enter the
template hash, which is part of every cache key, so old answers are never reused for new words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from iqa_eval.types import PROTOCOLS, SETTINGS, STRATEGIES, Protocol, Setting, Strategy

TEMPLATE_VERSION = 1

ASPECTS = (
    "preservation of structure and texture, colour and luminance, noise, contrast, sharpness, "
    "and any other low-level distortion"
)

NO_REFUSAL = (
    "This is a technical assessment of visual quality, not of what the picture shows, so always "
    "give your answer in the required format instead of declining."
)

ROLE = "You are an expert in judging the perceptual quality of images."

# What the model is asked to do, per setting and protocol. Images are numbered in the order
# they are shown; in-context demonstrations come first and are introduced by the strategy.
TASKS: dict[tuple[Setting, Protocol], str] = {
    ("nr", "ss"): (
        "Judge the perceptual quality of the image, considering {aspects}. "
        "Rate it on a scale from 0 (worst possible quality) to 100 (best possible quality)."
    ),
    ("fr", "ss"): (
        "The first image is a pristine reference and the second image is a possibly distorted "
        "version of it. Judge how well the second image keeps the quality of the reference, "
        "considering {aspects}. Rate it on a scale from 0 (completely degraded) to 100 "
        "(indistinguishable from the reference)."
    ),
    ("nr", "ds"): (
        "Compare the perceptual quality of the first image and the second image, considering "
        "{aspects}. Decide which of the two has the better quality."
    ),
    ("fr", "ds"): (
        "The first image is a pristine reference; the second and the third image are possibly "
        "distorted versions of it. Considering {aspects}, decide which of the second and the "
        "third image is closer in quality to the reference."
    ),
    ("nr", "ms"): ("Four images follow. Rank them by perceptual quality, considering {aspects}."),
    ("fr", "ms"): (
        "The first image is a pristine reference; the next four images are possibly distorted "
        "versions of it. Rank these four images by how close their quality is to the "
        "reference, considering {aspects}."
    ),
}

# The answer format, per protocol. DS codes: 1 = first better, 0 = second better, 2 = equal.
FORMATS: dict[tuple[Setting, Protocol], str] = {
    ("nr", "ss"): "Score: <a number from 0 to 100>",
    ("fr", "ss"): "Score: <a number from 0 to 100>",
    ("nr", "ds"): (
        "Score: <1 if the first image is better, 0 if the second image is better, "
        "2 if their quality is the same>"
    ),
    ("fr", "ds"): (
        "Score: <1 if the second image is closer to the reference, 0 if the third image is "
        "closer, 2 if they are equally close>"
    ),
    ("nr", "ms"): (
        "Score: <rank of image 1>, <rank of image 2>, <rank of image 3>, <rank of image 4>\n"
        "where each rank is 0 (worst), 1, 2 or 3 (best) and every rank is used once"
    ),
    ("fr", "ms"): (
        "Score: <rank of distorted image 1>, <rank of distorted image 2>, "
        "<rank of distorted image 3>, <rank of distorted image 4>\n"
        "where each rank is 0 (furthest from the reference) to 3 (closest); images of equal "
        "quality may share a rank"
    ),
}

# What the single in-context demonstration shows and what its true answer is. The images to
# judge follow the example, and the task below numbers them from the first image after it.
DEMOS: dict[tuple[Setting, Protocol], str] = {
    ("nr", "ss"): "The first image is a worked example whose quality score is {demo_label}.",
    ("fr", "ss"): (
        "The first two images are a worked example: a reference and a distorted version of it "
        "whose score is {demo_label}."
    ),
    ("nr", "ds"): (
        "The first two images are a worked example whose correct answer is Score: 1 (the first "
        "of them has the better quality)."
    ),
    ("fr", "ds"): (
        "The first three images are a worked example (a reference and two distorted versions) "
        "whose correct answer is Score: 1 (the first distorted version is closer to the "
        "reference)."
    ),
    ("nr", "ms"): (
        "The first four images are a worked example, shown from worst to best, so their correct "
        "answer is Score: 0, 1, 2, 3."
    ),
    ("fr", "ms"): (
        "The first five images are a worked example (a reference, then four distorted versions "
        "shown from furthest to closest), so their correct answer is Score: 0, 1, 2, 3."
    ),
}

DEMO_HANDOVER = (
    "Use it to calibrate your judgement. The images to judge follow the example; from here on, "
    "'the first image' means the first image after the example, and so on."
)

# The ``levels`` strategy reads the probabilities of the first answer token, so the answer must
# be one word (SS: a level) or one digit (DS, without the "same" code a probability cannot give).
# SS needs its own task sentence: the standard one asks for a number from 0 to 100.
LEVEL_TASKS: dict[Setting, str] = {
    "nr": (
        "Judge the perceptual quality of the image, considering {aspects}. Rate it with one of "
        "five levels: excellent, good, fair, poor or bad."
    ),
    "fr": (
        "The first image is a pristine reference and the second image is a possibly distorted "
        "version of it. Judge how well the second image keeps the quality of the reference, "
        "considering {aspects}. Rate it with one of five levels: excellent (indistinguishable "
        "from the reference), good, fair, poor or bad (completely degraded)."
    ),
}

ONE_TOKEN_FORMATS: dict[tuple[Setting, Protocol], str] = {
    ("nr", "ss"): "one word, the level: excellent, good, fair, poor or bad",
    ("fr", "ss"): "one word, the level: excellent, good, fair, poor or bad",
    ("nr", "ds"): "one digit: 1 if the first image is better, 0 if the second image is better",
    ("fr", "ds"): (
        "one digit: 1 if the second image is closer to the reference, 0 if the third image is closer"
    ),
}

COT_INSTRUCTION = (
    "First describe, in a few sentences, the quality of what you are judging along the aspects "
    "above (for several images, describe how they differ). Then give the answer that follows "
    "from your description."
)


@dataclass(frozen=True)
class Template:
    """One prompting system in one setting; ``text`` may hold ``{demo_label}``."""

    setting: Setting
    protocol: Protocol
    strategy: Strategy
    text: str

    @property
    def id(self) -> str:
        return f"{self.setting}-{self.protocol}-{self.strategy}@{TEMPLATE_VERSION}"

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.id}\n{self.text}".encode()).hexdigest()[:16]


def supports(protocol: Protocol, strategy: Strategy) -> bool:
    """Whether the prompting system exists: ``levels`` needs a one-token answer (not MS)."""
    return strategy != "levels" or (SETTINGS[0], protocol) in ONE_TOKEN_FORMATS


def _compose(setting: Setting, protocol: Protocol, strategy: Strategy) -> str:
    key = (setting, protocol)
    if strategy == "levels":
        task = LEVEL_TASKS[setting] if protocol == "ss" else TASKS[key]
        answer = f"Answer with exactly {ONE_TOKEN_FORMATS[key]}. Write nothing else."
        return "\n\n".join([ROLE, task.format(aspects=ASPECTS), answer, NO_REFUSAL])
    parts = [ROLE]
    if strategy == "icl":
        parts.append(f"{DEMOS[key]} {DEMO_HANDOVER}")
    parts.append(TASKS[key].format(aspects=ASPECTS))
    answer_format = FORMATS[key]
    if strategy == "cot":
        parts.append(COT_INSTRUCTION)
        answer_format = "Description: <your description>\n" + answer_format
    parts.append("Answer in exactly this format:\n" + answer_format)
    parts.append(NO_REFUSAL)
    return "\n\n".join(parts)


@cache
def get_template(setting: Setting, protocol: Protocol, strategy: Strategy) -> Template:
    known = setting in SETTINGS and protocol in PROTOCOLS and strategy in STRATEGIES
    if not known or not supports(protocol, strategy):
        raise ValueError(f"no prompting system {setting}/{protocol}/{strategy}")
    return Template(setting, protocol, strategy, _compose(setting, protocol, strategy))


def render(template: Template, demo_label: str | None = None) -> str:
    """Fill the demonstration label; only SS in-context templates take one."""
    needs_label = "{demo_label}" in template.text
    if needs_label != (demo_label is not None):
        raise ValueError(f"template {template.id} {'needs' if needs_label else 'takes no'} demo label")
    return template.text.replace("{demo_label}", demo_label) if demo_label is not None else template.text
