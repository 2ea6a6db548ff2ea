"""bot/store/steps.py on SQLite: a step runs at once in the event loop, yet never holds the loop
while another connection holds the file's write lock, and the WAL is still checkpointed."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

from sqlalchemy import select

from bot.store import steps as steps_module
from bot.store import turns
from bot.store.db import make_engine
from bot.store.models import Message
from bot.store.steps import Steps
from tests.gateway.conftest import migrate


def _database(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "gateway.db"
    url = f"sqlite:///{path}"
    migrate(url)
    return url, path


def test_a_step_waits_for_a_held_write_lock_off_the_loop(tmp_path):
    url, path = _database(tmp_path)

    async def scenario() -> None:
        engine = make_engine(url)
        steps = Steps(engine)
        await steps.run(turns.known_language, "nobody")  # the file is in WAL mode, as it runs
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer, e.g. a console's session
            user = uuid.uuid4().hex
            step = asyncio.ensure_future(
                steps.run(turns.open_turn, user, "webchat", "text", "สวัสดี", "th")
            )
            started = time.monotonic()
            for _ in range(20):  # the loop keeps turning while the step waits
                await asyncio.sleep(0.01)
            assert time.monotonic() - started < 2
            assert not step.done()
            holder.execute("COMMIT")
            opened = await asyncio.wait_for(step, 10)
            assert opened.mode == "bot" and opened.language is None
            said = await steps.run(
                lambda connection: connection.scalars(
                    select(Message.text).where(Message.conversation_id == opened.id)
                ).all()
            )
            assert said == ["สวัสดี"]
        finally:
            holder.close()
            steps.close()
            await engine.dispose()

    asyncio.run(scenario())


def test_the_wal_is_checkpointed_though_the_loop_never_does_it(tmp_path, monkeypatch):
    """Without a checkpoint the WAL file grows with every step; with one every CHECKPOINT_EVERY
    steps it is reused from its start and stays the size of a few of them."""
    monkeypatch.setattr(steps_module, "CHECKPOINT_EVERY", 20)
    url, path = _database(tmp_path)
    wal = path.with_name(path.name + "-wal")

    async def scenario() -> list[int]:
        engine = make_engine(url)
        steps = Steps(engine)
        sizes = []
        try:
            for _ in range(6):
                for _ in range(20):
                    user = uuid.uuid4().hex  # a new conversation: several pages written
                    await steps.run(turns.open_turn, user, "webchat", "text", "x" * 500, "th")
                await asyncio.sleep(0.2)  # the checkpoint runs on the thread
                sizes.append(wal.stat().st_size)
        finally:
            steps.close()
            await engine.dispose()
        return sizes

    sizes = asyncio.run(scenario())
    assert sizes[-1] <= 2 * sizes[0], sizes
