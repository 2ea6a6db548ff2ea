"""Which language a reply is written in: one rule for every channel, the router, Rasa's sentences
(bot/nlg.py) and the console's words to a child."""

from __future__ import annotations

import re
from collections.abc import Iterable

_THAI = re.compile(r"[\u0E01-\u0E5B]")
_LATIN = re.compile(r"[A-Za-z]")


def detect(text: str) -> str | None:
    """Thai script wins (children mix English words into Thai); None when there are no letters."""
    if _THAI.search(text):
        return "th"
    if _LATIN.search(text):
        return "en"
    return None


def written(text: str | None) -> str | None:
    """The language of the words being written now; a button payload ("/affirm") says nothing."""
    return None if not text or text.startswith("/") else detect(text)


def base(tag: str | None) -> str | None:
    """A language tag as apps send it ("en-US", "th_TH", "EN") as a language ("en")."""
    language = (tag or "").split("-")[0].split("_")[0].strip().lower()
    return language or None


def reply_language(
    words: str | None,
    stored: str | None,
    app: str | None,
    default: str,
    speaks: Iterable[str],
) -> str:
    """What wins, in this order: the words being written now, the conversation's stored language,
    the app's language (a platform profile, a client's setting), the default. A language we do not
    speak is passed over, so a reply always has sentences."""
    spoken = set(speaks)
    for candidate in (words, stored, base(app)):
        if candidate in spoken:
            return candidate
    return default
