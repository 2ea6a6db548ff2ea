"""One async engine per process, from DATABASE_URL written in its plain (sync) form."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _with_driver(url: str, drivers: dict[str, str]) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"unsupported database: {backend}")
    return parsed.set(drivername=drivers[backend]).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    return _with_driver(url, _ASYNC_DRIVERS)


def sync_url(url: str) -> str:
    """The URL Alembic migrates with."""
    return _with_driver(url, _SYNC_DRIVERS)


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> AsyncEngine:
    ensure_sqlite_dir(url)
    sqlite = make_url(url).get_backend_name() == "sqlite"
    # On PostgreSQL the gateway's connections are named, so an operator sees whose they are.
    connect_args = {"timeout": 30} if sqlite else {"application_name": "gateway"}
    # A pooled PostgreSQL connection may have been dropped (a restart, a failover): pinged before
    # use. A SQLite file cannot drop, and the ping was one more thread hop per session.
    # hide_parameters: a database error's message (logged with its traceback) would otherwise
    # carry the statement's values, i.e. a child's words.
    engine = create_async_engine(
        async_url(url),
        pool_pre_ping=not sqlite,
        connect_args=connect_args,
        hide_parameters=True,
    )
    if sqlite:
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(connection, _record) -> None:  # noqa: ANN001 (DB-API connection)
    """SQLite enforces foreign keys (and so deletes a forgotten user's cases) only when asked."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Write-ahead log: readers and the writer no longer block each other, and a commit is one
    # append without an fsync (make bench: LINE's webhook acknowledgement is one such commit).
    # A power cut may lose the last commits, never the file; production runs on PostgreSQL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
