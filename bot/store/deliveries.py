"""Delivered-event ids and push counts: the bookkeeping every platform channel shares."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.store.models import DeliveredEvent, PushCount, utcnow


async def first_deliveries(
    sessions: async_sessionmaker, channel: str, event_ids: list[str]
) -> set[str]:
    """The ids among these never seen before, recorded in one statement; the unique key makes
    each id new exactly once, across gateways and restarts."""
    ids = list(dict.fromkeys(i[:128] for i in event_ids))
    if not ids:
        return set()
    async with sessions() as session:
        dialect = session.bind.dialect.name
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
        statement = (
            insert(DeliveredEvent)
            .values([{"channel": channel, "event_id": i, "created_at": utcnow()} for i in ids])
            .on_conflict_do_nothing(index_elements=["channel", "event_id"])
            .returning(DeliveredEvent.event_id)
        )
        new = set((await session.scalars(statement)).all())
        await session.commit()
    return new


async def count_push(sessions: async_sessionmaker, channel: str) -> int:
    """Adds one push to this month's count and returns the new total."""
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    where = (PushCount.channel == channel, PushCount.month == month)
    async with sessions() as session:
        done = await session.execute(
            update(PushCount).where(*where).values(count=PushCount.count + 1)
        )
        if done.rowcount == 0:
            session.add(PushCount(channel=channel, month=month, count=1))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                await session.execute(
                    update(PushCount).where(*where).values(count=PushCount.count + 1)
                )
                await session.commit()
        else:
            await session.commit()
        return await session.scalar(select(PushCount.count).where(*where))
