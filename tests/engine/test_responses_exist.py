"""Every response an action can ask for exists in every language, so Rasa never says nothing."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

import actions.replies
from actions.guidance import GUIDED_TOPICS
from actions.routes import QUESTIONS
from components.topics import URGENT_TOPICS

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "th")


def responses(language: str) -> set[str]:
    data = yaml.safe_load((ROOT / "locales" / f"{language}.yml").read_text(encoding="utf-8"))
    return set(data["responses"])


def route_ids() -> list[str]:
    lexicon = yaml.safe_load((ROOT / "components/lexicon/routes.yml").read_text(encoding="utf-8"))
    return list(lexicon)


def emitted() -> set[str]:
    """Literal names in the actions, and every name their f-strings can form."""
    names = set()
    for path in (ROOT / "actions").glob("*.py"):
        names |= set(re.findall(r'response="(utter_[a-z0-9_]+)"', path.read_text()))
    for _, cls in inspect.getmembers(actions.replies, inspect.isclass):
        if getattr(cls, "response", ""):
            names.add(cls.response)
    names |= {f"utter_{t}_{p}" for t in GUIDED_TOPICS for p in ("first", "steps", "routes")}
    names |= {f"utter_urgent_{kind}" for kind in URGENT_TOPICS}
    names |= {f"utter_route_{route}" for route in route_ids()}
    names |= set(QUESTIONS.values())
    return names


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_response_the_actions_use_exists(language):
    names = emitted()
    assert len(names) > 30  # the enumeration itself found the actions' responses
    assert sorted(names - responses(language)) == []


def test_both_languages_have_the_same_responses():
    assert responses("en") == responses("th")
