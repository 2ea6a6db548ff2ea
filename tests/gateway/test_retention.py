"""Retention and erasure on SQLite and PostgreSQL: old words go, wrap-up records stay without
text, recent conversations and open cases are untouched, and a user's erasure is complete."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bot.handoff import cases
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker
from bot.store.handoff_models import Case, CaseCategory
from bot.store.models import Conversation, Message, utcnow
from bot.store.retention import Retention
from tests.gateway.test_handoff_cases import database_url  # noqa: F401 (the fixture)

OLD = timedelta(days=45)


@pytest.fixture
def retention(database_url):  # noqa: F811
    """(run, retention, sessions); Rasa's events table lives in the same database here."""
    loop = asyncio.new_event_loop()
    engine = make_engine(database_url)

    async def tracker_table() -> None:
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE IF NOT EXISTS events (sender_id VARCHAR(255), timestamp FLOAT)")
            )

    loop.run_until_complete(tracker_table())
    sessions = make_sessionmaker(engine)
    yield loop.run_until_complete, Retention(sessions, engine, days=30), sessions
    loop.run_until_complete(engine.dispose())
    loop.close()


async def conversation_with(sessions, engine_of, age: timedelta, closed: bool) -> tuple[str, int]:
    """A user with one message, one Rasa event and one case, all `age` old."""
    when = utcnow() - age
    async with sessions() as session:
        found = await get_or_create(session, uuid.uuid4().hex, "webchat")
        session.add(Message(conversation=found, sender="user", text="มีคนขู่", created_at=when))
        case = await cases.start(session, found, {"topics": ["sextortion"]}, urgent=True)
        case.child_note = "เรื่องรูป"
        if closed:
            await cases.move(session, case, "assigned", "test", counsellor_id=None)
            await cases.move(session, case, "closed", "test", "violence.online_sexual_exploitation")
            session.add(
                CaseCategory(case_id=case.id, category="violence.online_sexual_exploitation")
            )
            case.closed_at = when
        found.updated_at = when
        await session.commit()
        key, case_id = found.user_key, case.id
    async with engine_of.begin() as connection:
        await connection.execute(
            text("INSERT INTO events (sender_id, timestamp) VALUES (:s, :t)"),
            {"s": key, "t": when.timestamp()},
        )
    return key, case_id


def test_old_words_are_purged_and_wrapups_kept_without_text(retention):
    run, keeper, sessions = retention
    old_key, old_case = run(conversation_with(sessions, keeper.tracker, OLD, closed=True))
    new_key, new_case = run(conversation_with(sessions, keeper.tracker, timedelta(0), closed=False))
    counts = run(keeper.purge())
    assert counts["messages"] >= 1 and counts["rasa_events"] >= 1 and counts["cases"] >= 1

    async def state() -> dict:
        async with sessions() as session:
            old, new = await session.get(Case, old_case), await session.get(Case, new_case)
            words = {
                key: await session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .join(Conversation)
                    .where(Conversation.user_key == key)
                )
                for key in (old_key, new_key)
            }
            kept = list(
                await session.scalars(
                    select(CaseCategory.category).where(CaseCategory.case_id == old_case)
                )
            )
        async with keeper.tracker.connect() as connection:
            events = {
                key: (
                    await connection.execute(
                        text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": key}
                    )
                ).scalar()
                for key in (old_key, new_key)
            }
        return {"old": old, "new": new, "words": words, "events": events, "old_categories": kept}

    after = run(state())
    assert (after["old"].topic, after["old"].summary, after["old"].child_note) == (
        "sextortion",
        "{}",
        None,
    )
    assert after["old_categories"] == ["violence.online_sexual_exploitation"]
    assert json.loads(after["new"].summary) == {"topics": ["sextortion"]}
    assert after["new"].child_note == "เรื่องรูป"
    assert after["words"] == {old_key: 0, new_key: 1}
    assert after["events"] == {old_key: 0, new_key: 1}


def test_forget_erases_a_user_everywhere(retention):
    run, keeper, sessions = retention
    key, case_id = run(conversation_with(sessions, keeper.tracker, timedelta(0), closed=False))
    run(keeper.forget(key))

    async def left() -> tuple[int, int, int]:
        async with sessions() as session:
            conversations = await session.scalar(
                select(func.count()).where(Conversation.user_key == key)
            )
            case = await session.get(Case, case_id)
        async with keeper.tracker.connect() as connection:
            events = (
                await connection.execute(
                    text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": key}
                )
            ).scalar()
        return conversations, case is not None, events

    assert run(left()) == (0, False, 0)
