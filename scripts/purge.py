"""`make purge`: deletes words older than RETENTION_DAYS (default 30) now, as the gateway does
every hour: the gateway's messages and notes, closed cases' text, and Rasa's tracker events."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Settings  # noqa: E402
from bot.store.db import make_engine, make_sessionmaker  # noqa: E402
from bot.store.retention import Retention  # noqa: E402


async def main() -> None:
    settings = Settings.from_env()
    engine, tracker = make_engine(settings.database_url), make_engine(settings.tracker_store_url)
    try:
        retention = Retention(make_sessionmaker(engine), tracker, settings.retention_days)
        counts = await retention.purge()
    finally:
        await engine.dispose()
        await tracker.dispose()
    print(f"purged (older than {settings.retention_days} days): {counts}")


if __name__ == "__main__":
    asyncio.run(main())
