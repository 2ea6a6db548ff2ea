"""Counsellor accounts and console sessions: argon2 hashes, lockout, cookie sessions, CSRF.

The cookie carries a random token; the database keeps only its SHA-256, so a stolen database
opens no console. Every state-changing request must repeat the session's CSRF token in a header.

Sign-in cannot be used to stall the service or to lock a counsellor out: argon2 runs on a thread
of its own, never on the event loop a child's turn needs, and one address's attempts are checked
one at a time, so a burst from one address stops at the lockout instead of running every check
at once; failures are counted per
username *and* address (`login_failures`, one atomic UPSERT per failure), so five wrong passwords
from one address lock that username for fifteen minutes there only, and the real counsellor still
signs in from anywhere else. The per-address limit on the form itself is in bot/console/routes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, case, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handoff.cases import audit
from bot.store.handoff_models import AuditEntry, ConsoleSession, Counsellor, LoginFailure
from bot.store.models import as_utc, utcnow
from bot.store.steps import Steps

COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_csrf"
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
SEEN_EVERY = timedelta(seconds=20)
ROLES = ("counsellor", "supervisor")

# argon2id as OWASP's password storage guidance gives it (19 MiB, 2 passes, one lane), not the
# library's 64 MiB on four lanes: a check's memory and threads are what a sign-in flood takes from
# the children's turns (no priority governs memory bandwidth). Hashes made with
# other parameters still verify: each hash carries its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _yield_to_children() -> None:
    """The checking thread runs at the lowest priority (Linux sets it per thread), behind the
    event loop that carries the children's turns. Linux weighs a nice value only inside the
    process's scheduling group (its session under `make run`, its cgroup under systemd or
    Kubernetes), so against the Rasa servers it is CHECK_SHARE that bounds what checks take."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


# One password check at a time, off the event loop, at the lowest priority: a flood of sign-ins
# queues here (a check is about 20 ms of CPU).
# ... and at most this share of one core: the priority ranks checks only within the gateway, and
# a check's 19 MiB sweep slows the children's turns on the other core too (memory and cache), so
# the thread rests after each check; a real sign-in behind a flood waits a few tenths of a second
# more.
CHECK_SHARE = 0.2
_CHECKS = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="argon2", initializer=_yield_to_children
)


class _OneAtATime:
    """An asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


_PER_ADDRESS = _OneAtATime()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Login:
    """The outcome of a sign-in: a session token, or why not ("failed", "locked")."""

    token: str | None = None
    refused: str | None = None


@dataclass
class Signed:
    counsellor: Counsellor
    csrf: str


async def create_counsellor(
    session: AsyncSession, username: str, display_name: str, password: str, role: str
) -> Counsellor:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    counsellor = Counsellor(
        username=username.strip().lower(),
        display_name=display_name.strip(),
        password_hash=hash_password(password),
        role=role,
    )
    session.add(counsellor)
    await session.flush()
    return counsellor


async def login(steps: Steps, username: str, password: str, address: str) -> Login:
    """Checks the password; five failures of one username from one address lock that pair for
    fifteen minutes (no password is checked meanwhile). One address's attempts wait their turn:
    the sixth of a burst finds the lock, not a free check. The database work is steps
    (bot/store/steps.py): on SQLite a flood's writes never hold the file's write lock across a
    wait of the event loop, which the children's turns would then wait behind."""
    async with _PER_ADDRESS.turn(address):
        return await _login(steps, username, password, address)


async def _login(steps: Steps, username: str, password: str, address: str) -> Login:
    now = utcnow()
    name = username.strip().lower()
    key = hashlib.sha256(f"{name}\n{address}".encode()).hexdigest()
    counsellor, locked = await steps.run(_known, name, key)
    if locked is not None and as_utc(locked) > now:
        if counsellor is not None:
            await steps.run(_locked_out, counsellor.id)
        return Login(refused="locked")
    # the same time whether or not the name exists
    stored = counsellor.password_hash if counsellor is not None else _DUMMY_HASH
    right = await asyncio.get_running_loop().run_in_executor(_CHECKS, _verify, stored, password)
    if counsellor is None or not right:
        refused = await steps.run(_failed, key, now, counsellor.id if counsellor else None)
        return Login(refused=refused)
    token = secrets.token_urlsafe(32)
    await steps.run(_signed_in, key, now, counsellor.id, _token_hash(token))
    return Login(token=token)


