"""Tokenizes Thai with PyThaiNLP and everything else like Rasa's WhitespaceTokenizer.

Children write Thai without spaces and mix in English ("โดน blackmail"), so the text is cut into
Thai-script runs (dictionary segmentation, newmm) and other runs (whitespace rules).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

from pythainlp.tokenize import word_dict_trie, word_tokenize
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

_RUNS = re.compile(r"[\u0E00-\u0E7F]+|[^\u0E00-\u0E7F]+")
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff]")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class ThaiTokenizer(WhitespaceTokenizer):
    def __init__(self, config: Dict[str, Any]) -> None:
        super().__init__(config)
        # PyThaiNLP builds its dictionary (about a second) on first use: at start, not while the
        # first Thai-writing child waits.
        word_dict_trie()

    @staticmethod
    def not_supported_languages() -> None:
        return None

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**WhitespaceTokenizer.get_default_config(), "engine": "newmm"}

    def tokenize(self, message: Message, attribute: str) -> List[Token]:
        text = _INVISIBLE.sub(" ", message.get(attribute) or "")
        tokens: List[Token] = []
        for run in _RUNS.finditer(text):
            chunk = run.group()
            if "\u0e00" <= chunk[0] <= "\u0e7f":
                tokens.extend(self._thai(chunk, run.start()))
            elif chunk.strip():
                tokens.extend(self._other(chunk, run.start(), attribute))
        if not tokens:
            tokens = [Token(text, 0)]
        return self._apply_token_pattern(tokens)

    def _thai(self, chunk: str, offset: int) -> List[Token]:
        tokens, position = [], 0
        for word in word_tokenize(chunk, engine=self._config["engine"], keep_whitespace=False):
            start = chunk.find(word, position)
            position = start + len(word)
            if word.strip():
                tokens.append(Token(word, offset + start))
        return tokens

    def _other(self, chunk: str, offset: int, attribute: str) -> List[Token]:
        part = super().tokenize(Message(data={attribute: chunk}), attribute)
        return [Token(t.text, offset + t.start) for t in part if t.text.strip()]
