"""Templates: the study's structure, stable hashes, and a version that moves with the text."""

import pytest

from iqa_eval.prompts import get_template, render
from iqa_eval.prompts import templates as tpl
from iqa_eval.types import PROTOCOLS, SETTINGS, STRATEGIES

ALL = [(s, p, k) for s in SETTINGS for p in PROTOCOLS for k in STRATEGIES]


def test_eighteen_distinct_templates():
    texts = {get_template(*key).text for key in ALL}
    hashes = {get_template(*key).hash for key in ALL}
    assert len(texts) == len(hashes) == 18


@pytest.mark.parametrize("key", ALL, ids=["-".join(k) for k in ALL])
def test_structure_of_every_template(key):
    setting, protocol, strategy = key
    text = get_template(*key).text
    assert "Score:" in text
    assert "instead of declining" in text.splitlines()[-1]
    assert "noise" in text and "sharpness" in text and "colour" in text
    assert ("Description:" in text) == (strategy == "cot")
    assert ("worked example" in text) == (strategy == "icl")
    assert ("reference" in text) == (setting == "fr")
    if protocol == "ds":
        assert "1 if" in text and "0 if" in text and "2 if" in text
    if protocol == "ms":
        assert "0 (worst)" in text or "0 (furthest" in text


def test_ss_icl_label_is_rendered_and_required():
    template = get_template("nr", "ss", "icl")
    assert "score is 37." in render(template, "37")
    with pytest.raises(ValueError, match="needs demo label"):
        render(template)
    with pytest.raises(ValueError, match="takes no demo label"):
        render(get_template("nr", "ss", "standard"), "50")


def test_hash_changes_with_version(monkeypatch):
    before = get_template("fr", "ss", "standard").hash
    monkeypatch.setattr(tpl, "TEMPLATE_VERSION", tpl.TEMPLATE_VERSION + 1)
    after = tpl.Template("fr", "ss", "standard", get_template("fr", "ss", "standard").text).hash
    assert before != after


def test_unknown_system_is_refused():
    with pytest.raises(ValueError, match="no prompting system"):
        get_template("fr", "xs", "standard")
