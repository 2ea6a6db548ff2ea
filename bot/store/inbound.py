"""The durable inbox's SQL (bot/inbox.py decides when; this says how, on SQLite and PostgreSQL).

A user's rows are answered oldest first, one at a time, by whichever worker claims the oldest
unfinished one: the claim is one conditional UPDATE, so of two replicas claiming at once exactly
one wins (on PostgreSQL the loser waits for the row, then finds the lease taken), and a worker that
died lets go when its lease runs out.

Each step is one short transaction. Writing the events is the one database step before a
platform's 200 (make bench: LINE's acknowledgement p99). On SQLite every statement of an async
session is a hop to aiosqlite's thread and back, four or five a commit, each waiting for a busy
CPU, and the file's one write lock is held across them: so on SQLite each step runs whole on a
thread of the inbox's own (one hop, the lock held for microseconds). PostgreSQL needs no thread.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Delete,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.store.db import sqlite_pragmas
from bot.store.models import Inbound, utcnow

MAX_EVENT_ID = 128
T = TypeVar("T")


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


class InboundStore:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.sqlite = self._engine.dialect.name == "sqlite"
        if self.sqlite:
            self._sync = create_engine(
                self._engine.url.set(drivername="sqlite"), connect_args={"timeout": 30}
            )
            event.listen(self._sync, "connect", sqlite_pragmas)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="inbound")

    def close(self) -> None:
        if self.sqlite:
            self._thread.shutdown()
            self._sync.dispose()

    async def write(self, channel: str, rows: list[tuple[str, str, str]]) -> list[tuple[int, str]]:
        """Writes (event id, user key, sealed payload) rows in one statement and commits;
        returns (id, user key) of the rows that are new. An id already written (a redelivery)
        is skipped."""
        return await self._run(_write, channel, rows) if rows else []

    async def claim(self, user_key: str, lease_s: float) -> Claimed | None:
        """The user's oldest unfinished row, now held by the caller; None when there is none or
        another worker holds it (or it waits out a failure)."""
        return await self._run(_claim, user_key, lease_s)

    async def finish(self, row: Claimed, answer: str | None, lease_s: float) -> Claimed | None:
        """Marks the row answered and forgets its payload, then claims the user's next row, in
        one transaction. A row no longer held (its lease ran out and another worker took it, or
        the user erased it) is left as it is."""
        return await self._run(_finish, row, answer, lease_s)

    async def hold(self, row: Claimed, answer: str) -> None:
        """Keeps an answer for the request waiting for a row still being answered (the holding
        line, bot/holding.py); `finish` replaces it."""
        await self._run(_hold, row, answer)

    async def release(self, row: Claimed, retry_at: datetime) -> None:
        """Lets go of a row that failed; nobody claims it again before `retry_at`."""
        await self._run(_release, row, retry_at)

    async def renew(self, claims: list[str], lease_s: float) -> None:
        """Keeps the rows this worker is still answering its own."""
        if claims:
            await self._run(_renew, claims, lease_s)

    async def release_all(self) -> None:
        """Lets go of every claim at once: on SQLite the one gateway process starting finds only
        claims of a process that has died."""
        await self._run(_release_all)

    async def waiting(self, limit: int = 500) -> list[str]:
        """Users whose oldest unfinished row nobody holds: left by a replica that died, or a
        failure whose wait is over."""
        return await self._run(_waiting, limit)

    async def outcome(self, row_id: int) -> Outcome | None:
        """Whether a row is answered, and the answer kept for it; None when it is gone."""
        return await self._run(_outcome, row_id)

    async def _run(self, step: Callable[..., T], *args: Any) -> T:
        """One step as one transaction: on the inbox's thread (SQLite), or in the event loop."""
        if self.sqlite:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._in_thread, step, args)
        async with self._engine.begin() as connection:
            return await connection.run_sync(step, *args)

    def _in_thread(self, step: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._sync.begin() as connection:
            return step(connection, *args)


def new_claim() -> str:
    return secrets.token_hex(16)


def purge_before(before: datetime) -> Delete:
    """Rows older than the retention period, answered or not (bot/store/retention.py)."""
    return delete(Inbound).where(Inbound.created_at < before)


async def forget(session: AsyncSession, user_key: str) -> None:
    """Erases the user's rows: every answered one, and the one being answered (the erasure
    itself, the oldest unfinished). Words the child sent after asking are not yet read: they
    stay, to be answered in a conversation that starts afresh."""
    await session.execute(
        delete(Inbound).where(
            Inbound.user_key == user_key,
            or_(Inbound.finished_at.is_not(None), Inbound.id == _oldest(user_key)),
        )
    )


# -- the steps, each run as one transaction -------------------------------------------------------


def _write(connection: Connection, channel: str, rows: list[tuple[str, str, str]]) -> list:
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[connection.dialect.name]
    now = utcnow()
    values = {
        event_id[:MAX_EVENT_ID]: {
            "channel": channel,
            "event_id": event_id[:MAX_EVENT_ID],
            "user_key": user,
            "payload": payload,
            "attempts": 0,
            "created_at": now,
        }
        for event_id, user, payload in rows
    }
    statement = (
        insert(Inbound)
        .values(list(values.values()))
        .on_conflict_do_nothing(index_elements=["channel", "event_id"])
        .returning(Inbound.id, Inbound.user_key)
    )
    return sorted((row.id, row.user_key) for row in connection.execute(statement))


def _claim(connection: Connection, user_key: str, lease_s: float) -> Claimed | None:
    now = utcnow()
    token = new_claim()
    row = connection.execute(
        update(Inbound)
        .where(
            Inbound.id == _oldest(user_key),
            Inbound.finished_at.is_(None),
            or_(Inbound.lease_until.is_(None), Inbound.lease_until < now),
        )
        .values(
            claim=token,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Inbound.attempts + 1,
        )
        .returning(Inbound.id, Inbound.channel, Inbound.payload, Inbound.attempts)
    ).first()
    if row is None:
        return None
    return Claimed(row.id, row.channel, user_key, row.payload, row.attempts, token)


def _finish(
    connection: Connection, row: Claimed, answer: str | None, lease_s: float
) -> Claimed | None:
    connection.execute(
        update(Inbound)
        .where(Inbound.id == row.id, Inbound.claim == row.claim)
        .values(finished_at=utcnow(), payload=None, claim=None, lease_until=None, answer=answer)
    )
    return _claim(connection, row.user_key, lease_s)


def _hold(connection: Connection, row: Claimed, answer: str) -> None:
    connection.execute(
        update(Inbound)
        .where(Inbound.id == row.id, Inbound.claim == row.claim, Inbound.finished_at.is_(None))
        .values(answer=answer)
    )


def _release(connection: Connection, row: Claimed, retry_at: datetime) -> None:
    connection.execute(
        update(Inbound)
        .where(Inbound.id == row.id, Inbound.claim == row.claim)
        .values(claim=None, lease_until=retry_at)
    )


def _renew(connection: Connection, claims: list[str], lease_s: float) -> None:
    connection.execute(
        update(Inbound)
        .where(Inbound.claim.in_(claims), Inbound.finished_at.is_(None))
        .values(lease_until=utcnow() + timedelta(seconds=lease_s))
    )


def _release_all(connection: Connection) -> None:
    connection.execute(
        update(Inbound)
        .where(Inbound.finished_at.is_(None), Inbound.claim.is_not(None))
        .values(claim=None, lease_until=None)
    )


def _waiting(connection: Connection, limit: int) -> list[str]:
    older = aliased(Inbound)
    oldest = (
        select(func.min(older.id))
        .where(older.user_key == Inbound.user_key, older.finished_at.is_(None))
        .scalar_subquery()
    )
    now = utcnow()
    rows = connection.scalars(
        select(Inbound.user_key)
        .where(
            Inbound.finished_at.is_(None),
            or_(Inbound.lease_until.is_(None), Inbound.lease_until < now),
            Inbound.id == oldest,
        )
        .limit(limit)
    )
    return list(rows)


def _outcome(connection: Connection, row_id: int) -> Outcome | None:
    row = connection.execute(
        select(Inbound.finished_at, Inbound.answer).where(Inbound.id == row_id)
    ).first()
    if row is None:
        return None
    return Outcome(finished=row.finished_at is not None, answer=row.answer)


def _oldest(user_key: str):  # noqa: ANN202 (a scalar subquery)
    """The id of the user's oldest unfinished row."""
    return (
        select(func.min(Inbound.id))
        .where(Inbound.user_key == user_key, Inbound.finished_at.is_(None))
        .scalar_subquery()
    )
