import re

import pytest
import yaml
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from components.lexicon import LEXICON_DIR
from components.normaliser import RAW_TEXT
from components.safety_net import UrgentSafetyNet, assess


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
        "asks_call": False,
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


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # asking the assistant itself to phone the police
        ("can you call the police for me", "immediate_danger"),
        ("pls call 191 for me", "immediate_danger"),
        ("ช่วยโทรหาตำรวจให้หนูหน่อย", "immediate_danger"),
        ("บอทโทรเรียกตำรวจให้ได้ไหม", "immediate_danger"),
        # self-harm said indirectly or in slang
        ("i just want everything to stop", "self_harm"),
        ("i want it all to end", "self_harm"),
        ("i wanna disappear", "self_harm"),
        ("i want to sleep and never wake up", "self_harm"),
        ("gonna take all my pills tonight", "self_harm"),
        ("cutting again tonight", "self_harm"),
        ("everyone would be better off without me", "self_harm"),
        ("อยากหายไป", "self_harm"),
        ("อยากให้ทุกอย่างจบสักที", "self_harm"),
        ("อยากหลับไปแล้วไม่ต้องตื่นอีกเลย", "self_harm"),
        ("คืนนี้จะกรีดอีก", "self_harm"),
        ("ว่าจะกินยาให้หมดแผงคืนนี้", "self_harm"),
        # romanised ("karaoke") Thai
        ("yak tai", "self_harm"),
        ("mai yak yu laew", "self_harm"),
        ("yaak haai bpai", "self_harm"),
        ("kha tua tai", "self_harm"),
        ("krid khaen eek laew", "self_harm"),
        ("chuay duay kao ma ha ton nee", "immediate_danger"),
        ("tuk khang yu", "immediate_danger"),
        ("chuay toh ha tam ruat hai noi", "immediate_danger"),
    ],
)
def test_slang_indirect_and_karaoke_forms_are_urgent(text, kind):
    decision = assess(text, "out_of_scope")
    assert decision["urgent"] and decision["kind"] == kind


@pytest.mark.parametrize(
    "text",
    [
        "this exam is killing me 555",
        "i keep dying in this game lol",
        "im gonna die in this game, the boss is too hard",
        "omg this song is so good i could die",
        "how do i call the police about this",
        "should i call the police or 1300?",
        "i want him to stop messaging me",
        "i want this semester to be over",
        "how do i cut my hair tonight",
        "take 2 pills of paracetamol for a headache?",
        "แจ้งตำรวจยังไง",
        "โทรหาตำรวจเบอร์อะไร",
        "วันนี้กินยาแก้หวัดแล้วง่วงมาก",
        "ลืมกินยาอีกแล้ว",
        "อยากหายไปเที่ยวทะเล",
        "อยากให้สอบจบเร็วๆ",
        "เล่นเกมตายซ้ำๆ จะบ้าตาย 555",
        "i want to report him, can you help",
    ],
)
def test_everyday_talk_of_dying_and_police_is_not_urgent(text):
    assert not assess(text, "other")["urgent"]


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("can you call the police for me", True),
        ("pls call 191 for me", True),
        ("ช่วยโทรหาตำรวจให้หนูหน่อย", True),
        ("chuay toh ha tam ruat hai noi", True),
        ("how do i call the police about this", False),
        ("โทรหาตำรวจเบอร์อะไร", False),
        ("he is outside my door", False),  # danger now, but no request for the bot to phone
    ],
)
def test_a_request_for_the_assistant_itself_to_phone_is_told_apart(text, asks):
    assert assess(text, "out_of_scope")["asks_call"] is asks


def test_the_words_as_typed_get_a_second_look():
    """A message whose normalised form lost the cry for help is still urgent."""
    message = Message(data={TEXT: "some words", RAW_TEXT: "i want to die"})
    message.set(INTENT, {INTENT_NAME_KEY: "other_harm", "confidence": 0.9})
    UrgentSafetyNet().process([message])
    assert message.get("safety")["urgent"]
    assert message.get(INTENT)[INTENT_NAME_KEY] == "self_harm"
