"""What supervisors count: contacts, handoffs, waits and categories over a date range, in SQL.

Every figure is an aggregate computed by the database (SQLite or PostgreSQL); no message text is
read. Days are Bangkok days. A contact is one child (one hashed user) writing on one day; messages
are purged after the retention period (docs/PRIVACY.md), so contacts reach back that far, while
cases keep their facts and categories without text. Counts from 1 to 4 leave this module as
"<5" (`suppressed`), so no small cell can point at a child.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.handoff.queue import BANGKOK
from bot.store.handoff_models import AuditEntry, Case, CaseCategory, Transition
from bot.store.models import Conversation, Message

SMALL = "<5"
MAX_DAYS = 366
REPEAT_WITHIN_DAYS = 30
CHANNELS = ("webchat", "line", "telegram")
UNKNOWN = "unknown"


def suppressed(count: int) -> int | str:
    """A count as it may be shown: 1 to 4 become "<5"; none is still 0."""
    return SMALL if 0 < count < 5 else count


@dataclass(frozen=True)
class Range:
    """Bangkok days `first` to `last`, both included."""

    first: date
    last: date

    @classmethod
    def parse(cls, first: str | None, last: str | None, today: date) -> Range:
        """From the query's `from`/`to` (YYYY-MM-DD); the last 30 days by default."""
        end = date.fromisoformat(last) if last else today
        start = date.fromisoformat(first) if first else end - timedelta(days=29)
        if start > end or (end - start).days >= MAX_DAYS:
            raise ValueError(f"from must not be after to, and at most {MAX_DAYS} days apart")
        return cls(start, end)

    def moment(self, day: date) -> datetime:
        return datetime.combine(day, time(), BANGKOK).astimezone(timezone.utc)

    @property
    def start(self) -> datetime:
        return self.moment(self.first)

    @property
    def end(self) -> datetime:
        return self.moment(self.last + timedelta(days=1))

    def days(self) -> list[str]:
        return [
            (self.first + timedelta(days=i)).isoformat()
            for i in range((self.last - self.first).days + 1)
        ]


