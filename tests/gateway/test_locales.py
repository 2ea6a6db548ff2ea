"""Never blame, never ask for images: every sentence in locales/ against the reviewed patterns
(docs/blame_patterns.yml), and every disclosure flow opening with a not-your-fault sentence."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from bot.locales import Locales
from tests.gateway.conftest import ROOT

PATTERNS = yaml.safe_load((ROOT / "docs" / "blame_patterns.yml").read_text(encoding="utf-8"))
NOT_YOUR_FAULT = {
    "en": re.compile(r"\b(?:is|was|'s) not (?:your|your child's|your friend's) fault\b", re.I),
    "th": re.compile(r"ไม่ใช่ความผิดของ"),
}


def patterns(language: str) -> list[re.Pattern]:
    texts = PATTERNS[language] + PATTERNS["image_requests"][language]
    return [re.compile(p, re.IGNORECASE) for p in texts]


def blame_scan(locales: Locales) -> list[tuple[str, str, str]]:
    """(language, response, pattern) of every sentence or button title that matches."""
    compiled = {language: patterns(language) for language in locales.languages}
    return [
        (language, name, p.pattern)
        for language, name, text in locales.sentences()
        for p in compiled[language]
        if p.search(text)
    ]


def test_nothing_we_say_blames_or_asks_for_images(locales):
    assert len(locales.sentences()) > 300  # the scan reads every sentence of both languages
    assert blame_scan(locales) == []


@pytest.mark.parametrize(
    "language, sentence",
    [
        ("en", "Why did you send him that photo?"),
        ("en", "You should have told an adult first."),
        ("en", "Please send me a screenshot so I can check."),
        ("th", "ทำไมถึงส่งรูปให้เขาล่ะคะ"),
        ("th", "ไม่น่าส่งรูปไปเลยนะคะ"),
        ("th", "ส่งรูปมาให้ดูหน่อยค่ะ"),
    ],
)
def test_the_scan_fails_when_a_blaming_sentence_is_added(tmp_path: Path, language, sentence):
    for name in ("en.yml", "th.yml", "routes.yml"):
        shutil.copy(ROOT / "locales" / name, tmp_path / name)
    path = tmp_path / f"{language}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["responses"]["utter_added_by_test"] = [{"text": sentence}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    found = blame_scan(Locales(tmp_path))
    assert found and {(lang, name) for lang, name, _ in found} == {
        (language, "utter_added_by_test")
    }


def test_every_disclosure_flow_opens_with_not_your_fault(locales):
    firsts = [name for name in locales.responses["en"] if name.endswith("_first")]
    assert len(firsts) >= 5
    for language, table in locales.responses.items():
        for name in firsts:
            for variant in table[name]:
                opening = variant.text.split("\n")[0]  # the first thing the user reads
                assert NOT_YOUR_FAULT[language].search(opening), (language, name, opening)


def test_a_sentence_missing_from_a_language_is_logged_and_the_fallback_said(locales, caplog):
    with caplog.at_level("ERROR", logger="bot.locales"):
        said = locales.say("utter_no_such_sentence", "th", {"channel": "line"})
    assert said.text == locales.render("utter_fallback", "th", {}).text
    assert "locales/th.yml has no utter_no_such_sentence" in caplog.text
    assert locales.say("utter_forgotten", "en").text == locales.text("utter_forgotten", "en")


def test_the_console_labels_are_made_once_per_language_and_kind(locales):
    """The console sends its labels with every page (a sign-in flood's too): `texts` builds them
    once, each language and set of prefixes apart."""
    thai = locales.texts("th", ("console_", "label_"))
    assert thai["console_login_failed"] == locales.text("console_login_failed", "th")
    assert thai is locales.texts("th", ("console_", "label_"))
    english = locales.texts("en", ("console_", "label_"))
    assert english["console_login_failed"] != thai["console_login_failed"]
    assert set(locales.texts("th", ("label_",))) < set(thai)
    assert all(name.startswith("label_") for name in locales.texts("en", ("label_",)))
