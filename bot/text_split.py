"""Cutting text to a platform's limits without breaking a Thai character.

Thai vowels and tone marks are combining characters: cutting between a consonant and its mark
shows the child a broken glyph. Cuts therefore fall only before a base character, preferably at a
line break or a space.
"""

from __future__ import annotations

import unicodedata

_LEADING_VOWELS = "\u0e40\u0e41\u0e42\u0e43\u0e44"  # เ แ โ ใ ไ: written before their consonant
_SARA_AM = "\u0e33"  # ำ: a spacing vowel that still belongs to the consonant before it


def _breaks_a_character(text: str, cut: int) -> bool:
    return (
        unicodedata.category(text[cut]) in ("Mn", "Mc", "Me")
        or text[cut] == _SARA_AM
        or (text[cut - 1] in _LEADING_VOWELS)
    )


def _safe_cut(text: str, limit: int) -> int:
    """The largest index ≤ limit that does not split a Thai syllable's character cluster."""
    cut = min(limit, len(text))
    while 0 < cut < len(text) and _breaks_a_character(text, cut):
        cut -= 1
    return cut or min(limit, len(text))


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    if len(text) <= limit:
        return text
    return text[: _safe_cut(text, limit - len(ellipsis))].rstrip() + ellipsis


def split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break, a space, or any safe point."""
    pieces = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind("\n"), window.rfind(" "))
        if cut <= limit // 2:
            cut = _safe_cut(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def utf16_len(text: str) -> int:
    """Length as LINE and Telegram count it: UTF-16 code units, so an emoji counts twice."""
    return len(text.encode("utf-16-le")) // 2


def fit_utf16(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 units without breaking a Thai character."""
    cut = limit
    fitted = truncate(text, cut)
    while utf16_len(fitted) > limit and cut > 1:
        cut -= 1
        fitted = truncate(text, cut)
    return fitted


def split_utf16(text: str, limit: int) -> list[str]:
    """Pieces within `limit` UTF-16 units, cut at line breaks or spaces first."""
    out = []
    for piece in split(text, limit):
        out.extend([piece] if utf16_len(piece) <= limit else split(piece, limit // 2))
    return out
