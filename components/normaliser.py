"""Folds the ways children type onto the words the model learnt, before the tokenizer runs.

"ช่วยด้วยยยย", "pleaseee", "help me rn", zero-width characters, a message typed with the wrong
keyboard layout ("l;ylfu" for "สวัสดี", "้ำสย" for "help") and emoji glued to words all reach
the model, the signals and the safety net as the plain words they stand for. PyThaiNLP's bundled
functions do the Thai work (no corpus is downloaded). The component learns one thing in training:
the English words of the training data, so that "killll" folds to "kill" and not "kil", and so
that a Thai-looking message is only re-read as English when the result is words it knows.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, Dict, FrozenSet, Iterable, List

import yaml
from pythainlp.corpus import thai_words
from pythainlp.tokenize import word_tokenize
from pythainlp.util import (
    eng_to_thai,
    normalize,
    remove_trailing_repeat_consonants,
    thai_to_eng,
)
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.lexicon import LEXICON_DIR

# The text as the user typed it, kept on the message for the safety net's second look.
RAW_TEXT = "raw_text"
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_THAI = re.compile(r"[\u0E00-\u0E7F]")
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
_THAI_REPEATS = re.compile(r"([\u0E00-\u0E7F])\1{2,}")
_LATIN_WORD = re.compile(r"[a-z']+", re.IGNORECASE)
_LETTER_RUN = re.compile(r"([a-z])\1{2,}", re.IGNORECASE)
_PUNCT_RUN = re.compile(r"([!?.,~])\1+")
# One emoji (a run of the same one counts once), to be set apart from the words around it.
_EMOJI = re.compile(
    r"([\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF])(?:\ufe0f)?(?:\1(?:\ufe0f)?)*"
)
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
# Signs no Thai word starts with (vowel and tone marks, ะ า ำ ๆ): a mistyped layout's tell.
_NO_START = re.compile(r"(?:^|\s)[\u0e30-\u0e3a\u0e45-\u0e4e]")
_LAYOUT_MIN_CHARS = 3
# What Thai typed on the English layout looks like and English hardly does: keys that are Thai
# letters (;=ว ,=ม '=ง [=บ ]=ล -=ข 1-0) inside a word, a capital inside a word (shift: โ=F, ฮ=V),
# or a run of letters with no vowel ("vpkdskpwx" for "อยากหายไป").
_KEY = r"[;\[\]\\/=^,.\-0-9]"
_LAYOUT_TELL = re.compile(
    rf"[a-zA-Z]{_KEY}|{_KEY}[a-zA-Z]|[a-z][A-Z]"
    r"|(?:[a-rt-zA-RT-Z]'|[a-zA-Z]'(?=[a-zA-Z]))(?!(?:t|s|m|re|ll|ve|d)\b)"
    r"|\b[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{4,}\b"
)
_THAI_COVERAGE = 0.6
_ENGLISH_COVERAGE = 0.8


@cache
def shorthand() -> Dict[str, str]:
    data = yaml.safe_load((LEXICON_DIR / "shorthand.yml").read_text(encoding="utf-8"))
    return {str(k).lower(): str(v) for k, v in (data.get("en") or {}).items()}


@cache
def _thai_dictionary() -> FrozenSet[str]:
    return frozenset(thai_words())


@cache
def _repeaters_ready() -> bool:
    """PyThaiNLP indexes its dictionary's repeated endings once, not on every message."""
    remove_trailing_repeat_consonants("", has_dictionary_updated=True)
    return True


def _fold_thai(text: str) -> str:
    """'มากกกก' → 'มาก' (the dictionary knows 'อืมมม'); any other run of three → one letter."""
    text = remove_trailing_repeat_consonants(text, has_dictionary_updated=not _repeaters_ready())
    return _THAI_REPEATS.sub(r"\1", text)


def thai_coverage(text: str) -> float:
    """Share of the Thai characters that fall in dictionary words of two or more letters."""
    letters = sum(1 for c in text if _THAI.match(c))
    if not letters:
        return 0.0
    words = word_tokenize(text, engine="newmm", keep_whitespace=False)
    known = sum(len(w) for w in words if len(w) > 1 and w in _thai_dictionary())
    return known / letters


