"""Two gateway replicas on one PostgreSQL database run the periodic jobs at the same moment
(bot/app.py runs them on every replica): the no-answer timers, the push retry and the retention
purge. Each reminder, return to the queue, queue update and push happens exactly once.

Each replica is built as bot/app.py builds it, with an engine (connection pool), Relay, Handoff
and Events of its own; the two run concurrently in one event loop, several rounds in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.config import Settings
from bot.console.auth import create_counsellor
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.service import Handoff
from bot.locales import Locales
from bot.message import Outgoing
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker
from bot.store.handoff_models import AuditEntry, Case, Counsellor
from bot.store.models import Message, utcnow
from bot.store.retention import Retention
from tests.gateway.conftest import migrate, postgres_database, require_production, told

ROUNDS = 8
UNANSWERED = 6
SUMMARY = json.dumps({"language": "th", "role": "child", "topics": ["sextortion"]})
REMIND_S, RETURN_S = 180, 600


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    require_production()
    with postgres_database("replicas") as url:
        migrate(url)
        yield url


class Platform:
    """A platform both replicas push through; accepts everything, a little slowly."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, str]] = []

    async def push(self, user: str, replies: list[Outgoing], key: str) -> bool:
        await asyncio.sleep(0.005)
        self.pushed += [(user, reply.text) for reply in replies]
        return True


class Heard(Events):
    """Console events, and a record of every one published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[dict] = []

    def publish(self, event: dict) -> None:
        self.published.append(event)
        super().publish(event)


@dataclasses.dataclass
class Replica:
    sessions: async_sessionmaker
    relay: Relay
    handoff: Handoff
    retention: Retention
    events: Heard


@contextlib.asynccontextmanager
async def replicas(url: str, locales: Locales, platform: Platform) -> AsyncIterator[list[Replica]]:
    """Two replicas of the gateway's services on one database, each with its own pool."""
    settings = dataclasses.replace(
        Settings.from_env(),
        handoff_remind_after_s=REMIND_S,
        handoff_return_after_s=RETURN_S,
        handoff_hours={"th": "", "en": ""},
    )
    engines = [make_engine(url) for _ in range(2)]
    made = []
    for engine in engines:
        sessions, events = make_sessionmaker(engine), Heard()
        relay = Relay(sessions, {"line": platform})
        handoff = Handoff(sessions, locales, settings, relay, events)
        made.append(Replica(sessions, relay, handoff, Retention(sessions, engine, 30), events))
    try:
        yield made
    finally:
        for engine in engines:
            await engine.dispose()


# -- the no-answer timers and the queue updates they cause -----------------------------------------


async def new_case(sessions, state: str, **values) -> tuple[int, int]:
    """A conversation with a case in `state`: (conversation id, case id)."""
    async with sessions() as session:
        conversation = await get_or_create(session, uuid.uuid4().hex, "webchat")
        await session.flush()
        conversation.mode = state
        case = Case(conversation_id=conversation.id, state=state, summary=SUMMARY, **values)
        session.add(case)
        await session.commit()
        return conversation.id, case.id


async def stale_queue(sessions, now: datetime, count: int) -> list[int]:
    """`count` queued children, each a place further back than they now are (a child ahead just
    left and the others were not told yet): their conversations."""
    return [
        (
            await new_case(
                sessions,
                "queued",
                queued_at=now - timedelta(seconds=100 - i),
                last_position=i + 2,
            )
        )[0]
        for i in range(count)
    ]


async def online_counsellor(sessions) -> Counsellor:
    async with sessions() as session:
        counsellor = await create_counsellor(
            session, uuid.uuid4().hex[:8], "พี่ฝน", "long enough password", "counsellor"
        )
        counsellor.last_seen_at = utcnow()
        await session.commit()
        return counsellor


async def close_every_case(sessions) -> None:
    """The next round starts from an empty queue."""
    async with sessions() as session:
        await session.execute(update(Case).values(state="closed"))
        await session.commit()


async def audited(sessions, action: str, conversation_id: int) -> int:
    async with sessions() as session:
        return await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .join(Case, Case.id == AuditEntry.case_id)
            .where(AuditEntry.action == action, Case.conversation_id == conversation_id)
        )


def test_two_replicas_remind_return_and_update_the_queue_once(database_url, locales):
    """Each round: two children queued whose places changed, children unanswered for too long
    (back to the queue, behind them) and one waiting long enough for a reminder. Both replicas
    check at once."""

    async def scenario() -> None:
        async with replicas(database_url, locales, Platform()) as (a, b):
            counsellor = await online_counsellor(a.sessions)
            for _ in range(ROUNDS):
                now = utcnow()
                queued = await stale_queue(a.sessions, now, 2)
                unanswered = [
                    (
                        await new_case(
                            a.sessions,
                            "assigned",
                            counsellor_id=counsellor.id,
                            last_position=1,  # where each was when it was claimed
                            assigned_at=now - timedelta(seconds=RETURN_S + 60),
                            child_waiting_since=now - timedelta(seconds=RETURN_S + 30),
                        )
                    )[0]
                    for _ in range(UNANSWERED)
                ]
                slow, _ = await new_case(
                    a.sessions,
                    "assigned",
                    counsellor_id=counsellor.id,
                    assigned_at=now - timedelta(seconds=REMIND_S + 60),
                    child_waiting_since=now - timedelta(seconds=REMIND_S + 30),
                )

                await asyncio.gather(a.handoff.check_waiting(now), b.handoff.check_waiting(now))

                for position, child in enumerate(queued, start=1):
                    assert len(await told(a.sessions, child)) == 1, f"queued child {position}"
                for child in unanswered:
                    requeued = await told(a.sessions, child)
                    assert len(requeued) == 1, requeued
                    assert await audited(a.sessions, "returned", child) == 1
                assert await told(a.sessions, slow) == []
                assert await audited(a.sessions, "reminder", slow) == 1
                await close_every_case(a.sessions)
        reminders = [e for r in (a, b) for e in r.events.published if e["type"] == "reminder"]
        assert len(reminders) == ROUNDS

    asyncio.run(scenario())


