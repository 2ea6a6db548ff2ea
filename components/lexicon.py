"""Reviewed word lists (YAML beside this module) compiled into matchers.

Patterns are regular expressions. Thai patterns are matched on the text with all spaces removed
(children may or may not space their words); English ones on the lower-cased text. Elongations
("helppp", "ช่วยด้วยยยย") are folded before matching.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Dict, Iterable, List

import yaml

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_REPEATS = re.compile(r"(.)\1{2,}")


def forms(text: str) -> List[str]:
    """The text as matchers see it: lower-cased, with elongations folded to one and two letters."""
    base = _INVISIBLE.sub("", text).lower()
    return [base, _REPEATS.sub(r"\1", base), _REPEATS.sub(r"\1\1", base)]


class Matcher:
    """Thai and English patterns for one label, minus phrases that only look alike."""

    def __init__(self, th: Iterable[str], en: Iterable[str], exclude: Iterable[str] = ()) -> None:
        self._th = _compile(th)
        self._en = _compile(en)
        self._exclude = _compile(exclude)

    def search(self, text: str) -> str | None:
        """The first matched phrase, or None."""
        for form in forms(text):
            if self._exclude:
                form = self._exclude.sub(" ", form)
            found = (self._th and self._th.search(re.sub(r"\s+", "", form))) or (
                self._en and self._en.search(form)
            )
            if found:
                return found.group()
        return None


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = [p for p in patterns if p]
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


@cache
def load(name: str) -> Dict[str, Matcher]:
    """label → Matcher for `lexicon/<name>.yml` (labels mapping to {th, en, exclude})."""
    data = yaml.safe_load((LEXICON_DIR / f"{name}.yml").read_text(encoding="utf-8"))
    return {
        label: Matcher(spec.get("th") or (), spec.get("en") or (), spec.get("exclude") or ())
        for label, spec in data.items()
    }
