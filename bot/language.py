"""Which language a piece of text is written in, for replies before Rasa has said."""

from __future__ import annotations

import re

_THAI = re.compile(r"[\u0E01-\u0E5B]")
_LATIN = re.compile(r"[A-Za-z]")


def detect(text: str) -> str | None:
    """Thai script wins (children mix English words into Thai); None when there are no letters."""
    if _THAI.search(text):
        return "th"
    if _LATIN.search(text):
        return "en"
    return None
