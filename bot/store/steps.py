"""Steps: the gateway's hot-path database work, each step one short transaction.

A step is a plain function of a Connection (SQLAlchemy Core, no ORM session). On SQLite every
statement of an async session is a hop to aiosqlite's thread and back, four or five a commit, each
waiting for a busy CPU, and the file's one write lock is held across them: so on SQLite every step
runs whole on one thread of the process's own (one hop, the lock held for microseconds, and the
steps never wait for each other's lock). PostgreSQL needs no thread: a step runs in the event loop.

The durable inbox (bot/store/inbound.py) and a turn's own records (bot/store/turns.py) share one
`Steps`, so on SQLite they are one writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.db import sqlite_pragmas

T = TypeVar("T")


class Steps:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            # hide_parameters: an error's message (logged) would otherwise carry a child's words.
            self._sync = create_engine(
                engine.url.set(drivername="sqlite"),
                connect_args={"timeout": 30},
                hide_parameters=True,
            )
            event.listen(self._sync, "connect", sqlite_pragmas)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="steps")

    def close(self) -> None:
        if self.sqlite:
            self._thread.shutdown()
            self._sync.dispose()

    async def run(self, step: Callable[..., T], *args: Any) -> T:
        """`step(connection, *args)` as one transaction, committed when it returns."""
        if self.sqlite:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._in_thread, step, args)
        async with self._engine.begin() as connection:
            return await connection.run_sync(step, *args)

    def _in_thread(self, step: Callable[[Connection], T], args: tuple[Any, ...]) -> T:
        with self._sync.begin() as connection:
            return step(connection, *args)
