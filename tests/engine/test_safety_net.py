import re

import pytest
import yaml

from components.lexicon import LEXICON_DIR
from components.safety_net import assess


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("อยากตายยยย", "self_harm"),
        ("ถ้าคลิปหลุดจะฆ่าตัวตาย", "self_harm"),
        ("if it gets out ill kill myself", "self_harm"),
        ("i dont want to live anymore", "self_harm"),
        ("เขามายืนอยู่หน้าห้องหนู", "immediate_danger"),
        ("he is outside my door", "immediate_danger"),
        ("im locked in his room", "immediate_danger"),
        ("โดนขังอยู่ในห้องพัก", "immediate_danger"),
    ],
)
def test_urgent_messages_are_caught_whatever_the_classifier_says(text, kind):
    decision = assess(text, "out_of_scope")
    assert decision["urgent"] and decision["kind"] == kind


@pytest.mark.parametrize(
    "text",
    [
        "ขำจนจะตาย",
        "ลบรูปออกไม่ได้",
        "someone broke into my instagram account",
        "i was dying of laughter",
        "he keeps following me on tiktok",
        "แม่ไม่ให้ออกไปเที่ยว",
    ],
)
def test_lookalikes_are_not_urgent(text):
    assert not assess(text, "other_harm")["urgent"]


def test_topic_of_a_disclosure_is_kept_when_it_becomes_urgent():
    decision = assess("he will send the video to everyone and i want to die", "sextortion")
    assert decision == {
        "urgent": True,
        "kind": "self_harm",
        "topic": "sextortion",
        "matched": "want to die",
    }


def test_classifier_alone_can_mark_urgent():
    decision = assess("some words", "immediate_danger")
    assert decision["urgent"] and decision["kind"] == "immediate_danger"


def test_every_lexicon_pattern_compiles():
    for path in LEXICON_DIR.glob("*.yml"):
        for _label, spec in yaml.safe_load(path.read_text()).items():
            for key in ("th", "en", "exclude"):
                for pattern in spec.get(key) or []:
                    re.compile(pattern)
