"""The handoff's honesty and its timers, on a migrated SQLite database and the real locales:
closed hours and an empty console are said as such; an unanswered child is not forgotten."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.console.auth import create_counsellor
from bot.handoff.events import Events
from bot.handoff.queue import BANGKOK
from bot.handoff.relay import Relay
from bot.handoff.service import Handoff
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker
from bot.store.handoff_models import AuditEntry, Case, Counsellor
from bot.store.models import utcnow
from tests.gateway.conftest import migrate, told

SUMMARY = {"language": "th", "role": "child", "topics": ["self_harm"], "urgent": True}


@pytest.fixture
def world(tmp_path, locales):
    """(run, handoff, sessions) over a fresh database; `run` drives coroutines on one loop."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    migrate(url)
    loop = asyncio.new_event_loop()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)

    def build(**overrides) -> Handoff:
        settings = dataclasses.replace(Settings.from_env(), **overrides)
        return Handoff(sessions, locales, settings, Relay(sessions, {}), Events())

    yield loop.run_until_complete, build, sessions
    loop.run_until_complete(engine.dispose())
    loop.close()


async def conversation(sessions) -> int:
    async with sessions() as session:
        found = await get_or_create(session, uuid.uuid4().hex, "webchat")
        await session.commit()
        return found.id


async def online_counsellor(sessions) -> Counsellor:
    async with sessions() as session:
        name = uuid.uuid4().hex[:8]
        counsellor = await create_counsellor(
            session, name, "พี่ฝน", "long enough password", "counsellor"
        )
        counsellor.last_seen_at = utcnow()
        await session.commit()
        return counsellor


async def case_of(sessions, conversation_id: int) -> Case:
    async with sessions() as session:
        return await session.scalar(select(Case).where(Case.conversation_id == conversation_id))


def claimed(run, build, sessions) -> tuple[Handoff, Counsellor, int]:
    """A child's case, claimed by an online counsellor; reminder at 60 s, return at 300 s."""
    handoff = build(handoff_remind_after_s=60, handoff_return_after_s=300)
    counsellor = run(online_counsellor(sessions))
    conversation_id = run(conversation(sessions))
    run(handoff.request(conversation_id, SUMMARY, "th"))
    assert run(handoff.claim(run(case_of(sessions, conversation_id)).id, counsellor))
    return handoff, counsellor, conversation_id


def closed_now() -> str:
    """Opening hours that exclude the present moment in Bangkok."""
    now = datetime.now(BANGKOK)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_outside_opening_hours_the_child_is_told_honestly_and_the_case_still_waits(world, locales):
    run, build, sessions = world
    hours = closed_now()
    handoff = build(handoff_hours={"th": hours, "en": ""})
    run(online_counsellor(sessions))
    messages = run(handoff.request(run(conversation(sessions)), SUMMARY, "th"))
    assert messages[-1].text == locales.text("utter_handoff_closed_hours", "th", {"hours": hours})
    assert all(n in messages[-1].text for n in ("1387", "1300"))

    async def waiting() -> list[str]:
        async with sessions() as session:
            return list(await session.scalars(select(Case.state)))

    assert run(waiting()) == ["queued"]


def test_with_nobody_online_the_child_is_told_so(world, locales):
    run, build, sessions = world
    handoff = build()
    messages = run(handoff.request(run(conversation(sessions)), SUMMARY, "th"))
    assert messages[-1].text == locales.text("utter_handoff_nobody_online", "th")


def test_an_unanswered_child_gets_a_reminder_to_the_counsellor_then_goes_back_to_the_queue(
    world, locales
):
    run, build, sessions = world
    handoff, counsellor, conversation_id = claimed(run, build, sessions)

    def case() -> Case:
        return run(case_of(sessions, conversation_id))

    events: list[dict] = []

    async def check(after_s: float) -> None:
        with handoff.events.subscription() as queue:
            await handoff.check_waiting(utcnow() + timedelta(seconds=after_s))
            while not queue.empty():
                events.append(queue.get_nowait())

    run(check(30))
    assert not [e for e in events if e["type"] == "reminder"]
    run(check(61))
    assert [e["case"] for e in events if e["type"] == "reminder"] == [case().id]
    assert case().state == "assigned"
    run(check(301))
    returned = case()
    assert (returned.state, returned.returned, returned.counsellor_id) == ("queued", True, None)

    last = run(told(sessions, conversation_id))[-1]
    assert last == locales.text("utter_handoff_requeued", "th", {"position": 1})

    async def audited() -> list[str]:
        async with sessions() as session:
            return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))

    assert run(audited())[-3:] == ["claim", "reminder", "returned"]


def test_a_return_decided_before_the_counsellor_answered_is_not_applied(world):
    run, build, sessions = world
    handoff, counsellor, conversation_id = claimed(run, build, sessions)

    def case() -> Case:
        return run(case_of(sessions, conversation_id))

    seen_waiting = case()  # what the timer read, a moment before the reply landed
    run(handoff.reply(seen_waiting.id, counsellor, "สวัสดีค่ะ อยู่ตรงนี้นะคะ"))
    run(handoff._return_unanswered(seen_waiting, utcnow() + timedelta(seconds=301)))
    kept = case()
    assert (kept.state, kept.returned, kept.counsellor_id) == ("assigned", False, counsellor.id)