def _known(connection: Connection, name: str, key: str) -> tuple[Row | None, datetime | None]:
    """The counsellor of that username (id and hash), and until when the pair is locked."""
    counsellor = connection.execute(
        select(Counsellor.id, Counsellor.password_hash).where(Counsellor.username == name)
    ).first()
    locked = connection.scalar(select(LoginFailure.locked_until).where(LoginFailure.key == key))
    return counsellor, locked


def _audited(connection: Connection, counsellor_id: int, action: str) -> None:
    connection.execute(insert(AuditEntry).values(counsellor_id=counsellor_id, action=action))


def _locked_out(connection: Connection, counsellor_id: int) -> None:
    _audited(connection, counsellor_id, "login_locked")


def _failed(connection: Connection, key: str, now: datetime, counsellor_id: int | None) -> str:
    """Counts one failure in one statement (replicas may count at once): a count older than the
    lockout starts again at one. The fifth locks the pair: "locked", else "failed"."""
    if counsellor_id is not None:
        _audited(connection, counsellor_id, "login_failed")
    table = LoginFailure.__table__
    stale = table.c.first_at < now - LOCKOUT
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    counted = connection.scalar(
        dialect.insert(table)
        .values(key=key, failures=1, first_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "failures": case((stale, 1), else_=table.c.failures + 1),
                "first_at": case((stale, now), else_=table.c.first_at),
            },
        )
        .returning(table.c.failures)
    )
    if counted < MAX_FAILURES:
        return "failed"
    connection.execute(
        table.update()
        .where(table.c.key == key)
        .values(failures=0, first_at=now, locked_until=now + LOCKOUT)
    )
    return "locked"


def _signed_in(
    connection: Connection, key: str, now: datetime, counsellor_id: int, token_hash: str
) -> None:
    """A new session; this pair's failure count, and every count and session that no longer
    matters, go."""
    connection.execute(
        delete(LoginFailure).where(
            (LoginFailure.key == key)
            | (
                (LoginFailure.first_at < now - LOCKOUT)
                & ((LoginFailure.locked_until.is_(None)) | (LoginFailure.locked_until < now))
            )
        )
    )
    connection.execute(
        update(Counsellor).where(Counsellor.id == counsellor_id).values(last_seen_at=now)
    )
    connection.execute(
        insert(ConsoleSession).values(
            token_hash=token_hash,
            csrf_token=secrets.token_urlsafe(24),
            counsellor_id=counsellor_id,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    connection.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    _audited(connection, counsellor_id, "login")


def _verify(password_hash: str, password: str) -> bool:
    """The check, then the rest that keeps the thread within CHECK_SHARE of a core."""
    started = time.perf_counter()
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    finally:
        time.sleep((time.perf_counter() - started) * (1 / CHECK_SHARE - 1))


async def signed_in(sessions: async_sessionmaker, token: str | None) -> Signed | None:
    """The counsellor behind a session cookie, marked as online; None if none or expired."""
    if not token:
        return None
    now = utcnow()
    async with sessions() as session:
        row = (
            await session.execute(
                select(ConsoleSession, Counsellor)
                .join(Counsellor, Counsellor.id == ConsoleSession.counsellor_id)
                .where(ConsoleSession.token_hash == _token_hash(token))
            )
        ).first()
        if row is None or as_utc(row.ConsoleSession.expires_at) <= now:
            return None
        counsellor = row.Counsellor
        if counsellor.last_seen_at is None or as_utc(counsellor.last_seen_at) < now - SEEN_EVERY:
            counsellor.last_seen_at = now
            await session.commit()
        return Signed(counsellor=counsellor, csrf=row.ConsoleSession.csrf_token)


async def logout(sessions: async_sessionmaker, token: str, counsellor_id: int) -> None:
    async with sessions() as session:
        await session.execute(
            delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token))
        )
        counsellor = await session.get(Counsellor, counsellor_id)
        if counsellor is not None:
            counsellor.last_seen_at = None  # no longer counted as online
        audit(session, counsellor_id, "logout")
        await session.commit()


def same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