class Dialect:
    """The few expressions SQLite and PostgreSQL spell differently."""

    def __init__(self, name: str) -> None:
        self.postgres = name == "postgresql"

    def bound(self, moment: datetime) -> datetime:
        # SQLite keeps UTC times without their zone, and compares them as text.
        return moment if self.postgres else moment.replace(tzinfo=None)

    def day(self, column: Any) -> ColumnElement[str]:
        """The Bangkok date of a moment, as YYYY-MM-DD."""
        if self.postgres:
            return func.to_char(func.timezone("Asia/Bangkok", column), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", column, "+7 hours")

    def days_before(self, day: Any, days: int) -> ColumnElement[str]:
        if self.postgres:
            return func.to_char(func.to_date(day, "YYYY-MM-DD") - days, "YYYY-MM-DD")
        return func.date(day, f"-{days} days")

    def minute_of_day(self, column: Any) -> ColumnElement[int]:
        """Minutes since midnight, Bangkok time."""
        if self.postgres:
            local = func.timezone("Asia/Bangkok", column)
            return cast(func.extract("hour", local) * 60 + func.extract("minute", local), Integer)
        return cast(func.strftime("%H", column, "+7 hours"), Integer) * 60 + cast(
            func.strftime("%M", column, "+7 hours"), Integer
        )

    def seconds(self, earlier: Any, later: Any) -> ColumnElement[float]:
        if self.postgres:
            return func.extract("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _minutes(spec: str) -> tuple[int, int] | None:
    """Opening hours "08:00-22:00" as minutes of the day; None when always open."""
    if not spec.strip():
        return None
    start, end = (time.fromisoformat(part.strip()) for part in spec.split("-"))
    return start.hour * 60 + start.minute, end.hour * 60 + end.minute


class Insights:
    def __init__(self, session: AsyncSession, span: Range, hours: str) -> None:
        self._session = session
        self._span = span
        self._hours = _minutes(hours)
        self._sql = Dialect(session.bind.dialect.name)

    async def compute(self) -> dict[str, Any]:
        """Every aggregate of the range, suppressed as it may be shown and exported."""
        contacts = await self._contacts()
        handed = await self._count(self._handed())
        return {
            "from": self._span.first.isoformat(),
            "to": self._span.last.isoformat(),
            "contacts": suppressed(contacts["total"]),
            "per_day": contacts["per_day"],
            "by_channel": contacts["by_channel"],
            "by_language": contacts["by_language"],
            "out_of_hours": suppressed(contacts["out_of_hours"]),
            "repeat": suppressed(contacts["repeat"]),
            "handed": suppressed(handed),
            "handed_percent": _share(handed, contacts["total"]),
            "by_category": await self._by_category(),
            "by_age_role": await self._by_age_role(),
            "wait_s": await self._percentiles(self._waits()),
            "first_reply_s": await self._percentiles(self._first_replies()),
            "left_queue": suppressed(await self._count(self._left())),
            "helped": await self._helped(),
        }

    # -- contacts: one child writing on one Bangkok day -------------------------------------------

    def _contact_days(self) -> Any:
        """(conversation, day, first message) for every contact of the range and the 30 days
        before it (to find repeats)."""
        since = self._span.start - timedelta(days=REPEAT_WITHIN_DAYS + 1)
        day = self._sql.day(Message.created_at)
        return (
            select(
                Message.conversation_id.label("conversation_id"),
                day.label("day"),
                func.min(Message.created_at).label("first_at"),
            )
            .where(
                Message.sender == "user",
                Message.created_at >= self._sql.bound(since),
                Message.created_at < self._sql.bound(self._span.end),
            )
            .group_by(Message.conversation_id, day)
            .cte("contact_days")
        )

    async def _contacts(self) -> dict[str, Any]:
        days = self._contact_days()
        earlier = aliased(days, name="earlier")
        in_range = and_(
            days.c.day >= self._span.first.isoformat(), days.c.day <= self._span.last.isoformat()
        )
        repeat = exists().where(
            earlier.c.conversation_id == days.c.conversation_id,
            earlier.c.day < days.c.day,
            earlier.c.day >= self._sql.days_before(days.c.day, REPEAT_WITHIN_DAYS),
        )
        language = func.coalesce(Conversation.language, UNKNOWN)
        rows = (
            await self._session.execute(
                select(
                    days.c.day,
                    Conversation.channel,
                    language,
                    func.count().label("n"),
                    func.sum(case((repeat, 1), else_=0)).label("repeat"),
                    func.sum(case((self._out_of_hours(days.c.first_at), 1), else_=0)).label("out"),
                )
                .select_from(days)
                .join(Conversation, Conversation.id == days.c.conversation_id)
                .where(in_range)
                .group_by(days.c.day, Conversation.channel, language)
            )
        ).all()
        per_day = {day: dict.fromkeys(CHANNELS, 0) for day in self._span.days()}
        by_channel: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        by_language: dict[str, int] = {}
        total = repeats = out = 0
        for row in rows:
            per_day[row.day][row.channel] = per_day[row.day].get(row.channel, 0) + row.n
            by_channel[row.channel] = by_channel.get(row.channel, 0) + row.n
            by_language[row[2]] = by_language.get(row[2], 0) + row.n
            total += row.n
            repeats += int(row.repeat or 0)
            out += int(row.out or 0)
        return {
            "total": total,
            "per_day": [
                {"day": day, **{c: suppressed(n) for c, n in counts.items()}}
                for day, counts in per_day.items()
            ],
            "by_channel": {c: suppressed(n) for c, n in by_channel.items()},
            "by_language": {lang: suppressed(n) for lang, n in sorted(by_language.items())},
            "repeat": repeats,
            "out_of_hours": out,
        }

    def _out_of_hours(self, moment: Any) -> ColumnElement[bool]:
        if self._hours is None:
            return literal(False)
        opens, closes = self._hours
        minute = self._sql.minute_of_day(moment)
        if opens <= closes:
            return or_(minute < opens, minute >= closes)
        return and_(minute >= closes, minute < opens)

    # -- cases: chats handed to a person, by when they entered the queue ---------------------------

    def _in_span(self) -> ColumnElement[bool]:
        return and_(
            Case.queued_at >= self._sql.bound(self._span.start),
            Case.queued_at < self._sql.bound(self._span.end),
        )

    def _handed(self) -> Select:
        return select(Case.id).where(self._in_span())

    def _first_assigned(self) -> Any:
        return (
            select(Transition.case_id, func.min(Transition.at).label("at"))
            .where(Transition.to_state == "assigned")
            .group_by(Transition.case_id)
            .subquery("first_assigned")
        )

    def _left(self) -> Select:
        """Closed without a person ever taking the chat: the child left the queue."""
        assigned = select(Transition.id).where(
            Transition.case_id == Case.id, Transition.to_state == "assigned"
        )
        return select(Case.id).where(
            self._in_span(), Case.state == "closed", not_(exists(assigned))
        )

    def _waits(self) -> Select:
        first = self._first_assigned()
        return (
            select(self._sql.seconds(Case.queued_at, first.c.at).label("s"))
            .join(first, first.c.case_id == Case.id)
            .where(self._in_span())
        )

    def _first_replies(self) -> Select:
        first = self._first_assigned()
        reply = (
            select(AuditEntry.case_id, func.min(AuditEntry.at).label("at"))
            .where(AuditEntry.action == "reply")
            .group_by(AuditEntry.case_id)
            .subquery("first_reply")
        )
        return (
            select(self._sql.seconds(first.c.at, reply.c.at).label("s"))
            .select_from(Case)
            .join(first, first.c.case_id == Case.id)
            .join(reply, reply.c.case_id == Case.id)
            .where(self._in_span())
        )

    async def _count(self, query: Select) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(query.subquery())))

    async def _percentiles(self, query: Select) -> dict[str, Any]:
        """p50 and p90 by nearest rank, read from the database in order: no values leave it."""
        durations = query.subquery()
        n = await self._count(select(durations.c.s))
        out: dict[str, Any] = {"count": suppressed(n), "p50": None, "p90": None}
        if n < 5:
            return out
        for name, p in (("p50", 0.5), ("p90", 0.9)):
            value = await self._session.scalar(
                select(durations.c.s).order_by(durations.c.s).limit(1).offset(math.ceil(p * n) - 1)
            )
            out[name] = round(float(value))
        return out

    async def _by_category(self) -> list[dict[str, Any]]:
        rows = await self._session.execute(
            select(CaseCategory.category, func.count().label("n"))
            .join(Case, Case.id == CaseCategory.case_id)
            .where(self._in_span())
            .group_by(CaseCategory.category)
            .order_by(func.count().desc(), CaseCategory.category)
        )
        return [{"id": row.category, "count": suppressed(row.n)} for row in rows]

    async def _helped(self) -> dict[str, int | str]:
        """The children's answers to "did this help?" about the chats of the range."""
        rows = await self._session.execute(
            select(Case.helped, func.count().label("n"))
            .where(self._in_span(), Case.helped.is_not(None))
            .group_by(Case.helped)
        )
        counts = {bool(row.helped): row.n for row in rows}
        return {"yes": suppressed(counts.get(True, 0)), "no": suppressed(counts.get(False, 0))}

    async def _by_age_role(self) -> list[dict[str, Any]]:
        age = func.coalesce(Case.age_band, UNKNOWN)
        role = func.coalesce(Case.role, UNKNOWN)
        rows = await self._session.execute(
            select(age.label("age_band"), role.label("role"), func.count().label("n"))
            .where(self._in_span())
            .group_by(age, role)
            .order_by(age, role)
        )
        return [
            {"age_band": row.age_band, "role": row.role, "count": suppressed(row.n)} for row in rows
        ]


def _share(part: int, whole: int) -> int | str | None:
    """A percentage, unless either count is small (then it could be worked back)."""
    if whole == 0:
        return None
    if suppressed(part) == SMALL or suppressed(whole) == SMALL:
        return SMALL
    return round(100 * part / whole)