def test_chats_closed_at_once_on_two_replicas_tell_each_waiting_child_its_place_once(
    database_url, locales
):
    """Both replicas announce the queue at the same moment (each after its counsellor closed a
    chat): whichever moves a child's place tells the child, the other says nothing."""

    async def scenario() -> None:
        async with replicas(database_url, locales, Platform()) as (a, b):
            first, second = [await online_counsellor(a.sessions) for _ in range(2)]
            wrapup = ["violence.online_sexual_exploitation"]
            for _ in range(ROUNDS):
                queued = await stale_queue(a.sessions, utcnow(), 3)
                chats = [
                    (await new_case(a.sessions, "assigned", counsellor_id=c.id))[1]
                    for c in (first, second)
                ]
                await asyncio.gather(
                    a.handoff.close(chats[0], first, wrapup),
                    b.handoff.close(chats[1], second, wrapup),
                )
                for position, child in enumerate(queued, start=1):
                    assert len(await told(a.sessions, child)) == 1, f"queued child {position}"
                await close_every_case(a.sessions)

    asyncio.run(scenario())


# -- the push retry --------------------------------------------------------------------------------


async def pending_words(sessions, count: int) -> tuple[str, list[str]]:
    """A LINE user with `count` messages a refused push left pending: (user key, texts)."""
    user, words = uuid.uuid4().hex, [f"ข้อความ {i} {uuid.uuid4().hex[:6]}" for i in range(count)]
    async with sessions() as session:
        conversation = await get_or_create(session, user, "line")
        await session.flush()
        session.add_all(
            Message(conversation_id=conversation.id, sender="counsellor", text=w, push_pending=True)
            for w in words
        )
        await session.commit()
    return user, words


def test_two_replicas_retrying_pushes_send_each_message_once_in_order(database_url, locales):
    platform = Platform()

    async def scenario() -> None:
        async with replicas(database_url, locales, platform) as (a, b):
            for _ in range(ROUNDS):
                platform.pushed.clear()
                children = [await pending_words(a.sessions, 4) for _ in range(3)]
                await asyncio.gather(a.relay.retry(), b.relay.retry())
                for user, words in children:
                    assert [w for to, w in platform.pushed if to == user] == words

    asyncio.run(scenario())


def test_a_new_message_and_the_other_replica_s_retry_push_each_message_once(database_url, locales):
    platform = Platform()

    async def scenario() -> None:
        async with replicas(database_url, locales, platform) as (a, b):
            for _ in range(ROUNDS):
                platform.pushed.clear()
                user, words = await pending_words(a.sessions, 3)
                async with a.sessions() as session:
                    conversation_id = (await get_or_create(session, user, "line")).id
                await asyncio.gather(
                    a.relay.send(conversation_id, "counsellor", [Outgoing(text="ล่าสุด")]),
                    b.relay.retry(),
                )
                assert [w for to, w in platform.pushed if to == user] == [*words, "ล่าสุด"]

    asyncio.run(scenario())


# -- the retention purge ---------------------------------------------------------------------------


def test_two_replicas_purging_at_once_purge_everything_once(database_url, locales):
    """One purge after the other, Rasa's events included. (Row locks already kept two purges'
    DELETEs from counting a row twice; Rasa's events, purged apart from the gateway's rows, were
    the part two replicas could split between them.)"""

    async def scenario() -> None:
        async with replicas(database_url, locales, Platform()) as (a, b):
            async with a.retention.tracker.begin() as connection:
                await connection.execute(
                    text("CREATE TABLE IF NOT EXISTS events (sender_id TEXT, timestamp FLOAT)")
                )
            for _ in range(ROUNDS):
                old = utcnow() - timedelta(days=45)
                async with a.sessions() as session:
                    conversation = await get_or_create(session, uuid.uuid4().hex, "webchat")
                    await session.flush()
                    session.add_all(
                        Message(conversation_id=conversation.id, sender="user", created_at=old)
                        for _ in range(20)
                    )
                    await session.commit()
                async with a.retention.tracker.begin() as connection:
                    await connection.execute(
                        text("INSERT INTO events VALUES (:s, :t)"),
                        [{"s": conversation.user_key, "t": old.timestamp()}] * 20,
                    )
                first, second = await asyncio.gather(a.retention.purge(), b.retention.purge())
                # one after the other: one purged it all, the other found nothing left
                assert sorted(
                    [
                        (first["messages"], first["rasa_events"]),
                        (second["messages"], second["rasa_events"]),
                    ]
                ) == [(0, 0), (20, 20)]

    asyncio.run(scenario())
