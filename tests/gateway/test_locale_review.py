"""The native-speaker review of locales/ (issue 14, "The words"), kept true by tests: what must be
said, in which order, and what must never be said again. Runs on the real locale files; the last
test drives the real handoff service on a migrated SQLite database."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid

import pytest

from bot.config import Settings
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.service import Handoff
from bot.locales import Locales
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker
from tests.gateway.conftest import migrate

VALUES = {
    "summary": "• Age: 13–15",
    "days": 30,
    "position": 2,
    "minutes": 10,
    "hours": "08:00-22:00",
    "name": "Fon",
}
READERS = [{}, {"age_band": "under_13"}, {"role": "caregiver"}, {"role": "friend"}]
LANGUAGES = ("en", "th")


def texts(locales: Locales, name: str, language: str) -> list[str]:
    """Every variant of a response, with its runtime values filled in."""
    filled = re.compile(r"\{([a-z_]+)\}")
    return [
        filled.sub(lambda m: str(VALUES.get(m.group(1), m.group(0))), variant.text)
        for variant in locales.responses[language][name]
    ]


def child_facing(locales: Locales, language: str) -> list[tuple[str, str]]:
    """(name, text) of everything a child, friend or parent may read: all but the console's."""
    return [
        (name, text)
        for name in locales.responses[language]
        if not name.startswith(("console_", "wrapup_"))
        for text in texts(locales, name, language)
    ]


# ---------------------------------------------------------------------------- urgent order


@pytest.mark.parametrize("language", LANGUAGES)
def test_after_self_harm_the_handoff_leads_with_1669_and_a_line_to_talk_not_191(locales, language):
    for text in texts(locales, "utter_handoff_urgent_self_harm", language):
        first = text.split("\n")[0]
        assert "1669" in first and ("1323" in first or "1387" in first), first
        assert first.index("1669") < min(first.find(n) for n in ("1323", "1387") if n in first)
        assert "191" not in text, text
    for text in texts(locales, "utter_handoff_urgent", language):
        assert "191" in text.split("\n")[0]  # danger from someone: police first


@pytest.mark.parametrize("language", LANGUAGES)
def test_asked_to_phone_the_police_it_says_at_once_it_cannot_and_gives_191(locales, language):
    [text] = [locales.render("utter_urgent_cannot_call", language, {}).text]
    first = text.split("\n")[0]
    assert "191" in first, first
    assert any(word in first for word in ("can't", "ไม่ได้")), first


# ---------------------------------------------------------------------------- no false promises


def test_no_promise_the_services_do_not_make(locales):
    en = dict(child_facing(locales, "en"))
    assert "choose what to do next" not in " ".join(texts(locales, "utter_what_happens", "en"))
    thai = " ".join(text for _, text in child_facing(locales, "th"))
    assert "จะเก็บหลักฐาน" not in thai and "จะช่วยเก็บ" not in thai
    police = locales.routes["police"]
    assert "send police" not in police["en"]["next"] and "ส่งตำรวจ" not in police["th"]["next"]
    # A person, honestly: only when counsellors are online.
    assert "when counsellors are online" in en["utter_greet"].lower()
    assert "ถ้าตอนนั้นมีพี่ผู้ให้คำปรึกษาออนไลน์" in dict(child_facing(locales, "th"))["utter_greet"]


