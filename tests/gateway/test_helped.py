""" "Did this help?": asked once after a counsellor closes a chat, never after any other ending or
after the child erased their data; the answer is kept without text and counted in insights."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.console.auth import create_counsellor
from bot.console.insights import Insights, Range
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.service import Handoff, NotAllowed
from bot.message import Incoming
from bot.rasa_client import RasaClient
from bot.router import Router
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker
from bot.store.handoff_models import Case
from bot.store.models import Conversation, utcnow
from bot.store.steps import Steps
from tests.gateway.conftest import migrate, told

SUMMARY = {"language": "th", "role": "child", "topics": ["sextortion"], "urgent": True}
CATEGORY = ["violence.online_sexual_exploitation"]


@pytest.fixture
def world(tmp_path, locales) -> Iterator:
    url = f"sqlite:///{tmp_path / 'helped.db'}"
    migrate(url)
    loop = asyncio.new_event_loop()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    settings = Settings.from_env()
    handoff = Handoff(sessions, locales, settings, Relay(sessions, {}), Events())
    # Rasa is never reached here: the answer to "did this help?" is the handoff's.
    rasa = RasaClient(("http://127.0.0.1:9",), 1.0)
    steps = Steps(engine)
    router = Router(sessions, steps, rasa, locales, handoff, "th")
    yield loop.run_until_complete, handoff, router, sessions
    steps.close()
    loop.run_until_complete(engine.dispose())
    loop.close()


async def claimed(handoff: Handoff, sessions) -> tuple[str, int, int, object]:
    """(user key, conversation id, case id, counsellor) of an urgent chat a counsellor took."""
    key = uuid.uuid4().hex
    async with sessions() as session:
        conversation = await get_or_create(session, key, "webchat")
        counsellor = await create_counsellor(
            session, uuid.uuid4().hex[:8], "พี่ฝน", "a long enough password", "counsellor"
        )
        counsellor.last_seen_at = utcnow()
        await session.commit()
    await handoff.request(conversation.id, SUMMARY, "th")
    async with sessions() as session:
        case = await session.scalar(select(Case).where(Case.conversation_id == conversation.id))
    assert await handoff.claim(case.id, counsellor)
    return key, conversation.id, case.id, counsellor


async def answer(sessions, case_id: int) -> tuple[bool, bool | None]:
    async with sessions() as session:
        case = await session.get(Case, case_id)
        return case.helped_asked, case.helped


def press(run, router: Router, key: str, payload: str) -> list[str]:
    reply = run(router.handle(Incoming("webchat", key, payload, pressed=True)))
    return [m.text for m in reply.messages]


def test_asked_once_after_a_counsellor_closes_and_the_first_answer_kept(world, locales):
    run, handoff, router, sessions = world
    key, conversation_id, case_id, counsellor = run(claimed(handoff, sessions))
    run(handoff.close(case_id, counsellor, CATEGORY))
    said = run(told(sessions, conversation_id))
    assert said[-2:] == [
        locales.text("utter_handoff_ended", "th"),
        locales.text("utter_handoff_helped", "th"),
    ]
    assert said.count(locales.text("utter_handoff_helped", "th")) == 1
    assert run(answer(sessions, case_id)) == (True, None)
    thanks = [locales.text("utter_handoff_helped_thanks", "th")]
    assert press(run, router, key, "/handoff_helped_yes") == thanks
    assert press(run, router, key, "/handoff_helped_no") == thanks  # the first answer stays
    assert run(answer(sessions, case_id)) == (True, True)

    async def counted() -> dict:
        async with sessions() as session:
            today = utcnow().date()
            span = Range(today - timedelta(days=1), today + timedelta(days=1))
            return (await Insights(session, span, "").compute())["helped"]

    assert run(counted()) == {"yes": "<5", "no": 0}


def test_not_asked_when_the_child_ended_it_and_a_late_press_keeps_nothing(world, locales):
    run, handoff, router, sessions = world
    key, conversation_id, case_id, _ = run(claimed(handoff, sessions))

    async def cancel() -> None:
        async with sessions() as session:
            case = await session.get(Case, case_id)
            case.state = "queued"  # a child can cancel while waiting
            await session.commit()
        await handoff.from_child(conversation_id, "/handoff_cancel", "text", "th")

    run(cancel())
    assert locales.text("utter_handoff_helped", "th") not in run(told(sessions, conversation_id))
    press(run, router, key, "/handoff_helped_no")
    assert run(answer(sessions, case_id)) == (False, None)


def test_not_asked_after_the_child_erased_their_data(world, locales):
    run, handoff, router, sessions = world
    key, conversation_id, case_id, counsellor = run(claimed(handoff, sessions))
    erased = press(run, router, key, "/forget_confirmed")
    assert erased
    with pytest.raises(NotAllowed):
        run(handoff.close(case_id, counsellor, CATEGORY))

    async def gone() -> tuple:
        async with sessions() as session:
            return await session.get(Case, case_id), await session.get(
                Conversation, conversation_id
            )

    assert run(gone()) == (None, None)
