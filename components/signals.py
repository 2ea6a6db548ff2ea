"""Extracts who is writing, in which language, their age band and any route named, as entities.

These are facts a word list or a pattern states better than a trained model: Thai script means a
Thai reply; "my daughter" means a caregiver; "ม.2" means 13–15. The entities fill Rasa slots.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Dict, FrozenSet, List

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from components import lexicon

_THAI = re.compile(r"[\u0E01-\u0E5B]")
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")
_EXPLICIT_LANGUAGE_MAX_CHARS = 60

_AGE_PATTERNS = (
    re.compile(r"(?:อายุ|อายุได้)\s*(\d{1,2})"),
    re.compile(r"(\d{1,2})\s*(?:ขวบ|ปี(?!ที่))"),
    re.compile(r"\b(?:i'?m|i am|im|age|aged)\s*(\d{1,2})\b", re.IGNORECASE),
    re.compile(r"\b(\d{1,2})\s*(?:yo|y/o|yrs?|years?)\b", re.IGNORECASE),
    re.compile(r"^\s*(\d{1,2})\s*$"),
)
_PRIMARY = re.compile(r"(?:ป\.?\s*|ประถม\s*|\bp\.?\s*)([1-6])\b|ประถม", re.IGNORECASE)
_SECONDARY = re.compile(r"(?:ม\.\s*|มอ\s*|\bm\.?\s*)([1-6])\b", re.IGNORECASE)
_GRADE = re.compile(r"\b(?:grade|year)\s*(\d{1,2})\b", re.IGNORECASE)


def band_of_age(age: int) -> str | None:
    if age < 5 or age > 99:
        return None
    if age < 13:
        return "under_13"
    if age < 16:
        return "13_15"
    if age < 18:
        return "16_17"
    return "adult"


def age_band(text: str) -> str | None:
    for pattern in _AGE_PATTERNS:
        found = pattern.search(text)
        if found:
            return band_of_age(int(found.group(1)))
    found = _SECONDARY.search(text)
    if found:
        year = int(found.group(1))
        return "under_13" if year == 1 else "13_15" if year <= 4 else "16_17"
    if _PRIMARY.search(text):
        return "under_13"
    found = _GRADE.search(text)
    if found:
        grade = int(found.group(1))
        return "under_13" if grade <= 7 else "13_15" if grade <= 10 else "16_17"
    return None


@cache
def _karaoke_words() -> FrozenSet[str]:
    data = yaml.safe_load((lexicon.LEXICON_DIR / "karaoke.yml").read_text(encoding="utf-8"))
    return frozenset(data["th"]["words"])


def is_karaoke(text: str) -> bool:
    """Thai in Latin letters ("chuay duay", "mee kon khu ja ploi clip")."""
    words = _WORD.findall(text.lower())
    hits = sum(w in _karaoke_words() for w in words)
    return hits >= 2 and hits * 2 >= len(words)


def language(text: str) -> str | None:
    """An explicit request ("english please", "ขอภาษาไทย") wins over the script it is typed in;
    Thai typed in Latin letters is Thai."""
    if len(text) <= _EXPLICIT_LANGUAGE_MAX_CHARS:
        for label, matcher in lexicon.load("language").items():
            if matcher.search(text):
                return label
    if _THAI.search(text):
        return "th"
    if _LATIN.search(text):
        return "th" if is_karaoke(text) else "en"
    return None


def role(text: str) -> str | None:
    for label, matcher in lexicon.load("roles").items():
        if matcher.search(text):
            return label
    return None


def routes(text: str) -> List[str]:
    return [label for label, matcher in lexicon.load("routes").items() if matcher.search(text)]


def signals(text: str) -> Dict[str, Any]:
    """entity name → value (or list of values for routes) found in the text."""
    found: Dict[str, Any] = {"language": language(text), "role": role(text)}
    if found["role"] is None:
        found["age_band"] = age_band(text)
    found["route"] = routes(text)
    return {name: value for name, value in found.items() if value}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class MessageSignals(GraphComponent):
    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MessageSignals:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            entities = list(message.get(ENTITIES) or [])
            for name, value in signals(text).items():
                for one in value if isinstance(value, list) else [value]:
                    entities.append(
                        {
                            "entity": name,
                            "value": one,
                            "start": 0,
                            "end": len(text),
                            "confidence_entity": 1.0,
                            "extractor": self.__class__.__name__,
                        }
                    )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
