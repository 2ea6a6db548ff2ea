"""The waiting line: who is next, how long it honestly looks, and whether anyone is there at all."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.handoff_models import Case, Counsellor
from bot.store.models import as_utc, utcnow

BANGKOK = ZoneInfo("Asia/Bangkok")
ONLINE_WITHIN = timedelta(seconds=90)


@dataclass(frozen=True)
class Hours:
    """Opening hours in Bangkok time, e.g. "08:00-22:00"; empty means always open."""

    spec: str = ""

    def open_at(self, moment: datetime) -> bool:
        if not self.spec.strip():
            return True
        start_s, end_s = self.spec.split("-")
        start, end = time.fromisoformat(start_s.strip()), time.fromisoformat(end_s.strip())
        now = moment.astimezone(BANGKOK).time()
        return start <= now < end if start <= end else now >= start or now < end


async def ordered(session: AsyncSession) -> list[Case]:
    """Queued cases, urgent first, then longest waiting."""
    return list(
        await session.scalars(
            select(Case)
            .where(Case.state == "queued")
            .order_by(Case.urgent.desc(), Case.queued_at.asc(), Case.id.asc())
        )
    )


async def online_counsellors(session: AsyncSession, now: datetime | None = None) -> int:
    since = (now or utcnow()) - ONLINE_WITHIN
    query = select(func.count()).select_from(Counsellor).where(Counsellor.last_seen_at >= since)
    return await session.scalar(query) or 0


async def recent_wait_minutes(session: AsyncSession, default_minutes: float) -> float:
    """The average wait of cases picked up in the last day; the configured guess until there are
    enough of them to say."""
    since = utcnow() - timedelta(days=1)
    rows = (
        await session.execute(
            select(Case.queued_at, Case.assigned_at).where(
                Case.assigned_at >= since, Case.queued_at.is_not(None)
            )
        )
    ).all()
    waits = [(as_utc(assigned) - as_utc(queued)).total_seconds() / 60 for queued, assigned in rows]
    return sum(waits) / len(waits) if len(waits) >= 3 else default_minutes


def estimate_minutes(position: int, per_case_minutes: float, online: int) -> int:
    return max(1, math.ceil(position * per_case_minutes / max(online, 1)))
