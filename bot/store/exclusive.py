"""One gateway replica at a time: periodic jobs run on every replica, so work that must not be done
twice (a push to a child, the retention purge) takes a PostgreSQL advisory lock first.

The lock lives as long as the session's transaction: a commit or rollback lets it go, so it can
neither outlive a crashed replica nor leak into the connection pool. Advisory locks block no
reads or writes, only someone asking for the same lock. On SQLite there is one gateway process
(README, Production) and asyncio locks in that process suffice, so this is a no-op there.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

# The first half of each lock's two-number key, so the gateway's locks are told apart from each
# other's and from any other program's on a shared database.
RELAY = 0x67770001  # the second number is the conversation being pushed to
RETENTION = 0x67770002


async def wait_for(session: AsyncSession, kind: int, key: int = 0) -> None:
    """Waits until no other transaction holds lock (`kind`, `key`), then holds it until this
    session's transaction ends."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(kind, key)))
