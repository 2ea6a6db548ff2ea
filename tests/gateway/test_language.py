"""The one rule for a reply's language (bot/language.py): the words, the stored conversation, the
app's language, the default; and Rasa's sentences (the /nlg endpoint) follow it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, insert, select
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from bot.config import Settings
from bot.language import base, reply_language, written
from bot.nlg import KNOWN, nlg_endpoint
from bot.store.db import make_engine, make_sessionmaker
from bot.store.models import Conversation
from bot.store.steps import Steps
from tests.gateway.conftest import migrate

SPEAKS = ("en", "th")


@pytest.mark.parametrize(
    "words, stored, app, expected",
    [
        ("th", "en", "en-US", "th"),  # the words being written now win
        (None, "en", "th-TH", "en"),  # then the conversation's stored language
        (None, None, "en-US", "en"),  # then the app's, a tag as apps send it
        (None, None, "EN_gb", "en"),
        (None, None, None, "th"),  # then the default
        ("fr", "de", "ja-JP", "th"),  # a language we do not speak is passed over
        (None, "fr", "en", "en"),
        ("", "", "", "th"),
    ],
)
def test_what_wins(words, stored, app, expected):
    assert reply_language(words, stored, app, "th", SPEAKS) == expected


def test_the_words_are_their_script_and_a_button_says_nothing():
    assert written("โดน blackmail อ่ะ") == "th"  # Thai script wins over mixed-in English
    assert written("pls help") == "en"
    assert written('/choose_language{"language":"en"}') is None
    assert written("🙏 555") is None and written(None) is None and written("") is None
    assert base("th-TH") == "th" and base(None) is None


@pytest.fixture
def nlg(tmp_path, locales):
    """The real /nlg endpoint on a migrated database, without the rest of the gateway."""
    url = f"sqlite:///{tmp_path / 'nlg.db'}"
    migrate(url)
    settings = dataclasses.replace(Settings.from_env(), nlg_token="t", default_language="th")
    app = Starlette(routes=[Route("/nlg", nlg_endpoint, methods=["POST"])])
    engine = make_engine(url)
    app.state.settings, app.state.locales = settings, locales
    app.state.sessions = make_sessionmaker(engine)
    app.state.steps = Steps(engine)
    rows = create_engine(url)

    def start(language: str) -> None:
        """The gateway's row for the sender, in `language`."""
        with rows.begin() as connection:
            connection.execute(
                insert(Conversation).values(
                    user_key="u1", channel="webchat", mode="bot", language=language
                )
            )

    def stored() -> str | None:
        with rows.connect() as connection:
            return connection.scalar(
                select(Conversation.language).where(Conversation.user_key == "u1")
            )

    with TestClient(app) as client:

        def say(latest: dict, slots: dict) -> str:
            tracker = {"sender_id": "u1", "latest_message": latest, "slots": slots}
            body = {"response": "utter_thanks", "tracker": tracker}
            response = client.post("/nlg", params={"token": "t"}, json=body)
            assert response.status_code == 200, response.text
            return response.json()["text"]

        yield SimpleNamespace(
            say=say,
            thanks=lambda lang: locales.text("utter_thanks", lang),
            start=start,
            stored=stored,
        )
    app.state.steps.close()
    rows.dispose()


def test_rasa_sentences_follow_the_rule(nlg):
    # The words now beat what the conversation stored.
    assert nlg.say({"text": "ขอบคุณค่ะ"}, {"language": "en"}) == nlg.thanks("th")
    # As the NLU read them: an explicit request beats the script it is typed in.
    asked = {"text": "ขอคุยภาษาอังกฤษ", "entities": [{"entity": "language", "value": "en"}]}
    assert nlg.say(asked, {"language": "th"}) == nlg.thanks("en")
    # A button press says nothing: the stored conversation decides (Rasa's slot, then ours).
    assert nlg.say({"text": "/affirm"}, {"language": "en"}) == nlg.thanks("en")
    assert nlg.say({"text": "/affirm"}, {}) == nlg.thanks("th")  # nothing known: the default
    assert nlg.say({"text": "👍"}, {"language": "th"}) == nlg.thanks("th")


def test_the_language_sent_with_the_words_spares_a_read_and_a_change_is_kept(nlg):
    """The gateway sends the conversation's language with the words (bot/router.py), so a
    sentence needs no read of its row; a message that did not come through the gateway has the
    row read. Either way a new language is kept for the fallbacks."""
    nlg.start("en")
    assert nlg.say({"text": "/affirm"}, {}) == nlg.thanks("en")  # read from the row
    told = {"text": "/affirm", "metadata": {KNOWN: "th"}}
    assert nlg.say(told, {}) == nlg.thanks("th")  # what came with the words, not the row
    assert nlg.stored() == "en"  # nothing changed for the sentence: nothing written
    changed = {"text": "ขอบคุณค่ะ", "metadata": {KNOWN: "en"}}
    assert nlg.say(changed, {}) == nlg.thanks("th")
    assert nlg.stored() == "th"
