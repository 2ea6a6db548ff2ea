"""Steps: the gateway's hot-path database work, each step one short transaction.

A step is a plain function of a Connection (SQLAlchemy Core, no ORM session), so a step is a few
statements built once (bot/store/inbound.py, bot/store/turns.py). On PostgreSQL it runs in the
event loop through the async engine.

On SQLite a step runs at once, in the event loop: the file answers in microseconds, and every way
round the loop costs more (aiosqlite hops to its thread and back for each statement, a thread of
our own for each step; make bench). It never waits there: on a connection that does not wait for
the file's write lock, a step that finds it held (a console or handoff write through an async
session) is rolled back and runs again on a thread of its own, which waits its turn. That
connection leaves the WAL's checkpoints (a copy and an fsync) to the thread too, every
CHECKPOINT_EVERY steps, so the loop never does one.

The durable inbox and a turn's own records share one `Steps`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

from bot.store.db import sqlite_pragmas

log = logging.getLogger(__name__)

T = TypeVar("T")
# Steps run in the loop between two checkpoints of the WAL on the thread (SQLite's own default
# is every 1,000 pages; a turn writes a few).
CHECKPOINT_EVERY = 200


class Steps:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            url = engine.url.set(drivername="sqlite")
            # hide_parameters: an error's message (logged) would otherwise carry a child's words.
            self._now = create_engine(
                url,
                connect_args={"timeout": 0, "check_same_thread": False},
                poolclass=StaticPool,
                hide_parameters=True,
            )
            event.listen(self._now, "connect", _in_the_loop)
            self._waiting = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
            event.listen(self._waiting, "connect", sqlite_pragmas)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="steps")
            self._since_checkpoint = 0

    def close(self) -> None:
        if self.sqlite:
            self._thread.shutdown()
            self._now.dispose()
            self._waiting.dispose()

    async def run(self, step: Callable[..., T], *args: Any) -> T:
        """`step(connection, *args)` as one transaction, committed when it returns."""
        if not self.sqlite:
            async with self._engine.begin() as connection:
                return await connection.run_sync(step, *args)
        loop = asyncio.get_running_loop()
        try:
            done = _transaction(self._now, step, args)
        except OperationalError:  # the write lock is held: wait for it on the thread
            return await loop.run_in_executor(self._thread, _transaction, self._waiting, step, args)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            loop.run_in_executor(self._thread, self._checkpoint)
        return done

    def _checkpoint(self) -> None:
        """Copies the WAL into the database without waiting for anyone (PASSIVE)."""
        try:
            with self._waiting.connect() as connection:
                connection.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
        except Exception:
            log.exception("checkpointing the SQLite WAL failed; the next one tries again")


def _transaction(engine: Engine, step: Callable[..., T], args: tuple[Any, ...]) -> T:
    with engine.begin() as connection:
        return step(connection, *args)


def _in_the_loop(connection, record) -> None:  # noqa: ANN001 (DB-API connection)
    """The loop's connection: the usual pragmas, and no checkpoint of its own."""
    sqlite_pragmas(connection, record)
    cursor = connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
