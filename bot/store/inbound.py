"""The durable inbox's SQL (bot/inbox.py decides when; this says how, on SQLite and PostgreSQL).

A user's rows are answered oldest first, one at a time, by whichever worker claims the oldest
unfinished one: the claim is one conditional UPDATE, so of two replicas claiming at once exactly
one wins (on PostgreSQL the loser waits for the row, then finds the lease taken), and a worker that
died lets go when its lease runs out.

Each step is one short transaction (bot/store/steps.py). Writing the events is the one database
step before a platform's 200 (make bench: LINE's acknowledgement p99).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Delete, bindparam, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.store.models import Inbound, utcnow
from bot.store.steps import Steps

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


class InboundStore:
    def __init__(self, steps: Steps) -> None:
        self._run = steps.run
        self.sqlite = steps.sqlite

    async def write(
        self,
        channel: str,
        rows: list[tuple[str, str, str]],
        claim_for: list[str] | None = None,
        lease_s: float = 0.0,
    ) -> tuple[list[tuple[int, str]], dict[str, Claimed]]:
        """Writes (event id, user key, sealed payload) rows in one statement; returns (id, user
        key) of the rows that are new (an id already written, a redelivery, is skipped). In the
        same transaction it claims the oldest unfinished row of each user in `claim_for` with a new
        row (as `claim`), so the first step of answering costs no step of its own."""
        if not rows:
            return [], {}
        return await self._run(_write, channel, rows, claim_for or [], lease_s)

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
# The statements on every turn's path are built once: building one costs more than running it
# (make bench: ~70 µs of a ~100 µs step).

# ON CONFLICT as text: SQLAlchemy never caches its dialects' own INSERT (compiled anew each time,
# most of this step's cost); the statement is the same on SQLite and PostgreSQL.
_INSERT = text(
    "INSERT INTO inbound (channel, event_id, user_key, payload, attempts, created_at)"
    " VALUES (:channel, :event_id, :user_key, :payload, 0, :created_at)"
    " ON CONFLICT (channel, event_id) DO NOTHING RETURNING id, user_key"
).bindparams(bindparam("created_at", type_=Inbound.__table__.c.created_at.type))
_CLAIM = (
    update(Inbound)
    .where(
        Inbound.id
        == select(func.min(Inbound.id))
        .where(Inbound.user_key == bindparam("b_user"), Inbound.finished_at.is_(None))
        .scalar_subquery(),
        Inbound.finished_at.is_(None),
        or_(Inbound.lease_until.is_(None), Inbound.lease_until < bindparam("b_now")),
    )
    .values(
        claim=bindparam("b_claim"),
        lease_until=bindparam("b_until"),
        attempts=Inbound.attempts + 1,
    )
    .returning(Inbound.id, Inbound.channel, Inbound.payload, Inbound.attempts)
)
_FINISH = (
    update(Inbound)
    .where(Inbound.id == bindparam("b_id"), Inbound.claim == bindparam("b_claim"))
    .values(
        finished_at=bindparam("b_now"),
        payload=None,
        claim=None,
        lease_until=None,
        answer=bindparam("b_answer"),
    )
)


def _write(
    connection: Connection,
    channel: str,
    rows: list[tuple[str, str, str]],
    claim_for: list[str],
    lease_s: float,
) -> tuple[list[tuple[int, str]], dict[str, Claimed]]:
    now = utcnow()
    values = {
        event_id[:MAX_EVENT_ID]: {
            "channel": channel,
            "event_id": event_id[:MAX_EVENT_ID],
            "user_key": user,
            "payload": payload,
            "created_at": now,
        }
        for event_id, user, payload in rows
    }
    written = sorted(
        (row.id, row.user_key)
        for value in values.values()
        for row in connection.execute(_INSERT, value)
    )
    new = {user for _, user in written}
    claims = {user: _claim(connection, user, lease_s) for user in claim_for if user in new}
    return written, {user: row for user, row in claims.items() if row is not None}


def _claim(connection: Connection, user_key: str, lease_s: float) -> Claimed | None:
    now = utcnow()
    token = new_claim()
    row = connection.execute(
        _CLAIM,
        {
            "b_user": user_key,
            "b_now": now,
            "b_claim": token,
            "b_until": now + timedelta(seconds=lease_s),
        },
    ).first()
    if row is None:
        return None
    return Claimed(row.id, row.channel, user_key, row.payload, row.attempts, token)


def _finish(
    connection: Connection, row: Claimed, answer: str | None, lease_s: float
) -> Claimed | None:
    connection.execute(
        _FINISH, {"b_id": row.id, "b_claim": row.claim, "b_now": utcnow(), "b_answer": answer}
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
