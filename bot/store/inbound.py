"""The durable inbox's SQL (bot/inbox.py decides when; this says how, on SQLite and PostgreSQL).

A user's rows are answered oldest first, one at a time, by whichever worker claims the oldest
unfinished one: the claim is one conditional UPDATE, so of two replicas claiming at once exactly
one wins (on PostgreSQL the loser waits for the row, then finds the lease taken), and a worker that
died lets go when its lease runs out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.store.models import Inbound, utcnow

MAX_EVENT_ID = 128


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds until `finish` or `release` (or until its lease runs out)."""

    id: int
    channel: str
    user_key: str
    payload: str | None
    attempts: int
    claim: str


@dataclass(frozen=True)
class Outcome:
    finished: bool
    answer: str | None


def new_claim() -> str:
    return secrets.token_hex(16)


async def write(
    sessions: async_sessionmaker, channel: str, rows: list[tuple[str, str, str]]
) -> list[tuple[int, str]]:
    """Writes (event id, user key, sealed payload) rows in one statement and commits; returns
    (id, user key) of the rows that are new. An id already written (a redelivery) is skipped."""
    if not rows:
        return []
    now = utcnow()
    values = list(
        {
            event_id[:MAX_EVENT_ID]: {
                "channel": channel,
                "event_id": event_id[:MAX_EVENT_ID],
                "user_key": user,
                "payload": payload,
                "attempts": 0,
                "created_at": now,
            }
            for event_id, user, payload in rows
        }.values()
    )
    async with sessions() as session:
        insert = _insert(session)
        statement = (
            insert(Inbound)
            .values(values)
            .on_conflict_do_nothing(index_elements=["channel", "event_id"])
            .returning(Inbound.id, Inbound.user_key)
        )
        new = sorted((row.id, row.user_key) for row in await session.execute(statement))
        await session.commit()
    return new


async def claim(sessions: async_sessionmaker, user_key: str, lease_s: float) -> Claimed | None:
    """The user's oldest unfinished row, now held by the caller; None when there is none or
    another worker holds it (or it waits out a failure)."""
    async with sessions() as session:
        claimed = await _claim(session, user_key, lease_s)
        await session.commit()
    return claimed


async def finish(
    sessions: async_sessionmaker, row: Claimed, answer: str | None, lease_s: float
) -> Claimed | None:
    """Marks the row answered and forgets its payload, then claims the user's next row, all in
    one transaction. A row no longer held (its lease ran out and another worker took it, or the
    user erased it) is left as it is."""
    async with sessions() as session:
        await session.execute(
            update(Inbound)
            .where(Inbound.id == row.id, Inbound.claim == row.claim)
            .values(finished_at=utcnow(), payload=None, claim=None, lease_until=None, answer=answer)
        )
        claimed = await _claim(session, row.user_key, lease_s)
        await session.commit()
    return claimed


async def release(sessions: async_sessionmaker, row: Claimed, retry_at: datetime) -> None:
    """Lets go of a row that failed; nobody claims it again before `retry_at`."""
    async with sessions() as session:
        await session.execute(
            update(Inbound)
            .where(Inbound.id == row.id, Inbound.claim == row.claim)
            .values(claim=None, lease_until=retry_at)
        )
        await session.commit()


async def renew(sessions: async_sessionmaker, claims: list[str], lease_s: float) -> None:
    """Keeps the rows this worker is still answering its own."""
    if not claims:
        return
    async with sessions() as session:
        await session.execute(
            update(Inbound)
            .where(Inbound.claim.in_(claims), Inbound.finished_at.is_(None))
            .values(lease_until=utcnow() + timedelta(seconds=lease_s))
        )
        await session.commit()


async def release_all(sessions: async_sessionmaker) -> None:
    """Lets go of every claim at once: on SQLite the one gateway process starting finds only
    claims of a process that has died."""
    async with sessions() as session:
        await session.execute(
            update(Inbound)
            .where(Inbound.finished_at.is_(None), Inbound.claim.is_not(None))
            .values(claim=None, lease_until=None)
        )
        await session.commit()


async def waiting(sessions: async_sessionmaker, limit: int = 500) -> list[str]:
    """Users whose oldest unfinished row nobody holds: left by a replica that died, or a failure
    whose wait is over."""
    now = utcnow()
    older = aliased(Inbound)
    oldest = (
        select(func.min(older.id))
        .where(older.user_key == Inbound.user_key, older.finished_at.is_(None))
        .scalar_subquery()
    )
    async with sessions() as session:
        rows = await session.scalars(
            select(Inbound.user_key)
            .where(
                Inbound.finished_at.is_(None),
                or_(Inbound.lease_until.is_(None), Inbound.lease_until < now),
                Inbound.id == oldest,
            )
            .limit(limit)
        )
        return list(rows)


async def outcome(sessions: async_sessionmaker, row_id: int) -> Outcome | None:
    """Whether a row is answered, and the answer kept for it; None when it is gone (erased)."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(Inbound.finished_at, Inbound.answer).where(Inbound.id == row_id)
            )
        ).first()
    if row is None:
        return None
    return Outcome(finished=row.finished_at is not None, answer=row.answer)


def purge_before(before: datetime):  # noqa: ANN201 (a DELETE statement)
    """Rows older than the retention period, answered or not (bot/store/retention.py)."""
    return delete(Inbound).where(Inbound.created_at < before)


async def forget(session: AsyncSession, user_key: str) -> None:
    """Erases the user's rows: every answered one, and the one being answered (the erasure
    itself, the oldest unfinished). Words the child sent after asking are not yet read: they
    stay, to be answered in a conversation that starts afresh."""
    current = (
        select(func.min(Inbound.id))
        .where(Inbound.user_key == user_key, Inbound.finished_at.is_(None))
        .scalar_subquery()
    )
    await session.execute(
        delete(Inbound).where(
            Inbound.user_key == user_key,
            or_(Inbound.finished_at.is_not(None), Inbound.id == current),
        )
    )


async def _claim(session: AsyncSession, user_key: str, lease_s: float) -> Claimed | None:
    now = utcnow()
    oldest = (
        select(func.min(Inbound.id))
        .where(Inbound.user_key == user_key, Inbound.finished_at.is_(None))
        .scalar_subquery()
    )
    token = new_claim()
    row = (
        await session.execute(
            update(Inbound)
            .where(
                Inbound.id == oldest,
                Inbound.finished_at.is_(None),
                or_(Inbound.lease_until.is_(None), Inbound.lease_until < now),
            )
            .values(
                claim=token,
                lease_until=now + timedelta(seconds=lease_s),
                attempts=Inbound.attempts + 1,
            )
            .returning(Inbound.id, Inbound.channel, Inbound.payload, Inbound.attempts)
        )
    ).first()
    if row is None:
        return None
    return Claimed(row.id, row.channel, user_key, row.payload, row.attempts, token)


def _insert(session: AsyncSession):  # noqa: ANN202 (the dialect's insert construct)
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[session.bind.dialect.name]
