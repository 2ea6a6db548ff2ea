"""Counsellor accounts and console sessions: argon2 hashes, lockout, cookie sessions, CSRF.

The cookie carries a random token; the database keeps only its SHA-256, so a stolen database
opens no console. Every state-changing request must repeat the session's CSRF token in a header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handoff.cases import audit
from bot.store.handoff_models import ConsoleSession, Counsellor
from bot.store.models import as_utc, utcnow

COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_csrf"
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
SEEN_EVERY = timedelta(seconds=20)
ROLES = ("counsellor", "supervisor")

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


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


async def login(sessions: async_sessionmaker, username: str, password: str) -> Login:
    """Checks the password; five failures in a row lock the account for fifteen minutes."""
    now = utcnow()
    async with sessions() as session:
        counsellor = await session.scalar(
            select(Counsellor).where(Counsellor.username == username.strip().lower())
        )
        if counsellor is None:
            _verify(_DUMMY_HASH, password)  # the same time whether or not the name exists
            return Login(refused="failed")
        if counsellor.locked_until and as_utc(counsellor.locked_until) > now:
            audit(session, counsellor.id, "login_locked")
            await session.commit()
            return Login(refused="locked")
        if not _verify(counsellor.password_hash, password):
            counsellor.failed_logins += 1
            refused = "failed"
            if counsellor.failed_logins >= MAX_FAILURES:
                counsellor.locked_until = now + LOCKOUT
                counsellor.failed_logins = 0
                refused = "locked"
            audit(session, counsellor.id, "login_failed")
            await session.commit()
            return Login(refused=refused)
        counsellor.failed_logins = 0
        counsellor.locked_until = None
        counsellor.last_seen_at = now
        token = secrets.token_urlsafe(32)
        session.add(
            ConsoleSession(
                token_hash=_token_hash(token),
                csrf_token=secrets.token_urlsafe(24),
                counsellor_id=counsellor.id,
                expires_at=now + SESSION_LIFETIME,
            )
        )
        await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        audit(session, counsellor.id, "login")
        await session.commit()
        return Login(token=token)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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
