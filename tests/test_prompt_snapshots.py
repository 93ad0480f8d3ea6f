"""Snapshots of every prompting system: the rendered text and the message structure.

A change to a template, to the image order or to the demonstration layout shows up here as a
diff against ``fixtures/prompts/``. After a deliberate change (and a TEMPLATE_VERSION bump),
regenerate with ``IQA_REGEN_PROMPTS=1 pytest tests/test_prompt_snapshots.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from iqa_eval.prompts import supports
from iqa_eval.protocols.base import Demonstration, build_query
from iqa_eval.types import PROTOCOLS, SETTINGS, STRATEGIES, Decoding, Item, Stimulus

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "prompts"
JUDGED = {"ss": 1, "ds": 2, "ms": 4}
SYSTEMS = [(s, p, k) for s in SETTINGS for p in PROTOCOLS for k in STRATEGIES if supports(p, k)]


def _item(name: str, setting: str, group: str) -> Item:
    reference = Stimulus(f"{group}-ref.png", f"{group}-ref", 8, 8) if setting == "fr" else None
    return Item(name, "snap", setting, "structure", Stimulus(f"{name}.png", name, 8, 8), 1.0, True, group,
                reference=reference)  # fmt: skip


def snapshot(setting: str, protocol: str, strategy: str) -> dict[str, object]:
    judged = [_item(f"img{i}", setting, "test") for i in range(1, JUDGED[protocol] + 1)]
    demo_items = tuple(_item(f"demo{i}", setting, "demo") for i in range(1, JUDGED[protocol] + 1))
    demo = Demonstration(demo_items, "37" if protocol == "ss" else None)
    query = build_query(setting, protocol, strategy, judged, demo, Decoding())  # type: ignore[arg-type]
    return {
        "template_id": query.template_id,
        "template_hash": query.template_hash,
        "images": [f"{im.role}:{im.stimulus.sha256}" for im in query.images],
        "text": query.text.split("\n"),
    }


@pytest.mark.parametrize("system", SYSTEMS, ids=["-".join(s) for s in SYSTEMS])
def test_prompt_matches_snapshot(system):
    path = SNAPSHOTS / f"{'-'.join(system)}.json"
    current = snapshot(*system)
    if os.environ.get("IQA_REGEN_PROMPTS") == "1":
        path.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.is_file(), f"no snapshot {path.name}: regenerate with IQA_REGEN_PROMPTS=1"
    assert json.loads(path.read_text(encoding="utf-8")) == current


@pytest.mark.parametrize("system", SYSTEMS, ids=["-".join(s) for s in SYSTEMS])
def test_message_structure_follows_the_study(system):
    setting, protocol, strategy = system
    roles = [entry.split(":")[0] for entry in snapshot(*system)["images"]]
    n = JUDGED[protocol]
    query_part = (["reference"] if setting == "fr" else []) + ["image"] * n
    demo_part = (["demo_reference"] if setting == "fr" else []) + ["demo"] * n if strategy == "icl" else []
    assert roles == demo_part + query_part
