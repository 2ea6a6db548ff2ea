"""The normaliser folds how children type onto plain words, and never turns words into noise."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pythainlp.util import eng_to_thai, thai_to_eng
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.normaliser import RAW_TEXT, TextNormaliser, normalise, vocabulary

ROOT = Path(__file__).resolve().parents[2]


def _training_texts() -> list[str]:
    texts = []
    for name in ("en.yml", "th.yml"):
        for block in yaml.safe_load((ROOT / "data" / "nlu" / name).read_text())["nlu"]:
            lines = (block.get("examples") or "").splitlines()
            texts += [line[2:] for line in lines if line.startswith("- ")]
    return texts


ENGLISH = vocabulary(_training_texts())


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        # elongations, Thai and English
        ("มากกกกก", "มาก"),
        ("ช่วยด้วยยยยย", "ช่วยด้วย"),
        ("หวัดดีค่าาาาา", "หวัดดีค่า"),
        ("pleaseee", "please"),
        ("helllppp", "help"),
        ("killll myself", "kill myself"),
        # zero-width and repeated characters
        ("ช่วย\u200bด้วย", "ช่วยด้วย"),
        ("he\u200dlp\ufeff me", "help me"),
        ("help!!!!!!", "help!"),
        ("why???", "why?"),
        # teen shorthand
        ("help me rn", "help me right now"),
        ("idk what to do", "i don't know what to do"),
        ("can u help", "can you help"),
        ("pls", "please"),
        ("me n my friend", "me and my friend"),
        # emoji set apart from words, a run counted once
        ("help😭😭😭", "help 😭"),
        ("โดนขู่🙏", "โดนขู่ 🙏"),
    ],
)
def test_messy_forms_fold_to_plain_words(typed: str, expected: str) -> None:
    assert normalise(typed, ENGLISH) == expected


@pytest.mark.parametrize(
    "thai",
    ["สวัสดีครับ", "อยากตาย", "โดนขู่ให้โอนเงินไม่งั้นจะปล่อยคลิป", "ขอคุยกับคนจริงๆ", "อยากหายไป"],
)
def test_thai_typed_on_the_english_layout_is_read_as_thai(thai: str) -> None:
    typed = thai_to_eng(thai)
    assert typed.isascii()
    assert normalise(typed, ENGLISH) == thai


@pytest.mark.parametrize(
    "english", ["help me", "he is coming to my house", "i want to die", "where can i report"]
)
def test_english_typed_on_the_thai_layout_is_read_as_english(english: str) -> None:
    typed = eng_to_thai(english)
    assert not typed.isascii()
    assert normalise(typed, ENGLISH) == english


@pytest.mark.parametrize(
    "text",
    [
        "โดน blackmail อ่ะ",
        "mee kon khu ja ploi clip",
        "chuay duay",
        "sextortion",
        "the counsellors' notes are private",
        "my psych teacher said so",
        "xylophone quizzical grandma",
        "55555",
        "/talk_to_human",
        '/choose_language{"language": "en"}',
        "ขำจนจะตาย",
    ],
)
def test_words_are_never_turned_into_another_layout(text: str) -> None:
    assert normalise(text, ENGLISH) == text


def test_training_sentences_stay_in_their_script() -> None:
    """No sentence the model learns from is re-read on the other keyboard layout."""
    for text in _training_texts():
        folded = normalise(text, ENGLISH)
        assert any("\u0e00" <= c <= "\u0e7f" for c in folded) == any(
            "\u0e00" <= c <= "\u0e7f" for c in text
        ), text


def _context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test")


def test_the_component_learns_its_words_and_keeps_what_was_typed(tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("normaliser")
    trained = TextNormaliser.create({}, storage, resource, _context())
    trained.train(TrainingData([Message(data={TEXT: "i will kill the boss", "intent": "x"})]))

    loaded = TextNormaliser.load({}, storage, resource, _context())
    message = Message(data={TEXT: "killll me pleaseee"})
    loaded.process([message])
    assert message.get(TEXT) == "kill me please"
    assert message.get(RAW_TEXT) == "killll me pleaseee"


def test_training_examples_are_folded_like_messages(tmp_path: Path) -> None:
    component = TextNormaliser.create({}, LocalModelStorage(tmp_path), Resource("n"), _context())
    data = TrainingData([Message(data={TEXT: "ช่วยด้วยยยย", "intent": "immediate_danger"})])
    component.process_training_data(data)
    assert data.training_examples[0].get(TEXT) == "ช่วยด้วย"