TAKE_IT_DOWN_LIMITS = {
    "en": (re.compile(r"\btakes? part\b"), re.compile(r"never (?:leaves|uploaded)")),
    "th": (re.compile(r"แอปที่เข้าร่วม"), re.compile(r"ไม่ถูก(?:ส่งออก|อัปโหลด)")),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_take_it_down_is_always_named_with_its_limits(locales, language):
    named = [(n, t) for n, t in child_facing(locales, language) if "Take It Down" in t]
    assert len(named) >= 8
    for name, text in named:
        for limit in TAKE_IT_DOWN_LIMITS[language]:
            assert limit.search(text), (name, text)


# ---------------------------------------------------------------------------- one counsellor


def test_one_thai_word_for_the_counsellor_that_is_not_the_police(locales):
    said = child_facing(locales, "th")
    assert [name for name, text in said if "เจ้าหน้าที่" in text] == []
    bare = re.compile(r"(?<!พี่)ผู้ให้คำปรึกษา")
    assert [name for name, text in said if bare.search(text)] == []
    assert sum("พี่ผู้ให้คำปรึกษา" in text for _, text in said) >= 20
    for variants in locales.responses["th"].values():
        for variant in variants:
            for button in variant.buttons:
                if button.payload == "/talk_to_human":
                    assert button.title == "คุยกับคนจริง ๆ"
    for name in ("ui_menu_person", "ui_command_human"):
        assert locales.text(name, "th") == "คุยกับคนจริง ๆ"


# ---------------------------------------------------------------------------- single sentences


def test_a_picture_sent_here_was_not_opened_or_kept_and_nothing_was_done_wrong(locales):
    [en] = texts(locales, "utter_received_media", "en")
    assert "didn't open" in en and "not kept" in en and "did nothing wrong" in en
    [th] = texts(locales, "utter_received_media", "th")
    first = th.split("\n")[0]
    assert "ไม่ได้เปิดดู" in first and "ไม่ได้เก็บ" in first and "ไม่ได้ทำอะไรผิด" in first


def test_an_under_13_hurt_by_someone_hears_not_to_tell_them_and_about_1300(locales):
    under_13 = {"age_band": "under_13"}
    for name in ("utter_other_harm_steps", "utter_other_harm_routes"):
        en = locales.render(name, "en", under_13).text
        th = locales.render(name, "th", under_13).text
        assert "Not the person who hurts you" in en and "1300" in en, en
        assert "ไม่ใช่คนที่ทำร้ายน้อง" in th and "1300" in th, th


@pytest.mark.parametrize("reader", [{}, {"age_band": "under_13"}])
def test_when_the_person_hurting_is_at_home_1300_works_without_a_parent(locales, reader):
    for name in ("utter_police", "utter_route_ticac"):
        en = locales.render(name, "en", reader).text
        th = locales.render(name, "th", reader).text
        assert re.search(r"1300.*without a parent|1300.*don't need a parent", en), en
        assert re.search(r"1300.*ไม่ต้องมีผู้ปกครอง", th), th


def test_boys_and_girls_in_every_image_and_grooming_opening(locales):
    for topic in ("sextortion", "image_shared", "grooming"):
        assert "boys and girls" in locales.render(f"utter_{topic}_first", "en", {}).text
        assert "ผู้ชายและผู้หญิง" in locales.render(f"utter_{topic}_first", "th", {}).text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("role", ["caregiver", "friend"])
def test_caregiver_and_friend_routes_say_what_happens_after_ticac_and_1387(locales, language, role):
    ticac, saidek = locales.routes["ticac"], locales.routes["saidek_1387"]
    names = [n for n in locales.responses[language] if re.fullmatch(r"utter_\w+_routes", n)]
    assert len(names) == 5
    for name in names:
        text = locales.render(name, language, {"role": role}).text
        if ticac["page"] in text:
            assert ticac[language]["next"] in text, (name, text)
        if "1387" in text:
            assert saidek[language]["next"] in text, (name, text)


# ---------------------------------------------------------------------------- plain language


def test_english_reads_in_whole_sentences(locales):
    said = child_facing(locales, "en")
    fragments = [(n, m.group()) for n, t in said for m in re.finditer(r"[.!?] [a-z]\w*", t)]
    assert fragments == []
    everything = "\n".join(text for _, text in said)
    broken = ("free, No name", "anything. free", "Pages saying they are", "Not even nice ones")
    assert [fragment for fragment in broken if fragment in everything] == []
    assert not re.search(r"\bcarers?\b", everything)


def test_thai_in_plain_words_a_13_year_old_uses(locales):
    said = child_facing(locales, "th") + [
        (route, text) for route, facts in locales.routes.items() for text in facts["th"].values()
    ]
    for word in ("การแสวงประโยชน์", "แสวงประโยชน์", "ผู้เสียหาย", "เรื่องชื่อ:"):
        assert [name for name, text in said if word in text] == [], word


def test_a_parent_is_never_called_nong(locales):
    for name in locales.responses["th"]:
        if name.startswith("utter_"):
            for reader in ({"role": "caregiver"}, {"role": "caregiver", "age_band": "adult"}):
                text = locales.render(name, "th", reader).text
                assert "น้อง" not in text, (name, text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_reply_fits_one_bubble(locales, language):
    for name, text in child_facing(locales, language):
        assert len(text) <= 600, (name, len(text))


# ---------------------------------------------------------------------------- the handoff


@pytest.fixture
def handoff_with(tmp_path, locales):
    """A real Handoff over a fresh migrated database, with settings overridden."""
    url = f"sqlite:///{tmp_path / 'review.db'}"
    migrate(url)
    loop = asyncio.new_event_loop()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)

    async def conversation() -> int:
        async with sessions() as session:
            found = await get_or_create(session, uuid.uuid4().hex, "webchat")
            await session.commit()
            return found.id

    def build(**overrides) -> tuple[Handoff, int]:
        settings = dataclasses.replace(Settings.from_env(), **overrides)
        handoff = Handoff(sessions, locales, settings, Relay(sessions, {}), Events())
        return handoff, loop.run_until_complete(conversation())

    yield build, loop.run_until_complete
    loop.run_until_complete(engine.dispose())
    loop.close()


def test_before_agreeing_the_child_reads_who_sees_the_chat_and_for_how_long(handoff_with):
    build, run = handoff_with
    handoff, conversation_id = build(retention_days=7)
    summary = {"language": "en", "role": "child", "topics": ["sextortion"], "urgent": False}
    [shown] = run(handoff.request(conversation_id, summary, "en"))
    assert "only the counsellors of this service and their supervisor" in shown.text
    assert "kept for 7 days, then deleted" in shown.text
    assert {b.payload for b in shown.buttons} == {"/handoff_agree", "/handoff_cancel"}

    handoff, conversation_id = build(retention_days=12)
    urgent = {"language": "th", "topics": ["self_harm"], "urgent": True, "urgent_kind": "self_harm"}
    first, _notice = run(handoff.request(conversation_id, urgent, "th"))
    assert first.text.split("\n")[0].startswith("ถ้าบาดเจ็บ โทร 1669")
    assert "เก็บไว้ 12 วัน" in first.text and "191" not in first.text

    handoff, conversation_id = build()
    danger = {"language": "en", "topics": ["immediate_danger"], "urgent": True}
    first, _notice = run(handoff.request(conversation_id, danger, "en"))
    assert first.text.startswith("If you are in danger right now, call 191.")