def english_share(text: str, english: FrozenSet[str]) -> float:
    """Share of the Latin letters that fall in known English words of two or more letters."""
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    letters = sum(len(w) for w in words)
    if not letters:
        return 0.0
    known = sum(len(w) for w in words if len(w) > 1 and (w in english or w in shorthand()))
    return known / letters


def fix_layout(text: str, english: FrozenSet[str]) -> str:
    """The whole message re-read on the other keyboard layout, when that makes it words."""
    if len(text.replace(" ", "")) < _LAYOUT_MIN_CHARS:
        return text
    has_thai, has_latin = bool(_THAI.search(text)), bool(_LATIN.search(text))
    if (
        has_latin
        and not has_thai
        and english_share(text, english) < 0.5
        and _LAYOUT_TELL.search(text)
    ):
        thai = _THAI_REPEATS.sub(r"\1", eng_to_thai(text))
        if (
            not _LATIN.search(thai)
            and not _NO_START.search(thai)
            and thai_coverage(thai) >= _THAI_COVERAGE
        ):
            return thai
    if has_thai and not has_latin and english:
        latin = thai_to_eng(text)
        if not _THAI.search(latin) and english_share(latin, english) >= _ENGLISH_COVERAGE:
            return latin
    return text


def _fold_word(word: str, english: FrozenSet[str]) -> str:
    """'helllp' → 'help', 'killll' → 'kill': the fold the vocabulary knows, else one letter."""
    if not _LETTER_RUN.search(word):
        return word
    double = _LETTER_RUN.sub(r"\1\1", word)
    single = _LETTER_RUN.sub(r"\1", word)
    if double.lower() in english and single.lower() not in english:
        return double
    return single


def _expand(word: str) -> str:
    return shorthand().get(word.lower(), word)


def normalise(text: str, english: Iterable[str] = frozenset()) -> str:
    """The message as the model should read it. Button payloads ("/intent") pass untouched."""
    if not text or text.startswith("/"):
        return text
    english = english if isinstance(english, frozenset) else frozenset(english)
    text = _INVISIBLE.sub("", text)
    text = fix_layout(text, english)
    text = normalize(text)
    text = _fold_thai(text)
    text = _PUNCT_RUN.sub(r"\1", text)
    text = _EMOJI.sub(r" \1 ", text)
    text = _LATIN_WORD.sub(lambda m: _fold_word(m.group(), english), text)
    text = " ".join(_expand(w) for w in _SPACES.sub(" ", text).split(" "))
    return text.strip() or text


def vocabulary(texts: Iterable[str]) -> FrozenSet[str]:
    """Lower-cased English words of the training examples, as typed there."""
    return frozenset(w.lower() for t in texts for w in _LATIN_WORD.findall(t))


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class TextNormaliser(GraphComponent):
    """First in the pipeline: rewrites each message's text; the user's own words stay in the
    tracker event (Rasa stores the text it received), only the parse sees the folded form."""

    _FILE = "english.json"

    def __init__(
        self, model_storage: ModelStorage, resource: Resource, english: FrozenSet[str]
    ) -> None:
        self._storage = model_storage
        self._resource = resource
        self._english = english

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextNormaliser:
        return cls(model_storage, resource, frozenset())

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> TextNormaliser:
        try:
            with model_storage.read_from(resource) as directory:
                words = json.loads((directory / cls._FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            words = []
        return cls(model_storage, resource, frozenset(words))

    def train(self, training_data: TrainingData) -> Resource:
        texts = [m.get(TEXT) for m in training_data.training_examples if m.get(TEXT)]
        self._english = vocabulary(texts)
        with self._storage.write_to(self._resource) as directory:
            (directory / self._FILE).write_text(json.dumps(sorted(self._english)), encoding="utf-8")
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str) and text:
                message.set(RAW_TEXT, text)
                message.set(TEXT, normalise(text, self._english))
        return messages
